"""The mask maker's network, crop geometry, weights files, and that training learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vos_cli.errors import VosError
from vos_cli.prompts.model import (
    PROMPT_CHANNELS,
    CropNorm,
    MaskMakerConfig,
    MaskMakerNet,
    load_maskmaker,
    save_maskmaker,
)
from vos_cli.prompts.predictor import (
    MaskMaker,
    crop_window,
    paste_logits,
    prompt_maps,
    resolve_labels,
)
from vos_cli.prompts.types import Box, ObjectPrompt, Point

TINY = dict(crop_size=64, dim16=8, dim8=8, dim4=8, dim2=8, prompt_dim=8)


@pytest.fixture(scope="module")
def net() -> MaskMakerNet:
    torch.manual_seed(0)
    return MaskMakerNet(MaskMakerConfig(**TINY), backbone_weights=None).eval()


def test_shapes(net):
    crops = torch.rand(2, 3, 64, 64)
    feats = net.features(crops)
    assert tuple(feats.s16.shape) == (2, 320, 4, 4)
    assert tuple(feats.s8.shape) == (2, 40, 8, 8)
    assert tuple(feats.s4.shape) == (2, 24, 16, 16)
    assert tuple(feats.s2.shape) == (2, 16, 32, 32)
    prompt = torch.zeros(2, PROMPT_CHANNELS, 64, 64)
    logits, aux = net.decode(feats, prompt, aux=True)
    assert tuple(logits.shape) == (2, 1, 64, 64) and tuple(aux.shape) == (2, 1, 8, 8)
    # the prompt enters after the backbone: other clicks, same features
    prompt[:, 1, 30, 30] = 1.0
    assert not torch.equal(net.decode(feats, prompt), logits)


def test_crop_window():
    assert crop_window(Box(10, 20, 30, 40), 1.4, 2.0) == pytest.approx((6, 16, 34, 44))
    # a flat box: the crop's height grows to half its width
    assert crop_window(Box(0, 0, 100, 10), 1.0, 2.0) == pytest.approx((0, -20, 100, 30))


def test_prompt_maps_and_paste():
    config = MaskMakerConfig(**TINY)
    maps = prompt_maps(Box(16, 16, 48, 48), [Point(31, 31)], (0, 0, 64, 64), config)
    assert maps[0].sum() == 32 * 32 and maps[0, 31, 31] == 1 and maps[0, 0, 0] == 0
    assert maps[1, 31, 31] == pytest.approx(1.0) and maps[3:].sum() == 0
    logits = torch.full((64, 64), 3.0)
    pasted, rect = paste_logits(logits, (-10.0, 5.0, 30.0, 25.0), 20, 40)
    assert rect == (0, 5, 20, 25) and tuple(pasted.shape) == (20, 20)
    assert torch.allclose(pasted, torch.tensor(3.0))


def test_resolve_labels():
    probs = np.array([[[0.9, 0.6, 0.2, 0.7]], [[0.8, 0.7, 0.4, 0.7]]])
    assert resolve_labels(probs).tolist() == [[1, 2, 0, 1]]


def test_weights_round_trip_in_float16(tmp_path, net):
    path = tmp_path / "m.pt"
    save_maskmaker(net, path, meta={"step": 3})
    loaded, meta = load_maskmaker(path)
    assert meta == {"step": 3} and loaded.config == net.config
    data = torch.load(path, weights_only=True)
    assert data["state_dict"]["head.weight"].dtype == torch.float16
    crops, prompt = torch.rand(1, 3, 64, 64), torch.zeros(1, PROMPT_CHANNELS, 64, 64)
    with torch.no_grad():
        a, b = net(crops, prompt), loaded(crops, prompt)
    assert torch.allclose(a, b, atol=0.05)
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(VosError, match="cannot read mask maker weights"):
        load_maskmaker(tmp_path / "bad.pt")
    torch.save({"format": "vos-agame"}, tmp_path / "tracker.pt")
    with pytest.raises(VosError, match="not a mask maker weights file"):
        load_maskmaker(tmp_path / "tracker.pt")


def test_predictor_caches_features_and_returns_a_label_map(net):
    maker = MaskMaker(net)
    with pytest.raises(VosError, match="set_image"):
        maker.predict([ObjectPrompt(Box(0, 0, 5, 5))])
    rgb = np.zeros((48, 80, 3), np.uint8)
    maker.set_image(rgb)
    calls = []
    original = net.features
    net.features = lambda crops: calls.append(1) or original(crops)  # type: ignore[method-assign]
    try:
        box = Box(10, 10, 40, 30)
        labels = maker.predict([ObjectPrompt(box), ObjectPrompt(None, [Point(60, 20)])])
        maker.predict([ObjectPrompt(box, [Point(20, 20), Point(30, 15, False)])])
    finally:
        del net.features
    assert labels.shape == (48, 80) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2}
    assert len(calls) == 2  # the box's crop and the whole frame, each once
    with pytest.raises(VosError, match="outside the 80x48 frame"):
        maker.predict([ObjectPrompt(Box(10, 10, 90, 30))])


def test_predictor_pass_sequence_and_context(net):
    """Box alone ``box_passes`` times, each fed the last mask, then one pass per click; the crop
    is the box enlarged by the trained context scaled for a drawn box (1.4 -> 1.3)."""
    maker = MaskMaker(net, box_passes=2)
    assert net.config.context == 1.4 and maker.context == pytest.approx(1.3)
    box = Box(10, 10, 40, 30)
    assert maker.window_for(ObjectPrompt(box)) == pytest.approx(
        crop_window(box, 1.3, net.config.max_aspect)
    )
    maker.set_image(np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8))
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = net.decode

    def decode(feats, maps, **kw):
        out = original(feats, maps, **kw)
        seen.append((maps[0].clone(), out[0, 0].clone()))
        return out

    net.decode = decode  # type: ignore[method-assign]
    try:
        maker.predict_object(ObjectPrompt(box, [Point(20, 20)]))
    finally:
        del net.decode
    assert len(seen) == 3
    (m0, l0), (m1, l1), (m2, _) = seen
    assert m0[4].max() == 0 and m0[1].max() == 0  # no previous mask, no click
    assert m1[4].min() == 1 and torch.allclose(m1[3], torch.sigmoid(l0)) and m1[1].max() == 0
    assert torch.allclose(m2[3], torch.sigmoid(l1)) and m2[1].max() == pytest.approx(1.0, abs=0.2)
    with pytest.raises(VosError, match="box_passes"):
        MaskMaker(net, box_passes=0)


def write_instances(root: Path, count: int = 10) -> Path:
    """Red rectangles on grey (mask id 1), a strip of "unknown" (255) under each."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        img = np.full((60, 80, 3), 90, np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        x, y = rng.integers(5, 40), rng.integers(5, 30)
        img[y : y + 20, x : x + 25] = (220, 40, 40)
        mask[y : y + 20, x : x + 25] = 1
        mask[y + 20 : y + 23, x : x + 25] = 255
        Image.fromarray(img).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:03d}.png")
    return root


def tiny_config_toml(root: Path, steps: int, max_clicks: int = 2) -> str:
    return f"""
kind = "mask-maker"
name = "tiny"
[model]
crop_size = 64
dim16 = 8
dim8 = 8
dim4 = 8
dim2 = 8
prompt_dim = 8
[data]
batch_size = 2
workers = 0
[[data.sources]]
kind = "instances"
root = "{root}"
[val]
every_steps = 2
max_clicks = 1
[[val.sources]]
kind = "instances"
root = "{root}"
split = "val"
[optim]
steps = {steps}
lr = 3e-3
warmup_steps = 0
max_clicks = {max_clicks}
[train]
device = "cpu"
precision = "fp32"
threads = 1
log_every = 1
checkpoint_every = 2
backbone_weights = ""
"""


def test_a_few_training_steps_reduce_the_loss(tmp_path):
    from vos_cli.prompts.train import MaskMakerTrainer, parse_maskmaker_config

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    root = write_instances(tmp_path / "inst")
    config = parse_maskmaker_config(tomllib.loads(tiny_config_toml(root, 100, max_clicks=0)))
    config.model.train_from = "none"  # the decoder alone: fast and steady
    trainer = MaskMakerTrainer(config, tmp_path / "run", log=lambda m: None, progress=False)
    trainer._setup()
    trainer.step = 0
    batch = torch.utils.data.default_collate([trainer.samples[i] for i in range(4)])
    assert tuple(batch["image"].shape) == (4, 3, 64, 64)
    assert batch["ignore"].any()  # the "unknown" strips
    losses = []
    for _ in range(12):
        losses.append(trainer.train_step(batch)["loss"])
        trainer.step += 1
    assert losses[-1] < 0.8 * losses[0]


def test_train_command_checkpoints_resumes_and_writes_the_mask_maker(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vos_cli.cli import app

    root = write_instances(tmp_path / "inst")
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_config_toml(root, 3))
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        app, ["train", "--config", str(config), "--out", str(run), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "training finished: 3 steps" in result.output
    assert (run / "checkpoints" / "last.pt").is_file() and (
        run / "checkpoints" / "best.pt"
    ).is_file()
    net, meta = load_maskmaker(run / "maskmaker.pt")
    assert net.config.crop_size == 64 and "val" in meta
    again = runner.invoke(app, ["train", "--config", str(config), "--out", str(run)])
    assert again.exit_code == 2 and "--resume last" in again.output
    more = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(config),
            "--out",
            str(run),
            "--resume",
            "last",
            "--set",
            "optim.steps=5",
            "--no-progress",
        ],
    )
    assert more.exit_code == 0, more.output
    assert "resumed from" in more.output and "at step 3" in more.output
    assert "the config differs from the run's so far: optim.steps: 3 -> 5" in more.output
    assert "training finished: 5 steps" in more.output
    bad = runner.invoke(app, ["train", "--config", str(config), "--set", "model.nope=1"])
    assert bad.exit_code == 2 and "unknown config key 'model.nope'" in bad.output


def test_a_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    import signal

    from vos_cli.prompts.train import MaskMakerTrainer, parse_maskmaker_config

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    root = write_instances(tmp_path / "inst")

    def config():
        cfg = parse_maskmaker_config(tomllib.loads(tiny_config_toml(root, 4)))
        cfg.val.every_steps = 0
        return cfg

    whole = MaskMakerTrainer(config(), tmp_path / "whole", log=lambda m: None, progress=False)
    assert whole.run().steps == 4
    original = MaskMakerTrainer.train_step

    def stop_after_two(self, batch):
        record = original(self, batch)
        if self.step == 1:  # the second step: SIGINT, as Ctrl-C would
            signal.raise_signal(signal.SIGINT)
        return record

    monkeypatch.setattr(MaskMakerTrainer, "train_step", stop_after_two)
    parts = tmp_path / "parts"
    stopped = MaskMakerTrainer(config(), parts, log=lambda m: None, progress=False).run()
    assert stopped.interrupted and stopped.steps == 2 and stopped.weights is None
    monkeypatch.setattr(MaskMakerTrainer, "train_step", original)
    last = parts / "checkpoints" / "last.pt"
    resumed = MaskMakerTrainer(config(), parts, resume=last, log=lambda m: None, progress=False)
    assert resumed.run().steps == 4
    # the checkpoints keep float32 weights: bit for bit the same
    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["step"] == b["step"] == 4
    a, b = a["weights"]["state_dict"], b["weights"]["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (parts / "maskmaker.pt").is_file()


def test_crop_norm_uses_each_crops_own_statistics_outside_training():
    torch.manual_seed(1)
    norm = CropNorm(3)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        norm.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
        norm.running_mean.fill_(10.0)  # must not be used
        norm.running_var.fill_(100.0)
    x = torch.randn(2, 3, 5, 4) * torch.tensor([1.0, 3.0, 0.2]).view(1, 3, 1, 1) + 7
    norm.eval()
    got = norm(x).double()
    xd = x.double()
    mean = xd.mean(dim=(2, 3), keepdim=True)
    var = xd.var(dim=(2, 3), unbiased=False, keepdim=True)
    w, b = norm.weight.double().view(1, 3, 1, 1), norm.bias.double().view(1, 3, 1, 1)
    want = (xd - mean) / torch.sqrt(var + norm.eps) * w + b
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(norm(x[1:]), norm(x)[1:], atol=1e-6)  # a crop alone = in a batch


def test_crop_norm_trains_as_batch_norm():
    torch.manual_seed(2)
    norm, plain = CropNorm(4), torch.nn.BatchNorm2d(4)
    plain.load_state_dict(norm.state_dict())
    x = torch.randn(3, 4, 6, 6)
    assert torch.allclose(norm.train()(x), plain.train()(x), atol=1e-6)
    assert torch.allclose(norm.running_mean, plain.running_mean)


def test_crop_norm_per_crop_in_training_matches_a_float64_reference():
    """train_norm = "crop": training normalises each crop by its own statistics, as inference does."""
    torch.manual_seed(3)
    norm = CropNorm(2)
    norm.per_crop_in_training = True
    x = torch.randn(3, 2, 5, 5) * 4 + 2
    got = norm.train()(x).double()
    xd = x.double()
    mean = xd.mean(dim=(2, 3), keepdim=True)
    var = xd.var(dim=(2, 3), unbiased=False, keepdim=True)
    want = (xd - mean) / torch.sqrt(var + norm.eps)  # weight 1, bias 0 at initialisation
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(norm.train()(x[:1]), norm.train()(x)[:1], atol=1e-6)


def test_train_norm_setting_reaches_every_decoder_norm():
    crop = MaskMakerNet(MaskMakerConfig(train_norm="crop"), backbone_weights=None)
    batch = MaskMakerNet(MaskMakerConfig(), backbone_weights=None)
    flags = [m.per_crop_in_training for m in crop.modules() if isinstance(m, CropNorm)]
    assert flags and all(flags)
    assert not any(m.per_crop_in_training for m in batch.modules() if isinstance(m, CropNorm))
    with pytest.raises(VosError, match="train_norm"):
        MaskMakerConfig(train_norm="group").check()
