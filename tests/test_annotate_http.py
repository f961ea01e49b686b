"""``vos annotate``'s guard with plain HTTP: the token, the Host header and the fixed routes;
each refused request is a 403 with nothing read or written. Also the command's first line, a
clean Ctrl-C, and frames decoded on demand."""

from __future__ import annotations

import http.client
import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.app_fixtures import annotate_server, clip, tiny_maskmaker_path  # noqa: F401
from tests.conftest import moving_shapes_frames, start_in_own_session, write_video
from vos_cli.app.server import AnnotateServer
from vos_cli.app.workspace import Frames


def request(
    server: AnnotateServer,
    method: str,
    path: str,
    body: dict | None = None,
    token: str | None = "ok",
    host: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """A raw request (the path sent exactly as given); token "ok" means the right one."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = dict(headers or {})
    sent["Host"] = host or f"127.0.0.1:{server.port}"
    if token is not None:
        sent["X-Vos-Token"] = server.token if token == "ok" else token
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
        sent["Content-Length"] = str(len(data))
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for key, value in sent.items():
        conn.putheader(key, value)
    conn.endheaders(data)
    response = conn.getresponse()
    status, payload = response.status, response.read()
    conn.close()
    return status, payload


@pytest.fixture()
def spied(annotate_server: AnnotateServer, monkeypatch):  # noqa: F811
    """The server, with every frame read and every workspace write counted."""
    calls: list[str] = []
    ws = annotate_server.workspace
    for name in ("predict", "save_mask", "start_track", "file_for", "frame_jpeg", "cancel"):
        original = getattr(ws, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(ws, name, spy)
    original_get = ws.frames.get
    monkeypatch.setattr(ws.frames, "get", lambda i: calls.append("frame") or original_get(i))
    return annotate_server, calls


BOX = {"frame": 0, "objects": [{"id": 1, "box": [10, 20, 30, 40], "points": []}]}


def test_bound_to_loopback_only(annotate_server: AnnotateServer) -> None:  # noqa: F811
    assert annotate_server.server_address[0] == "127.0.0.1"
    assert annotate_server.url.startswith(f"http://127.0.0.1:{annotate_server.port}/?token=")
    assert len(annotate_server.token) >= 32


def test_token_is_required_everywhere(spied) -> None:
    server, calls = spied
    routes = [("GET", p, None) for p in ("/", "/app.js", "/style.css", "/api/state")]
    routes += [("GET", "/api/frame?n=0", None), ("GET", "/api/job", None)]
    routes += [("GET", "/files/mask.png", None), ("GET", "/files/masks.zip", None)]
    routes += [("POST", p, BOX) for p in ("/api/predict", "/api/save", "/api/track")]
    routes += [("POST", "/api/cancel", {})]
    for method, path, body in routes:
        for token in (None, "", "wrong", server.token[:-1]):
            status, payload = request(server, method, path, body, token=token)
            assert status == 403, (method, path, token, payload)
    # the token in the query works as the header does (the page's <img> and <video>)
    assert request(server, "GET", f"/api/frame?n=0&token={server.token}", token=None)[0] == 200
    assert request(server, "GET", "/api/frame?n=0&token=wrong", token=None)[0] == 403
    assert calls == ["frame_jpeg", "frame"]  # only the two good requests read anything
    assert not server.workspace.out_dir.exists()


def test_host_header_is_checked(spied) -> None:
    server, calls = spied
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1", "127.0.0.1:1"):
        assert request(server, "GET", "/api/state", host=host)[0] == 403
        assert request(server, "POST", "/api/track", BOX, host=host)[0] == 403
    origin = {"Origin": "http://evil.example"}
    assert request(server, "POST", "/api/predict", BOX, headers=origin)[0] == 403
    assert calls == []
    assert request(server, "GET", "/api/state", host=f"localhost:{server.port}")[0] == 200
    own = {"Origin": f"http://127.0.0.1:{server.port}"}
    assert request(server, "POST", "/api/predict", BOX, headers=own)[0] == 200


def test_no_path_from_the_page_reaches_the_disk(spied, tmp_path: Path) -> None:
    server, calls = spied
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    for path in (
        "/../secret.txt",
        "/files/../secret.txt",
        "/files/..%2fsecret.txt",
        f"/files/{secret}",
        f"/files/{tmp_path.name}/secret.txt",
        "/files/clip.mp4",
        "/static/app.js",
        "//etc/passwd",
        "/api/frame/../../secret.txt",
        "/index.html",
    ):
        status, payload = request(server, "GET", path)
        assert status == 403, path
        assert b"not yours" not in payload
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
        assert request(server, method, "/api/save", {"overwrite": True})[0] == 403
    assert calls == []
    # a path in a request body is not a parameter: the mask goes where the workspace says
    assert request(server, "POST", "/api/predict", BOX)[0] == 200
    status, payload = request(
        server, "POST", "/api/save", {"path": str(tmp_path / "elsewhere.png"), "overwrite": True}
    )
    assert status == 200, payload
    assert json.loads(payload)["path"] == str(server.workspace.out_dir / "mask.png")
    assert not (tmp_path / "elsewhere.png").exists()


def test_outputs_are_never_written_over_without_overwrite(
    annotate_server: AnnotateServer,  # noqa: F811
) -> None:
    server = annotate_server
    assert request(server, "POST", "/api/predict", BOX)[0] == 200
    assert request(server, "POST", "/api/save", {})[0] == 200
    mask = server.workspace.out_dir / "mask.png"
    stamp = mask.stat().st_mtime_ns
    status, payload = request(server, "POST", "/api/save", {})
    assert status == 409 and json.loads(payload)["exists"] == [str(mask)]
    assert mask.stat().st_mtime_ns == stamp
    assert request(server, "POST", "/api/track", {"cutout": "webm"})[0] == 200
    for _ in range(600):
        job = json.loads(request(server, "GET", "/api/job")[1])
        if job["state"] != "running":
            break
        time.sleep(0.1)
    assert job["state"] == "done", job
    assert set(job["outputs"]) == {"masks", "overlay", "cutout", "matte"}
    status, payload = request(server, "POST", "/api/track", {"cutout": "webm"})
    assert status == 409 and len(json.loads(payload)["exists"]) == 4
    status, payload = request(server, "GET", "/files/overlay.mp4", headers={"Range": "bytes=0-9"})
    assert status == 206 and len(payload) == 10
    status, payload = request(server, "GET", "/files/masks.zip")
    assert status == 200 and payload[:2] == b"PK"
    assert request(server, "GET", "/files/cutout.mov")[0] == 404  # not written this time


def test_far_frame_is_sought_not_decoded_whole(tmp_path: Path) -> None:
    frames = [np.full((32, 48, 3), 40 + (t % 40) * 4, np.uint8) for t in range(400)]
    frames = [f.copy() for f in frames]
    for t, f in enumerate(frames):
        f[: 2 + t % 20, :4] = 255  # a bar whose height says the frame
    video = write_video(tmp_path / "long.mp4", frames, fps=25)
    source = Frames(video)
    far = source.get(350)
    assert source.decoded < 10
    assert np.abs(far.astype(int) - frames[350]).mean() < 6
    assert np.abs(source.get(3).astype(int) - frames[3]).mean() < 6
    assert np.abs(source.get(5).astype(int) - frames[5]).mean() < 6  # decoded on from 3
    source.close()


def test_command_prints_the_address_first_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path,
    tiny_model_path: Path,
    tiny_maskmaker_path: Path,  # noqa: F811
) -> None:
    """``vos annotate --no-browser``: line 1 is the address; Ctrl-C during Track closes the
    outputs (valid files) and exits 130."""
    video = write_video(tmp_path / "clip.mp4", moving_shapes_frames(12) * 30)
    out = tmp_path / "clip_vos"
    argv = ["-m", "vos_cli", "annotate", str(video), "--no-browser", "--device", "cpu"]
    argv += ["--weights", str(tiny_model_path), "--mask-weights", str(tiny_maskmaker_path)]
    proc = start_in_own_session(argv)
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("http://127.0.0.1:") and "/?token=" in first
        port = int(first.split(":")[2].split("/")[0])
        token = first.split("token=")[1]
        server = type("S", (), {"port": port, "token": token})()
        assert request(server, "POST", "/api/predict", BOX)[0] == 200
        assert request(server, "POST", "/api/track", {"cutout": "mov"})[0] == 200
        for _ in range(600):
            job = json.loads(request(server, "GET", "/api/job")[1])
            if job["done"] >= 20 or job["state"] != "running":
                break
            time.sleep(0.05)
        assert job["state"] == "running", job
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "outputs written are valid" in err
    from tests.conftest import decode_video

    masks = sorted((out / "masks").glob("*.png"))
    assert 20 <= len(masks) < 360
    _, overlay = decode_video(out / "overlay.mp4")
    assert len(overlay) == len(masks)
    _, cutout = decode_video(out / "cutout.mov", rgba=True)
    assert len(cutout) == len(masks)


def test_page_files_are_installed_with_the_package(tmp_path: Path) -> None:
    """The wheel carries index.html, app.js and style.css (package-data), and the page
    refers only to them."""
    import shutil
    import subprocess
    import sys
    import zipfile

    root = tmp_path / "src"  # a copy: building leaves build/ and *.egg-info behind
    source = Path(__file__).resolve().parents[1]
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("vos_cli", "weights"):
        shutil.copytree(source / name, root / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(source / name, root / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "dist"), str(root)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("vos_cli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("index.html", "app.js", "style.css"):
        assert f"vos_cli/app/static/{name}" in names
    assert "vos_cli/app/server.py" in names
