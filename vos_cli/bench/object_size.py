"""Scores split by object size, so that a change aimed at small objects shows where it acts.

An object is *small* when it covers less than :data:`SMALL_OBJECT_FRACTION` of the frame in its
first annotation: at the default 240p network size that is under about 12 stride-16 cells,
where a 15x27 feature grid starts to lose it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vos_cli.data.davis import VOID_ID, DavisSequence

SMALL_OBJECT_FRACTION = 0.03


class ScoredObject(Protocol):
    sequence: str
    object_id: int
    j_mean: float
    f_mean: float


@dataclass(frozen=True)
class SizeGroup:
    """Mean J, F and J&F over the objects of one size group."""

    name: str
    objects: int
    j_mean: float
    f_mean: float

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2


def first_mask_fractions(sequence: DavisSequence) -> dict[int, float]:
    """Each object's share of the frame in the sequence's first annotation (void excluded)."""
    ids = sequence.read_annotation(0)
    counts = np.bincount(ids.ravel(), minlength=256)
    return {int(k): counts[k] / ids.size for k in np.nonzero(counts)[0] if k not in (0, VOID_ID)}


def size_groups(
    objects: Iterable[ScoredObject],
    sequences: Sequence[DavisSequence],
    threshold: float = SMALL_OBJECT_FRACTION,
) -> list[SizeGroup]:
    """Split scored objects into ``small`` and ``large`` by their first-frame area.

    An object absent from its first annotation (it enters later) counts as small.
    """
    fractions = {s.name: first_mask_fractions(s) for s in sequences}
    groups: dict[str, list[ScoredObject]] = {"small": [], "large": []}
    for obj in objects:
        fraction = fractions.get(obj.sequence, {}).get(obj.object_id, 0.0)
        groups["small" if fraction < threshold else "large"].append(obj)
    return [
        SizeGroup(
            name,
            len(members),
            float(np.mean([o.j_mean for o in members])) if members else float("nan"),
            float(np.mean([o.f_mean for o in members])) if members else float("nan"),
        )
        for name, members in groups.items()
    ]
