"""Running the tracker over an annotated sequence (DAVIS-style), as bench and validation do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from vos_cli.inference.tracker import Tracker


class AnnotatedSequence(Protocol):
    name: str

    def read_frame(self, i: int) -> np.ndarray: ...

    def read_annotation(self, i: int) -> np.ndarray: ...


def first_appearances(sequence: Any, num_frames: int) -> dict[int, np.ndarray]:
    """Masks to give the tracker: frame 0's, plus any later annotation that adds new objects.

    DAVIS 2017 semi-supervised protocol: only the first frame's mask is given, but an object
    whose first annotation comes later (YouTube-VOS, and rare DAVIS 2017 cases) is given there,
    restricted to that new object.
    """
    paths = getattr(sequence, "annotation_paths", None)
    given: dict[int, np.ndarray] = {0: sequence.read_annotation(0)}  # frame 0 is annotated
    if paths is None or len(paths) <= 1 or len(paths) == num_frames:
        # Fully annotated (DAVIS val/train): the protocol gives frame 0 only.
        return given
    seen = set(np.unique(given[0]).tolist()) - {0, 255}
    frame_names = [p.stem for p in sequence.frame_paths]
    for position, path in enumerate(paths[1:], start=1):
        if path.stem not in frame_names:
            continue
        index = frame_names.index(path.stem)
        labels = np.asarray(sequence.read_annotation(position))  # indexes annotation_paths
        new = set(np.unique(labels).tolist()) - {0, 255} - seen
        if new:
            given[index] = np.where(np.isin(labels, list(new)), labels, 0).astype(np.uint8)
            seen |= new
    return given


def track_sequence(
    tracker: Tracker, sequence: Any, num_frames: int | None = None
) -> Iterator[np.ndarray]:
    """Yields the label map of every frame of ``sequence`` (frame 0 included)."""
    total = len(sequence.frame_paths) if num_frames is None else num_frames
    for index, mask in first_appearances(sequence, total).items():
        tracker.add_mask(index, mask)
    for i in range(total):
        yield tracker.step(sequence.read_frame(i))
