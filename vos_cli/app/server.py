"""The ``vos annotate`` server: the page and its API on 127.0.0.1, behind one guard.

Every request goes through :meth:`Handler._guard` before any route runs:

* the Host header must name this server (``127.0.0.1:PORT`` or ``localhost:PORT``), so a
  DNS-rebinding page (``evil.example`` resolving to 127.0.0.1) is refused;
* the request must carry the random token of this run (``?token=`` or the ``X-Vos-Token``
  header), compared in constant time, so a page on another site or another user of the machine
  cannot drive it; an ``Origin`` header, when sent, must be this server's;
* the path must be one of the fixed routes below, and no route takes a path: the source, the
  output folder and the output names are the workspace's own (see vos_cli/app/workspace.py).

Anything refused is answered 403 before anything is read or written.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import zipfile
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vos_cli.app.workspace import OUTPUT_NAMES, Conflict, Workspace, overlay_png
from vos_cli.errors import VosError

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
MAX_BODY = 1 << 20
HOST = "127.0.0.1"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}
VIDEO_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}


def static_text(name: str) -> str:
    """A file of the page, from the installed package."""
    return (resources.files("vos_cli.app") / "static" / name).read_text(encoding="utf-8")


class Forbidden(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    server: AnnotateServer
    protocol_version = "HTTP/1.1"

    # ------------------------------------------------------------------ the guard
    def _guard(self) -> str:
        """The route's path, or Forbidden: Host, Origin, token and path checked here only."""
        srv = self.server
        host = self.headers.get("Host", "")
        if host not in srv.allowed_hosts:
            raise Forbidden("unknown Host")
        origin = self.headers.get("Origin")
        if origin is not None and origin not in srv.allowed_origins:
            raise Forbidden("foreign Origin")
        url = urlsplit(self.path)
        token = self.headers.get("X-Vos-Token") or (parse_qs(url.query).get("token") or [""])[0]
        if not hmac.compare_digest(token.encode(), srv.token.encode()):
            raise Forbidden("no or wrong token")
        if (self.command, url.path) not in srv.routes:
            raise Forbidden("not served")
        return url.path

    def _handle(self) -> None:
        try:
            path = self._guard()
        except Forbidden as exc:
            self._discard_body()
            self._send(HTTPStatus.FORBIDDEN, f"forbidden: {exc}\n".encode(), "text/plain")
            return
        handler = self.server.routes[(self.command, path)]
        try:
            handler(self, path)
        except Conflict as exc:
            self._json({"error": str(exc), "exists": [str(p) for p in exc.paths]}, 409)
        except VosError as exc:
            self._json({"error": str(exc).splitlines()[0]}, 400)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug: said on the page, the server goes on
            self._json({"error": f"{type(exc).__name__}: {exc}"}, 500)

    do_GET = _handle
    do_POST = _handle

    def _refuse(self) -> None:
        self._discard_body()
        self._send(HTTPStatus.FORBIDDEN, b"forbidden: method not served\n", "text/plain")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _refuse

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal is the user's
        if self.server.verbose:
            super().log_message(format, *args)

    # ------------------------------------------------------------------ helpers
    def _discard_body(self) -> None:
        self.close_connection = True

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _body(self) -> Any:
        if "application/json" not in self.headers.get("Content-Type", ""):
            raise VosError("requests send JSON")
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY:
            raise VosError("request too large")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise VosError("the request is not valid JSON") from None
        if not isinstance(data, dict):
            raise VosError("the request must be a JSON object")
        return data

    def _query_int(self, name: str) -> int:
        values = parse_qs(urlsplit(self.path).query).get(name) or ["0"]
        try:
            return int(values[0])
        except ValueError:
            raise VosError(f"{name} must be a whole number") from None

    # ------------------------------------------------------------------ routes
    def static(self, path: str) -> None:
        name, content_type = STATIC[path]
        text = static_text(name)
        if name == "index.html":  # the page's own files need the token too
            text = text.replace("{{TOKEN}}", self.server.token)
        self._send(200, text.encode(), content_type)

    def state(self, path: str) -> None:
        self._json(self.server.workspace.info())

    def frame(self, path: str) -> None:
        body = self.server.workspace.frame_jpeg(self._query_int("n"))
        self._send(200, body, "image/jpeg")

    def predict(self, path: str) -> None:
        data = self._body()
        objects = data.get("objects") or []
        if not isinstance(objects, list):
            raise VosError("objects must be a list")
        ws = self.server.workspace
        labels = ws.predict(int(data.get("frame") or 0), objects)
        counts = {str(i): int((labels == i).sum()) for i in {int(o["id"]) for o in objects}}
        self._send(200, overlay_png(labels), "image/png", {"X-Vos-Pixels": json.dumps(counts)})

    def save(self, path: str) -> None:
        data = self._body()
        ws = self.server.workspace
        saved = ws.save_mask(overwrite=bool(data.get("overwrite")))
        frame = f"{ws.frame}:" if ws.frame else ""
        self._json(
            {
                "path": str(saved),
                "command": f"vos segment {ws.source} --mask {frame}{saved}",
                "url": "/files/mask.png",
            }
        )

    def track(self, path: str) -> None:
        data = self._body()
        cutout = str(data.get("cutout") or "mov")
        self.server.workspace.start_track(cutout, overwrite=bool(data.get("overwrite")))
        self._json(self.server.workspace.job.as_dict())

    def job(self, path: str) -> None:
        self._json(self.server.workspace.job.as_dict())

    def cancel(self, path: str) -> None:
        self._body()
        self.server.workspace.cancel()
        self._json(self.server.workspace.job.as_dict())

    def file(self, path: str) -> None:
        name = path.removeprefix("/files/")
        target = self.server.workspace.file_for(name)
        if target is None:
            self._json({"error": f"{name} is not written yet"}, 404)
        elif target.is_dir():
            self._send_zip(target)
        else:
            self._send_file(target)

    def _send_file(self, target: Path) -> None:
        size = target.stat().st_size
        start, end = 0, size - 1
        status = 200
        extra = {"Accept-Ranges": "bytes"}
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes=") and "," not in ranged:
            first, _, last = ranged[6:].partition("-")
            try:
                if first:
                    start = int(first)
                    end = min(int(last), size - 1) if last else size - 1
                else:
                    start = max(0, size - int(last))
            except ValueError:
                start, end = 0, size - 1
            if start <= end:
                status = 206
                extra["Content-Range"] = f"bytes {start}-{end}/{size}"
        content_type = VIDEO_TYPES.get(target.suffix, "application/octet-stream")
        if target.suffix == ".png":
            content_type = "image/png"
        if content_type == "application/octet-stream" or target.suffix == ".mov":
            extra["Content-Disposition"] = f'attachment; filename="{target.name}"'
        with open(target, "rb") as file:
            file.seek(start)
            self._send(status, file.read(end - start + 1), content_type, extra)

    def _send_zip(self, folder: Path) -> None:
        """A folder (masks, PNG cut-out) as a zip, streamed (no Content-Length: closes)."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Disposition", f'attachment; filename="{folder.name}.zip"')
        self.send_header("Connection", "close")
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
        self.end_headers()
        with zipfile.ZipFile(self.wfile, "w", zipfile.ZIP_STORED) as archive:
            for item in sorted(folder.iterdir()):
                if item.is_file() and not item.name.startswith("."):
                    archive.write(item, f"{folder.name}/{item.name}")


class AnnotateServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        workspace: Workspace,
        port: int = 0,
        token: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.workspace = workspace
        self.token = token or secrets.token_urlsafe(24)
        self.verbose = verbose
        super().__init__((HOST, port), Handler)
        self.port = self.server_address[1]
        self.allowed_hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        self.allowed_origins = {f"http://{h}" for h in self.allowed_hosts}
        self.routes = {
            **{("GET", p): Handler.static for p in STATIC},
            ("GET", "/api/state"): Handler.state,
            ("GET", "/api/frame"): Handler.frame,
            ("GET", "/api/job"): Handler.job,
            ("POST", "/api/predict"): Handler.predict,
            ("POST", "/api/save"): Handler.save,
            ("POST", "/api/track"): Handler.track,
            ("POST", "/api/cancel"): Handler.cancel,
            **{("GET", f"/files/{name}"): Handler.file for name in OUTPUT_NAMES},
        }

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.token}"

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests); ``serve_forever`` in the foreground otherwise."""
        thread = threading.Thread(target=self.serve_forever, name="vos-annotate", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.workspace.close()


def serve(
    workspace: Workspace,
    port: int = 0,
    open_browser: bool = True,
    say: Any = print,
) -> None:
    """``vos annotate``: print the page's address first, open it, serve until Ctrl-C.

    Ctrl-C (or SIGTERM) stops a running track at its next frame, waits for its outputs to be
    closed (valid files), then raises KeyboardInterrupt for the command's exit code.
    """
    try:
        server = AnnotateServer(workspace, port)
    except OSError as exc:
        workspace.close()
        raise VosError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
    print(server.url, flush=True)
    say(f"serving {workspace.source} on {HOST}:{server.port}; outputs go to {workspace.out_dir}")
    say("open the address above in your browser; Ctrl-C stops")
    if open_browser:
        import webbrowser

        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        running = workspace.job.state == "running"
        if running:
            say("stopping: closing the outputs of the running track...")
        server.server_close()
        workspace.close()
        if running:
            say(f"tracking stopped: {workspace.job.message}; the outputs written are valid")
        raise
