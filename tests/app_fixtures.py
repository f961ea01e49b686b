"""Fixtures of the ``vos annotate`` tests: a tiny mask maker, a short clip, a running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import moving_shapes_frames, write_video
from vos_cli.app.server import AnnotateServer
from vos_cli.app.workspace import Workspace

TINY_MASKMAKER = dict(crop_size=64, dim16=8, dim8=8, dim4=8, dim2=8, prompt_dim=8)


@pytest.fixture(scope="session")
def tiny_maskmaker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random mask maker whose head says "object" everywhere in its crop: a box gives a
    predictable mask (the crop around it), as a trained one would give the object."""
    from vos_cli.prompts.model import MaskMakerConfig, MaskMakerNet, save_maskmaker

    torch.manual_seed(0)
    net = MaskMakerNet(MaskMakerConfig(**TINY_MASKMAKER), backbone_weights=None)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(4.0)
    path = tmp_path_factory.mktemp("maskmaker") / "tiny-maskmaker.pt"
    save_maskmaker(net, path, meta={"note": "random test mask maker"}, half=False)
    return path


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    """A real 12-frame H.264 clip, 96x64."""
    return write_video(tmp_path / "clip.mp4", moving_shapes_frames(12))


@pytest.fixture()
def annotate_server(
    clip: Path, tmp_path: Path, tiny_model_path: Path, tiny_maskmaker_path: Path
) -> Iterator[AnnotateServer]:
    workspace = Workspace(
        clip,
        tmp_path / "out",
        weights=tiny_model_path,
        mask_weights=tiny_maskmaker_path,
        device="cpu",
    )
    server = AnnotateServer(workspace, 0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
