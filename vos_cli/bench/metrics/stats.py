"""Per-object Mean/Recall/Decay of the DAVIS protocol and the types that carry the scores."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def db_statistics(values: np.ndarray | Sequence[float]) -> tuple[float, float, float]:
    """Mean, Recall (fraction of frames > 0.5) and Decay of one object's per-frame scores.

    Decay = mean of the first bin - mean of the last bin, the bins being ``v[e[i]:e[i+1]+1]``
    with edges ``e = round(linspace(1, n, 5) + 1e-10) - 1`` (neighbouring bins share their edge
    frame), exactly as the toolkit's ``db_statistics``. The toolkit stores the edges as uint8;
    we use plain integers, which gives the same result for up to 256 scored frames.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return math.nan, math.nan, math.nan
    edges = (np.round(np.linspace(1, v.size, 5) + 1e-10) - 1).astype(np.int64)
    first = v[edges[0] : edges[1] + 1]
    last = v[edges[3] : edges[4] + 1]
    with warnings.catch_warnings():  # all-NaN input gives NaN, quietly, like the toolkit
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = float(np.nanmean(v))
        decay = float(np.nanmean(first) - np.nanmean(last))
    recall = float(np.mean(v > 0.5))
    return mean, recall, decay


@dataclass(frozen=True)
class ObjectScore:
    """Statistics of one object of one sequence (a row of the per-sequence CSV)."""

    sequence: str
    object_id: int
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float

    @property
    def name(self) -> str:
        """Row label used by the toolkit: ``<sequence>_<object id>``."""
        return f"{self.sequence}_{self.object_id}"


@dataclass
class SequenceScores:
    """Per-frame scores of one sequence: ``j``/``f`` have shape (num_objects, T - 2).

    Column ``t`` is frame ``t + 1`` of the sequence (first and last frames are not scored).
    """

    name: str
    j: np.ndarray
    f: np.ndarray

    def object_scores(self) -> list[ObjectScore]:
        """Mean/Recall/Decay of each object."""
        rows = []
        for k in range(self.j.shape[0]):
            jm, jr, jd = db_statistics(self.j[k])
            fm, fr, fd = db_statistics(self.f[k])
            rows.append(ObjectScore(self.name, k + 1, jm, jr, jd, fm, fr, fd))
        return rows


@dataclass
class BenchResult:
    """All scored objects; global numbers are plain means over objects of all sequences."""

    objects: list[ObjectScore]

    def _mean(self, attr: str) -> float:
        if not self.objects:
            return math.nan
        return float(np.mean([getattr(o, attr) for o in self.objects]))

    @property
    def j_mean(self) -> float:
        return self._mean("j_mean")

    @property
    def f_mean(self) -> float:
        return self._mean("f_mean")

    @property
    def jf_mean(self) -> float:
        """The headline number: (J-Mean + F-Mean) / 2."""
        return (self.j_mean + self.f_mean) / 2

    def global_metrics(self) -> dict[str, float]:
        """The global CSV row, keyed by :data:`GLOBAL_COLUMNS`."""
        values = (
            self.jf_mean,
            self.j_mean,
            self._mean("j_recall"),
            self._mean("j_decay"),
            self.f_mean,
            self._mean("f_recall"),
            self._mean("f_decay"),
        )
        return dict(zip(GLOBAL_COLUMNS, values, strict=True))
