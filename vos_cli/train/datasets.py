"""Turning a config's ``[data]`` section into one (mixed) training dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vos_cli.data.snippets import EpochDataset, MixedDataset, VideoSnippetDataset
from vos_cli.errors import VosError
from vos_cli.train.config import ExperimentConfig, SourceConfig


def _source_dataset(source: SourceConfig, config: ExperimentConfig, index: int) -> EpochDataset:
    data = config.data
    size = (data.size[0], data.size[1])
    seed = config.train.seed * 1000 + index
    common: dict[str, Any] = dict(
        num_frames=data.num_frames,
        size=size,
        mode=data.mode,
        max_objects=data.max_objects,
        seed=seed,
        samples_per_epoch=data.samples_per_epoch,
    )
    if source.kind == "generated":
        from vos_cli.data.shapes import MovingShapes

        return MovingShapes(**common)
    root = Path(source.root).expanduser()
    if not root.exists():
        raise VosError(f"data folder not found: {root} (data.sources[{index}].root)")
    if source.kind.startswith("davis"):
        from vos_cli.data.davis import load_davis

        year = "2016" if source.kind == "davis16" else "2017"
        videos = load_davis(root, source.split, year)
        return VideoSnippetDataset(
            videos, augment=data.augment, name=source.kind, max_stride=data.max_stride, **common
        )
    if source.kind == "ytvos":
        from vos_cli.data.ytvos import load_ytvos

        videos = load_ytvos(root, source.split)
        return VideoSnippetDataset(
            videos, augment=data.augment, name="ytvos", max_stride=data.max_stride, **common
        )
    from vos_cli.data.synth import SynthVOS
    from vos_cli.data.synth_sources import load_instance_folder, load_synth_source

    if source.kind == "synth-instances":
        instances, backgrounds = load_instance_folder(root, source.split)
    else:
        split = source.split if source.kind == "synth-coco" else ""
        instances, backgrounds = load_synth_source(root, split or "train2017")
    for folder in source.backgrounds:
        extra = Path(folder).expanduser()
        backgrounds = backgrounds + load_instance_folder(extra, source.split)[1]
    return SynthVOS(
        instances,
        backgrounds,
        augment=data.augment,
        name=source.kind,
        twin_prob=source.twin_prob,
        **common,
    )


def build_training_dataset(config: ExperimentConfig) -> EpochDataset:
    sources = config.data.sources
    if not sources:
        raise VosError("config has no [[data.sources]]: nothing to train on")
    datasets = [_source_dataset(s, config, i) for i, s in enumerate(sources)]
    if len(datasets) == 1:
        return datasets[0]
    return MixedDataset(
        datasets,
        [s.weight for s in sources],
        config.data.samples_per_epoch,
        seed=config.train.seed,
    )
