"""Which multi-object protocol each benchmark follows: the one the authors ran it with.

On DAVIS 2017 and YouTube-VOS the authors pass every prediction through the softmax aggregation
before it is fed back and written, even when a video (or, on YouTube-VOS, a video so far) has a
single object; for one object that sharpens its probability from sigmoid(m) to sigmoid(2m). On
DAVIS 2016 a lone object is used as predicted. ``vos segment`` and the ``Tracker`` default to
the latter; the dataset benchmarks default to the authors' choice for their dataset.
"""

from __future__ import annotations

from vos_cli.errors import VosError

AGGREGATE_SINGLE = {"davis16": False, "davis17": True, "ytvos": True}


def aggregate_single(dataset: str, choice: bool | None = None) -> bool:
    """Whether a lone object is aggregated: ``choice`` when given, else the dataset's protocol."""
    if dataset not in AGGREGATE_SINGLE:
        raise VosError(f"no multi-object protocol is defined for {dataset!r}")
    return AGGREGATE_SINGLE[dataset] if choice is None else choice
