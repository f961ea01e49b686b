"""The authors' whole trainer file loads without their code; a file that would run code does not.

Their ``VOSTrainer.save_checkpoint`` writes ``{'epoch', 'net_type', 'net', 'optimizer', 'stats',
'use_gpu'}`` from a GPU, with ``stats`` holding instances of their ``utils.stats.AverageMeter``.
The files here are written exactly that way (the class lives in a module that is deleted before
loading; storages are tagged ``cuda:0`` as a GPU run writes them), in both the zip format and the
legacy one of the PyTorch versions the authors used.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.test_official_checkpoint import authors_net
from vos_cli.cli import app
from vos_cli.errors import VosError
from vos_cli.model.factory import load_model, read_weights_file
from vos_cli.model.safe_load import StandIn, load_untrusted

STAT_KEYS = ("train_vos loss", "train_vos mIoU", "val_vos loss", "val_vos mIoU")


def _authors_stats_module() -> tuple[types.ModuleType, type]:
    """``utils.stats`` with a running-average class shaped like theirs (floats and a history)."""
    module = types.ModuleType("utils.stats")

    class AverageMeter:
        def __init__(self) -> None:
            self.avg, self.sum, self.count, self.val = 0.0, 0.0, 0, 0.0
            self.history: list[float] = []

        def update(self, value: float) -> None:
            self.val, self.sum, self.count = value, self.sum + value, self.count + 1
            self.avg = self.sum / self.count
            self.history.append(self.avg)

    AverageMeter.__module__, AverageMeter.__qualname__ = "utils.stats", "AverageMeter"
    module.AverageMeter = AverageMeter
    return module, AverageMeter


def _optimizer_state(net: dict[str, torch.Tensor]) -> dict:
    """A real Adam state dict after one step over a few of the network's tensors."""
    params = [torch.nn.Parameter(net[k].clone()) for k in ("trackseg.appmod.conv_in.bias",) * 2]
    adam = torch.optim.Adam(params, lr=1e-5, weight_decay=1e-6)
    sum(p.square().sum() for p in params).backward()
    adam.step()
    return adam.state_dict()


def write_trainer_file(path: Path, monkeypatch: pytest.MonkeyPatch, legacy: bool) -> dict:
    net = authors_net()
    saved_modules = {k: sys.modules.get(k) for k in ("utils", "utils.stats")}
    module, meter_class = _authors_stats_module()
    package = types.ModuleType("utils")
    package.stats = module
    sys.modules.update({"utils": package, "utils.stats": module})
    try:
        stats = {}
        for i, key in enumerate(STAT_KEYS):
            stats[key] = meter_class()
            stats[key].update(0.5 + i)
            stats[key].update(1.5 + i)
        data = {
            "epoch": 87,
            "net_type": "AGAME",
            "net": net,
            "optimizer": _optimizer_state(net),
            "stats": stats,
            "use_gpu": True,
        }
        with monkeypatch.context() as patch:  # storages recorded as a GPU run records them
            patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
            torch.save(data, path, _use_new_zipfile_serialization=not legacy)
    finally:  # the authors' code is gone before the file is read
        for name, old in saved_modules.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return data


@pytest.fixture(scope="module", params=["zip", "legacy"])
def trainer_file(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("trainer") / "main_runfile_beta_best.pth.tar"
    with pytest.MonkeyPatch.context() as patch:
        data = write_trainer_file(path, patch, legacy=request.param == "legacy")
    return path, data


def test_whole_trainer_file_loads_as_data(trainer_file):
    path, written = trainer_file
    if "utils.stats" not in sys.modules:
        with pytest.raises(ModuleNotFoundError):  # what a plain torch.load would need
            torch.load(path, map_location="cpu", weights_only=False)
    data = load_untrusted(path)
    assert set(data) == {"epoch", "net_type", "net", "optimizer", "stats", "use_gpu"}
    assert data["epoch"] == 87 and data["net_type"] == "AGAME" and data["use_gpu"] is True
    for key, value in written["net"].items():
        assert data["net"][key].device.type == "cpu"
        assert torch.equal(data["net"][key], value)
    state = data["optimizer"]["state"][0]
    assert torch.equal(state["exp_avg"], written["optimizer"]["state"][0]["exp_avg"])
    assert data["optimizer"]["param_groups"][0]["lr"] == 1e-5
    meter = data["stats"]["val_vos mIoU"]
    assert isinstance(meter, StandIn)
    assert type(meter).__module__ == "utils.stats" and type(meter).__name__ == "AverageMeter"
    assert meter.avg == pytest.approx((3.5 + 4.5) / 2) and meter.history == [3.5, 4.0]
    assert "utils.stats" not in sys.modules or sys.modules["utils.stats"] is not None


def test_trainer_file_runs_as_our_model_and_reports_epoch(trainer_file):
    path, written = trainer_file
    model, meta = load_model(path)
    assert meta["epoch"] == 87 and meta["net_type"] == "AGAME"
    torch.testing.assert_close(
        model.state_dict()["fusion.predictor.weight"],
        written["net"]["trackseg.fusmod.predictor.layer00.conv.weight"],
    )
    info = CliRunner().invoke(app, ["weights", "info", str(path)])
    assert info.exit_code == 0, info.output
    assert "epoch: 87" in info.output and "net_type: AGAME" in info.output


@pytest.mark.parametrize("trainer_file", ["zip"], indirect=True)  # one format runs the network
def test_trainer_file_segments_and_benches(trainer_file, tmp_path):
    path, _ = trainer_file
    from tests.test_bench_davis import make_davis17

    root = make_davis17(tmp_path / "davis", {"cows": 2})
    runner = CliRunner()
    common = ["--weights", str(path), "--device", "cpu", "--precision", "fp32", "--size", "0"]
    out = tmp_path / "masks"
    frames = root / "JPEGImages" / "480p" / "cows"
    mask = root / "Annotations" / "480p" / "cows" / "00000.png"
    seg = runner.invoke(
        app, ["segment", str(frames), "--mask", str(mask), "--out", str(out)] + common
    )
    assert seg.exit_code == 0, seg.output
    assert len(list(out.glob("*.png"))) == len(list(frames.glob("*.jpg")))
    bench = ["bench", "davis17", "--root", str(root), "--results", str(tmp_path / "res")]
    result = runner.invoke(app, bench + common + ["--processes", "1"])
    assert result.exit_code == 0, result.output
    assert "J&F-Mean" in result.output


class _Payload:
    """Pickles as a call of ``func(*args)``: what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, _Payload]:
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.exec": _Payload(builtins.exec, code),
        "builtins.eval": _Payload(builtins.eval, f"__import__('os').system('touch {marker}')"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
        "pathlib.Path.touch": _Payload(Path.touch, marker),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "builtins.eval", "subprocess.call"])
@pytest.mark.parametrize("legacy", [False, True])
def test_code_on_load_is_refused_and_never_runs(name, legacy, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil_beta_best.pth.tar"
    net = {"trackseg.appmod.cov_reg": torch.zeros(4, 1, 8, 1, 1)}  # a net; its size is no matter
    data = {"net": net, "epoch": 1, "stats": _payloads(marker)[name]}
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(VosError) as err:
        read_weights_file(path)
    assert "\n" not in str(err.value) and "refusing to load" in str(err.value)
    result = CliRunner().invoke(app, ["weights", "info", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "refusing" in lines[0]
    assert not marker.exists()


def test_calling_a_named_class_is_refused(tmp_path):
    """A class the file names becomes a stand-in; constructing it by a call is still refused."""
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth.tar"
    torch.save({"net": {}, "x": _payloads(marker)["pathlib.Path.touch"]}, path)
    with pytest.raises(VosError, match="refusing to load"):
        load_untrusted(path)
    assert not marker.exists()


def test_not_a_checkpoint_is_a_clean_error(tmp_path):
    path = tmp_path / "notes.pth.tar"
    path.write_text("hello")
    with pytest.raises(VosError, match="not a PyTorch checkpoint") as err:
        read_weights_file(path)
    assert "\n" not in str(err.value)
