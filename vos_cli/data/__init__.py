"""Datasets: DAVIS, YouTube-VOS and SynthVOS, plus sampling and augmentation.

The training names below are imported lazily (PEP 562) so that ``import vos_cli.data.davis``, used
by inference and benchmarking, does not pay for importing torch through the training modules.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EpochDataset": "snippets",
    "MixedDataset": "snippets",
    "VideoSnippetDataset": "snippets",
    "sample_rng": "snippets",
    "temporal_indices": "snippets",
    "AugmentConfig": "transforms",
    "augment_snippet": "transforms",
    "resize_snippet": "transforms",
    "color_jitter": "transforms",
    "SynthVOS": "synth",
    "MotionConfig": "synth",
    "ObjectInstance": "synth_sources",
    "load_synth_source": "synth_sources",
    "load_yolo_instances": "synth_sources",
    "load_salient_instances": "synth_sources",
    "list_images": "synth_sources",
    "YouTubeVOSVideo": "ytvos",
    "load_ytvos": "ytvos",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
