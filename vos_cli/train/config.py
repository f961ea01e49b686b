"""Training configuration: TOML files parsed into typed dataclasses.

Unknown keys and wrong types are errors that name the key, so a typo never silently falls back to
a default. Configs shipped with the package (``paper-r101``, ``lite0-cpu``, ``smoke``) are found
by name; anything else is a path. A config may list ``[[stages]]`` that override it stage by
stage (:func:`load_stages`; run by :mod:`vos_cli.train.stages`).
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
import copy
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from vos_cli.errors import VosError
from vos_cli.model.config import ModelConfig

SOURCE_KINDS = (
    "davis16",
    "davis17",
    "ytvos",
    "synth-coco",
    "synth-salient",
    "synth-instances",
    "generated",
)


@dataclass
class SourceConfig:
    """One training data set and its share of the samples."""

    kind: str
    root: str = ""
    split: str = "train"
    weight: float = 1.0
    twin_prob: float = 0.0
    """Synthetic sources only: how often one pasted object gets an identical twin distractor."""
    backgrounds: list[str] = field(default_factory=list)
    """Synthetic sources only: instance-mask folders whose images (of the same split) serve as
    backgrounds too, e.g. fully annotated scenes full of look-alike people."""


@dataclass
class DataConfig:
    size: list[int] = field(default_factory=lambda: [240, 432])
    num_frames: int = 8
    batch_size: int = 4
    workers: int = 1
    samples_per_epoch: int = 1000
    mode: str = "single"
    max_objects: int = 3
    augment: bool = True
    max_stride: int = 1
    """Largest gap between a real video's sampled frames (each snippet draws one in [1, this]):
    gaps above 1 show the network faster motion than consecutive frames do."""
    sources: list[SourceConfig] = field(default_factory=list)


@dataclass
class ValConfig:
    kind: str = "none"
    root: str = ""
    split: str = "dev"
    size: int = 240
    every_epochs: int = 1
    max_frames: int = 0


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 1e-5
    lr_decay: float = 0.975
    epochs: int = 160
    clip_grad_norm: float = 10.0
    coarse_loss_weight: float = 1.0
    iou_loss_weight: float = 0.0
    """Weight of a soft-Jaccard term on the fine prediction (per object, so a small object counts as
    much as a large one); 0 trains on cross-entropy alone."""
    iou_loss_on_coarse: bool = False
    """Also add the soft-Jaccard term to the coarse loss: the coarse mask is what the network
    feeds back to the next frame."""


@dataclass
class TrainConfig:
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"
    threads: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    snapshot_every: int = 0
    """Also keep the weights every this many steps (``checkpoints/snapshots/step_NNNNNN.pt``), for
    ``vos weights average``; 0 keeps none."""
    patience: int = 0
    max_steps: int = 0
    init_weights: str = ""
    backbone_weights: str = "imagenet"


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    val: ValConfig = field(default_factory=ValConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """Coerce/validate one TOML value against a dataclass field annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(value, inner[0], key)
    if origin is list:
        if not isinstance(value, list):
            raise VosError(f"config key {key!r} must be a list")
        return [_check_type(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if is_dataclass(annotation):
        if not isinstance(value, dict):
            raise VosError(f"config key {key!r} must be a table")
        return _build(annotation, value, key)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
            raise VosError(
                f"config key {key!r} must be {annotation.__name__}, got {type(value).__name__}"
            )
        return value
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            raise VosError(f"unknown config key {where!r}")
    kwargs = {
        k: _check_type(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()
    }
    return cls(**kwargs)


def parse_config(data: dict[str, Any]) -> ExperimentConfig:
    config = _build(ExperimentConfig, data, "")
    for i, source in enumerate(config.data.sources):
        if source.kind not in SOURCE_KINDS:
            raise VosError(
                f"config key 'data.sources[{i}].kind': unknown kind {source.kind!r} "
                f"(choose from {', '.join(SOURCE_KINDS)})"
            )
        if source.backgrounds and not source.kind.startswith("synth"):
            raise VosError(
                f"config key 'data.sources[{i}].backgrounds' applies to synthetic sources only"
            )
        if source.twin_prob and not source.kind.startswith("synth"):
            raise VosError(
                f"config key 'data.sources[{i}].twin_prob' applies to synthetic sources only "
                f"(this one is {source.kind!r})"
            )
        if not 0.0 <= source.twin_prob <= 1.0:
            raise VosError(f"config key 'data.sources[{i}].twin_prob' must be in [0, 1]")
    if config.data.mode not in ("single", "multi"):
        raise VosError("config key 'data.mode' must be 'single' or 'multi'")
    if config.data.num_frames < 2:
        raise VosError(
            "config key 'data.num_frames' must be at least 2 (frame 0 is the given mask)"
        )
    if config.data.max_stride < 1:
        raise VosError("config key 'data.max_stride' must be at least 1")
    if len(config.data.size) != 2:
        raise VosError("config key 'data.size' must be [height, width]")
    if any(side <= 0 or side % 16 for side in config.data.size):
        raise VosError(
            f"config key 'data.size' must be positive multiples of 16 (the backbone's stride), "
            f"got {config.data.size}"
        )
    return config


def apply_override(data: dict[str, Any], dotted: str, raw: str) -> None:
    """Apply one ``--set a.b=value`` override; the value is parsed as TOML when it can be."""
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise VosError(f"--set {dotted}: {part!r} is not a table")
    node[parts[-1]] = value


def builtin_config_names() -> list[str]:
    folder = resources.files("vos_cli.train") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_config_dict(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        resource = resources.files("vos_cli.train") / "configs" / f"{name_or_path}.toml"
        if not resource.is_file():
            raise VosError(
                f"config {name_or_path!r} not found: not a file, nor one of the shipped configs "
                f"({', '.join(builtin_config_names())})"
            )
        text = resource.read_text()
    else:
        if not path.is_file():
            raise VosError(f"config file not found: {path}")
        text = path.read_text()
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise VosError(f"config {name_or_path}: invalid TOML ({exc})") from None


def load_config(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """A config, resolved; for a multi-stage config its first stage (see :func:`load_stages`)."""
    return load_stages(name_or_path, overrides)[0].config


INIT_CHOICES = ("last", "best")
_STAGE_KEYS = {"name", "init"}


@dataclass
class Stage:
    name: str
    config: ExperimentConfig
    init: str | None  # which checkpoint of the previous stage to start from (None: the first)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_stages(name_or_path: str, overrides: list[str] | None = None) -> list[Stage]:
    """Every stage of a config, fully resolved; a config without stages is one unnamed stage."""
    data = load_config_dict(name_or_path)
    if data.get("kind") == "mask-maker":
        raise VosError(
            f"{name_or_path} is a mask-maker config (vos mask, --box), not a tracker's: "
            "vos train runs it"
        )
    raw = data.pop("stages", None) or [{"name": ""}]
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise VosError("config key 'stages' must be an array of tables ([[stages]])")
    names = [str(s.get("name", "")) for s in raw]
    if len(raw) > 1 and (not all(names) or len(set(names)) != len(names)):
        raise VosError("config key 'stages': every stage needs a distinct name")
    stages = []
    for index, (stage, name) in enumerate(zip(raw, names, strict=True)):
        init = stage.get("init", "last") if index else None
        if init is not None and init not in INIT_CHOICES:
            raise VosError(f"config key 'stages[{index}].init' must be 'last' or 'best'")
        merged = _merge(data, {k: v for k, v in stage.items() if k not in _STAGE_KEYS})
        for item in overrides or []:
            if "=" not in item:
                raise VosError(f"--set expects key=value, got {item!r}")
            key, raw_value = (part.strip() for part in item.split("=", 1))
            head, _, rest = key.partition(".")
            if head in names and rest and len(raw) > 1:
                if head == name:
                    apply_override(merged, rest, raw_value)
            else:
                apply_override(merged, key, raw_value)
        stages.append(Stage(name, parse_config(merged), init))
    return stages
