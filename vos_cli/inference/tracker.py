"""A stateful, streaming multi-object tracker: masks in, one frame at a time, label maps out.

Memory is independent of video length: the only things kept between frames are each object's
A-GAME state (its mixture, first-frame encoding and masks at stride 16). The backbone runs once
per frame and all objects go through the heads as one batch.

With ``flip=True`` the tracker also follows every object through the mirrored video (one
backbone batch of two images, one state per view) and averages the two views' probabilities
before they are aggregated and fed back, so each view's recurrence sees the better mask.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vos_cli.errors import VosError
from vos_cli.inference.runtime import (
    autocast,
    compile_backbone,
    resolve_device,
    resolve_precision,
    tune_for_device,
)
from vos_cli.inference.sizing import size_for_first_mask, working_size
from vos_cli.model.agame import STRIDE, AGame, ObjectState, pool_to_stride16, two_channel
from vos_cli.model.aggregation import aggregate, margins, mean_probability_log_odds
from vos_cli.model.appearance import MixtureParams
from vos_cli.model.fold import fold_frozen_batchnorm

IGNORE = 255


def check_size(size: int | None) -> None:
    """``--size``: None (the model's own), 0 (the video's resolution) or one network stride up."""
    if size is not None and (size < 0 or 0 < size < STRIDE):
        raise VosError(f"--size must be 0 (native) or at least {STRIDE} pixels, got {size}")


def pad_amounts(height: int, width: int) -> tuple[int, int]:
    return (-height) % STRIDE, (-width) % STRIDE


def pad_offsets(pad: int) -> tuple[int, int]:
    """(before, after): the authors split padding with the odd pixel before (top/left)."""
    return (pad + 1) // 2, pad // 2


class Tracker:
    """Follows every object given by ``add_mask`` through the frames passed to ``step``.

    Object ids are the user's (gaps allowed, 255 ignored). A mask given at a later frame starts
    the objects it introduces there; where it names pixels, it overrides the prediction.
    ``aggregate_single`` also passes a lone object through the softmax aggregation before it is
    fed back and written, as the authors do on DAVIS 2017 and YouTube-VOS (it sharpens the
    object's probability); by default one object is left as the network predicts it.
    """

    def __init__(
        self,
        model: AGame,
        device: str = "auto",
        precision: str = "auto",
        size: int | None = None,
        compile: bool = False,
        flip: bool = False,
        aggregate_single: bool = False,
    ):
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        tune_for_device(self.device)
        # A private copy with frozen BatchNorms folded into their convolutions: the same
        # function, one pass less over every backbone feature map.
        model = copy.deepcopy(model).eval().requires_grad_(False)
        fold_frozen_batchnorm(model.backbone)
        self.model = model.to(self.device)
        if self.device.type == "cpu" or self.dtype != torch.float32:
            self.model = self.model.to(memory_format=torch.channels_last)
        if compile:  # on the private copy: a deep copy drops a module's compiled forward
            compile_backbone(self.model)
        check_size(size)
        # None: the model's own size, raised per video for small objects (inference.sizing);
        # a number (0: the video's resolution) is kept for every video.
        self.requested_size = size
        self.views = 2 if flip else 1
        self.aggregate_single = aggregate_single
        self.reset()

    def reset(self) -> None:
        """Forget every object and frame: ready for a new video with the same (compiled) model."""
        own = self.model.config.inference_size
        self.size: int | None = (
            own if self.requested_size is None else self.requested_size
        ) or None
        self.frame_index = 0
        self.work_shape: tuple[int, int] | None = None
        """The network's input size (height, width) of the last frame it ran on."""
        self.object_ids: list[int] = []
        self.states: list[ObjectState] | None = None  # one per view (the mirrored one second)
        self.pending: dict[int, np.ndarray] = {}

    @property
    def num_objects(self) -> int:
        return len(self.object_ids)

    @property
    def state(self) -> ObjectState | None:
        """The objects' state in the video as given (view 0)."""
        return self.states[0] if self.states is not None else None

    def add_mask(self, frame_index: int, label_map: np.ndarray) -> None:
        """Register a label map (H, W) of object ids for a frame not yet processed."""
        if frame_index < self.frame_index:
            raise VosError(f"mask for frame {frame_index} comes after that frame was processed")
        if label_map.ndim != 2:
            raise VosError("a mask must be a 2-D map of object ids")
        if label_map.size and (int(label_map.min()) < 0 or int(label_map.max()) > IGNORE):
            raise VosError("object ids must be 1..254 (0 is background, 255 ignored)")
        ids = set(np.unique(label_map).tolist()) - {0, IGNORE}
        if not ids:
            raise VosError(f"the mask for frame {frame_index} contains no object")
        self.pending[frame_index] = label_map.astype(np.uint8, copy=False)

    def snapshot(self) -> dict[str, Any]:
        """Everything the tracker carries to its next frame, as CPU tensors and plain values.

        A tracker of the same model and options given it by :meth:`restore` continues exactly
        as this one would (``vos segment --resume``). Small: per object, the mixture, the
        first-frame encoding and two masks at stride 16; plus masks given for later frames.
        """
        return {
            "frame_index": self.frame_index,
            "size": self.size,
            "work_shape": None if self.work_shape is None else list(self.work_shape),
            "object_ids": list(self.object_ids),
            "states": None if self.states is None else [_state_tensors(s) for s in self.states],
            "pending": {int(i): torch.from_numpy(m.copy()) for i, m in self.pending.items()},
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot` (of a tracker with the same model and options)."""
        self.reset()
        self.frame_index = int(snapshot["frame_index"])
        self.size = snapshot["size"]
        shape = snapshot["work_shape"]
        self.work_shape = None if shape is None else (int(shape[0]), int(shape[1]))
        self.object_ids = [int(i) for i in snapshot["object_ids"]]
        states = snapshot["states"]
        if states is not None:
            if len(states) != self.views:
                raise VosError("the saved tracker state was made with another --flip setting")
            self.states = [_state_from_tensors(s, self.device) for s in states]
        self.pending = {int(i): m.numpy().astype(np.uint8) for i, m in snapshot["pending"].items()}

    # ------------------------------------------------------------------------------------------
    def _to_input(self, frame: np.ndarray) -> tuple[Tensor, tuple[int, int]]:
        height, width = frame.shape[:2]
        if not frame.flags.writeable:  # e.g. from PIL; torch.from_numpy wants writable memory
            frame = frame.copy()
        image = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
        image = image.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        work_h, work_w = working_size(height, width, self.size)
        self.work_shape = (work_h, work_w)
        if (work_h, work_w) != (height, width):
            image = F.interpolate(image, size=(work_h, work_w), mode="bilinear", antialias=True)
        pad_h, pad_w = pad_amounts(work_h, work_w)
        if pad_h or pad_w:
            image = _reflect_pad(image, pad_h, pad_w)
        return image.contiguous(memory_format=torch.channels_last), (work_h, work_w)

    def _mask_to_work(self, label_map: np.ndarray, work: tuple[int, int], padded: tuple[int, int]):
        labels = torch.from_numpy(np.array(label_map, copy=True)).to(self.device)
        labels = labels[None, None].float()
        if labels.shape[-2:] != work:
            labels = F.interpolate(labels, size=work, mode="nearest-exact")
        pad_h, pad_w = padded[0] - work[0], padded[1] - work[1]
        if pad_h or pad_w:
            labels = _reflect_pad(labels, pad_h, pad_w)
        return labels[0, 0].round().to(torch.int64)

    def step(self, frame: np.ndarray) -> np.ndarray:
        """Segment the next frame (H, W, 3 uint8 RGB); returns an (H, W) uint8 map of user ids."""
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise VosError("frames must be H x W x 3 RGB images")
        return self._step(frame)

    @torch.inference_mode()
    def _step(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        if self.states is None and self.frame_index not in self.pending:
            self.frame_index += 1  # nothing to track yet: skip the network entirely
            return np.zeros((height, width), dtype=np.uint8)
        if self.states is None and self.requested_size is None:
            # The first frame with objects: choose the network's size from their mask.
            self.size = (
                size_for_first_mask(
                    self.pending[self.frame_index],
                    self.model.config.inference_size,
                    self.model.config.small_object_size,
                )
                or None
            )
        image, work = self._to_input(frame)
        padded = image.shape[-2:]
        if self.views == 2:  # the whole padded canvas mirrored: flipping back is pixel-exact
            image = torch.cat([image, image.flip(-1)])
        owners = [
            torch.full((self.num_objects,), view, dtype=torch.long, device=self.device)
            for view in range(self.views)
        ]
        coarse: list[Tensor] | None = None
        with autocast(self.device, self.dtype):
            encoding = self.model.encode_frame(image)
            if self.states is not None:
                view_log_odds = []
                if self.model.config.test_recurrence == "coarse":
                    coarse = []
                for view, (state, owner) in enumerate(zip(self.states, owners, strict=True)):
                    prediction = self.model.predict(encoding, state, owner)
                    if coarse is not None:
                        coarse.append(torch.softmax(prediction.coarse_logits, dim=1))
                    view_log_odds.append(_as_view(margins(prediction.fine_logits), view))
                log_odds = (
                    view_log_odds[0]
                    if self.views == 1
                    else mean_probability_log_odds(torch.stack(view_log_odds))
                )
                probs = aggregate(log_odds, single=self.aggregate_single)  # (O + 1, Hp, Wp)
            else:
                probs = torch.ones((1, *padded), device=self.device)

            given = self.pending.get(self.frame_index)
            new_ids: list[int] = []
            if given is not None:
                if given.shape != (height, width):
                    raise VosError(
                        f"mask for frame {self.frame_index} is {given.shape[1]}x{given.shape[0]}, "
                        f"the video is {width}x{height}"
                    )
                labels = self._mask_to_work(given, work, padded)
                present = sorted(set(torch.unique(labels).tolist()) - {0, IGNORE})
                lost = sorted(set(np.unique(given).tolist()) - {0, IGNORE} - set(present))
                if lost:
                    warnings.warn(
                        f"object(s) {lost} vanish at the network's resolution; "
                        "run with a larger --size to track them",
                        stacklevel=2,
                    )
                new_ids = [i for i in present if i not in self.object_ids]
                all_ids = self.object_ids + new_ids
                if new_ids:
                    probs = torch.cat([probs, probs.new_zeros((len(new_ids), *padded))])
                probs = _override(probs, labels, all_ids, first=self.states is None)

            # the new state is built aside and committed below, all at once
            states = self.states
            if states is not None:
                object_probs = probs[1 : self.num_objects + 1, None]
                mask16 = pool_to_stride16(two_channel(object_probs))
                states = [
                    self.model.update(
                        encoding,
                        state,
                        owners[view],
                        coarse[view] if coarse is not None else _as_view(mask16, view),
                    )
                    for view, state in enumerate(states)
                ]
            if new_ids:
                start = self.num_objects + 1
                new_probs = two_channel(probs[start : start + len(new_ids), None])
                new_states = [
                    self.model.init_objects(
                        encoding,
                        torch.full((len(new_ids),), view, dtype=torch.long, device=self.device),
                        _as_view(new_probs, view),
                    )
                    for view in range(self.views)
                ]
                states = (
                    new_states
                    if states is None
                    else [
                        ObjectState.cat([old, new])
                        for old, new in zip(states, new_states, strict=True)
                    ]
                )

        # Commit, frame_index first: a Ctrl-C that lands between these lines leaves a frame
        # index one ahead of the masks written, and vos segment saves no state from a tracker
        # whose index does not match them (see vos_cli.resume); before them, nothing changed.
        self.frame_index += 1
        self.pending.pop(self.frame_index - 1, None)
        self.states = states
        self.object_ids = self.object_ids + new_ids
        if self.states is None:
            return np.zeros((height, width), dtype=np.uint8)
        return self._to_label_map(probs, work, (height, width))

    def _to_label_map(
        self, probs: Tensor, work: tuple[int, int], out_size: tuple[int, int]
    ) -> np.ndarray:
        top, left = (
            pad_offsets(probs.shape[-2] - work[0])[0],
            pad_offsets(probs.shape[-1] - work[1])[0],
        )
        probs = probs[:, top : top + work[0], left : left + work[1]].float()
        if work != out_size:
            probs = F.interpolate(probs[None], size=out_size, mode="bilinear", align_corners=False)[
                0
            ]
        index = argmax_channels(probs)
        lut = torch.tensor([0, *self.object_ids], dtype=torch.uint8, device=index.device)
        return lut[index].cpu().numpy()


def argmax_channels(probs: Tensor) -> Tensor:
    """``probs.argmax(0)`` for a few channels, as running comparisons.

    A reduction over the outermost dimension is strided and slow on CPU (25 ms at 480p, a fifth
    of a frame's time); a pass per channel over contiguous planes takes about a millisecond each.
    Ties keep the lower index, like ``argmax``.
    """
    best = probs[0]
    index = torch.zeros(best.shape, dtype=torch.int64, device=probs.device)
    for channel in range(1, probs.shape[0]):
        better = probs[channel] > best
        best = torch.where(better, probs[channel], best)
        index.masked_fill_(better, channel)
    return index


def _state_tensors(state: ObjectState) -> dict[str, Tensor | None]:
    """An ObjectState as named CPU tensors (strides and dtype kept: restored bit for bit)."""

    def cpu(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.detach().to("cpu", copy=True)

    mixture = state.mixture
    return {
        "mixture_mean": cpu(mixture.mean) if mixture is not None else None,
        "mixture_var": cpu(mixture.var) if mixture is not None else None,
        "first_encoding": cpu(state.first_encoding),
        "first_mask": cpu(state.first_mask),
        "prev_mask": cpu(state.prev_mask),
    }


def _state_from_tensors(tensors: dict[str, Tensor | None], device: torch.device) -> ObjectState:
    def to(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.to(device)

    mean, var = to(tensors["mixture_mean"]), to(tensors["mixture_var"])
    first_mask, prev_mask = to(tensors["first_mask"]), to(tensors["prev_mask"])
    assert first_mask is not None and prev_mask is not None
    return ObjectState(
        MixtureParams(mean, var) if mean is not None and var is not None else None,
        to(tensors["first_encoding"]),
        first_mask,
        prev_mask,
    )


def _as_view(x: Tensor, view: int) -> Tensor:
    """A map of the video as given, as view ``view`` sees it (view 1 is mirrored); and back."""
    return x.flip(-1) if view == 1 else x


def _reflect_pad(x: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """Reflect padding split as the authors do (replicate where too small to reflect)."""
    top, bottom = pad_offsets(pad_h)
    left, right = pad_offsets(pad_w)
    mode = (
        "reflect"
        if max(top, bottom) < x.shape[-2] and max(left, right) < x.shape[-1]
        else "replicate"
    )
    return F.pad(x, (left, right, top, bottom), mode=mode)


def _override(probs: Tensor, labels: Tensor, ids: list[int], first: bool) -> Tensor:
    """Make the given mask certain where it names an object (everywhere, on the first frame)."""
    onehot = torch.zeros_like(probs)
    named = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    for channel, object_id in enumerate(ids, start=1):
        hit = labels == object_id
        onehot[channel][hit] = 1.0
        named |= hit
    if first:
        onehot[0][~named] = 1.0
        return onehot
    return torch.where(named[None], onehot, probs)
