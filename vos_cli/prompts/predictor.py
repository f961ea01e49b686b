"""``MaskMaker``: boxes and clicks on one frame -> a label map, SAM 2 predictor style.

    maker = MaskMaker.load()                      # or MaskMaker.load("maskmaker.pt")
    maker.set_image(rgb)                          # HxWx3 uint8, once per frame
    labels = maker.predict([ObjectPrompt(Box(10, 20, 200, 300))])
    labels = maker.predict([ObjectPrompt(Box(10, 20, 200, 300), [Point(50, 60)])])

``predict`` returns an HxW ``uint8`` label map: object i of the list (1-based) is id i, 0 is
background. Objects are predicted independently; where they overlap, the pixel goes to the most
probable one, and a pixel no object reaches with probability 0.5 is background.

Each object is a crop around its box (for clicks alone, the whole frame) through the backbone.
The crop is the box enlarged ``context * DRAWN_BOX_CONTEXT`` times: the network was trained on
crops ``context`` times a jittered tight box, and a box a person draws (or the benchmark's, 5%
margin on each edge) is looser than that. The backbone features of the last few crops are
cached, so adding a click to an object only runs the light decoder again. Clicks are applied the
way the network was trained: a pass with the box alone, then one pass per click with the clicks
so far and the previous pass's mask. The box-alone pass runs ``box_passes`` times, each seeing
the last one's mask, which refines a first guess the way a click pass does. ``previous`` (e.g.
the last returned label map) seeds the first pass instead, for an interactive tool that adds
one click at a time.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from vos_cli.errors import VosError
from vos_cli.prompts.clicks import click_maps
from vos_cli.prompts.model import PROMPT_CHANNELS, CropFeatures, MaskMakerConfig, MaskMakerNet
from vos_cli.prompts.types import Box, ObjectPrompt, Point, check_prompts

__all__ = ["MaskMaker", "crop_window", "default_maskmaker_path", "prompt_maps", "resample_crop"]

DEFAULT_MASKMAKER_NAME = "maskmaker-lite0.pt"

#: A drawn box is enlarged by the trained context times this (1.4 -> 1.3), and the box-alone
#: pass runs twice: chosen on the 81 validation objects among 1.2 / 1.27 / 1.3 / 1.4 and 1 / 2 / 3
#: passes (docs/experiments.md, "Mask maker").
DRAWN_BOX_CONTEXT = 1.3 / 1.4
BOX_PASSES = 2

Window = tuple[float, float, float, float]


def default_maskmaker_path() -> Path:
    """The shipped mask maker; a clear error when this install has none."""
    from importlib import resources

    try:
        candidate = resources.files("vos_cli.weights") / DEFAULT_MASKMAKER_NAME
    except ModuleNotFoundError:
        candidate = None
    if candidate is None or not candidate.is_file():
        raise VosError(
            "no mask maker model is installed with vos; pass one with --mask-weights PATH "
            "(vos mask: --weights PATH), trained with vos train --config maskmaker-lite0 "
            "(see docs/prompts.md)"
        )
    return Path(str(candidate))


def crop_window(box: Box, context: float, max_aspect: float, min_side: float = 8.0) -> Window:
    """The crop for a box: enlarged ``context`` times about its centre, shorter side grown so
    that long / short <= ``max_aspect``; may reach past the frame (padded with grey)."""
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    w = max(box.width * context, min_side)
    h = max(box.height * context, min_side)
    w = max(w, h / max_aspect)
    h = max(h, w / max_aspect)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def whole_frame_window(width: int, height: int, max_aspect: float) -> Window:
    """The crop for an object given by clicks alone: the frame (grown to ``max_aspect``)."""
    return crop_window(Box(0, 0, width, height), 1.0, max_aspect)


def resample_crop(image: torch.Tensor, windows: Sequence[Window], size: int) -> torch.Tensor:
    """(C, H, W) float image -> (N, C, size, size) crops of ``windows``; outside the image is 0.

    Bilinear with adaptive sampling (every source pixel of a shrunk crop contributes), so a crop
    of a large box is anti-aliased.
    """
    rois = torch.tensor([[0.0, *w] for w in windows], dtype=image.dtype)
    return roi_align(
        image[None],
        rois,
        output_size=(size, size),
        spatial_scale=1.0,
        sampling_ratio=0,
        aligned=True,
    )


def box_map(box: Box | None, window: Window, size: int) -> torch.Tensor:
    """(size, size): 1 on crop pixels whose centre is inside ``box``, 0 elsewhere (or no box)."""
    out = torch.zeros((size, size), dtype=torch.float32)
    if box is None:
        return out
    x0, y0, x1, y1 = window
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    xs = x0 + centres * (x1 - x0) / size
    ys = y0 + centres * (y1 - y0) / size
    inside_x = (xs >= box.x0) & (xs <= box.x1)
    inside_y = (ys >= box.y0) & (ys <= box.y1)
    out[inside_y[:, None] & inside_x[None, :]] = 1.0
    return out


def prompt_maps(
    box: Box | None,
    points: list[Point],
    window: Window,
    config: MaskMakerConfig,
    previous: torch.Tensor | None = None,
) -> torch.Tensor:
    """(PROMPT_CHANNELS, S, S) maps for one object in one crop (see vos_cli.prompts.model)."""
    size = config.crop_size
    maps = torch.zeros((PROMPT_CHANNELS, size, size), dtype=torch.float32)
    maps[0] = box_map(box, window, size)
    maps[1:3] = click_maps(points, window, size, config.click_sigma)
    if previous is not None:
        maps[3] = previous
        maps[4] = 1.0
    return maps


def paste_logits(
    logits: torch.Tensor, window: Window, width: int, height: int
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Crop logits (S, S) resampled onto the frame pixels the window covers.

    Returns the (h, w) logits and the frame rectangle (x0, y0, x1, y1) they cover.
    """
    wx0, wy0, wx1, wy1 = window
    fx0, fy0 = max(0, math.floor(wx0)), max(0, math.floor(wy0))
    fx1, fy1 = min(width, math.ceil(wx1)), min(height, math.ceil(wy1))
    xs = torch.arange(fx0, fx1, dtype=torch.float32) + 0.5
    ys = torch.arange(fy0, fy1, dtype=torch.float32) + 0.5
    gx = 2 * (xs - wx0) / (wx1 - wx0) - 1
    gy = 2 * (ys - wy0) / (wy1 - wy0) - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    out = F.grid_sample(
        logits[None, None].float(),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )[0, 0]
    return out, (fx0, fy0, fx1, fy1)


def resample_to_crop(prob: np.ndarray, window: Window, size: int) -> torch.Tensor:
    """A frame-sized probability (or 0/1) map -> (size, size) over ``window``."""
    image = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None]
    return resample_crop(image, [window], size)[0, 0]


class MaskMaker:
    """Boxes and clicks -> label map on one frame; see the module docstring."""

    CACHE = 8  # crops whose backbone features are kept

    def __init__(
        self,
        net: MaskMakerNet,
        device: str | torch.device = "cpu",
        context: float | None = None,
        box_passes: int = BOX_PASSES,
    ) -> None:
        """``context``: the crop's enlargement of a given box (default: the trained context
        times DRAWN_BOX_CONTEXT, at least 1); ``box_passes``: box-alone passes (at least 1)."""
        self.net = net.eval()
        self.config = net.config
        self.context = (
            max(1.0, net.config.context * DRAWN_BOX_CONTEXT) if context is None else context
        )
        if self.context < 1.0:
            raise VosError(f"mask maker context must be at least 1, got {self.context}")
        if box_passes < 1:
            raise VosError(f"box_passes must be at least 1, got {box_passes}")
        self.box_passes = box_passes
        self.device = torch.device(device)
        self.net.to(self.device)
        self._image: torch.Tensor | None = None
        self._cache: OrderedDict[Window, CropFeatures] = OrderedDict()
        self.width = self.height = 0

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> MaskMaker:
        """The mask maker of a weights file (default: the one shipped with vos)."""
        from vos_cli.prompts.model import load_maskmaker

        net, _ = load_maskmaker(default_maskmaker_path() if path is None else path)
        return cls(net, device)

    def set_image(self, rgb: np.ndarray) -> None:
        """The frame to work on: HxWx3 ``uint8`` RGB. Clears the feature cache."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise VosError(f"set_image needs an HxWx3 uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        self.height, self.width = rgb.shape[:2]
        image = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).float() / 255.0
        self._image = image - 0.5  # so that crop padding (0) is mid grey
        self._cache.clear()

    def window_for(self, prompt: ObjectPrompt) -> Window:
        cfg = self.config
        if prompt.box is not None:
            return crop_window(prompt.box, self.context, cfg.max_aspect)
        return whole_frame_window(self.width, self.height, cfg.max_aspect)

    @torch.inference_mode()
    def _features(self, window: Window) -> CropFeatures:
        if window in self._cache:
            self._cache.move_to_end(window)
            return self._cache[window]
        assert self._image is not None
        crop = resample_crop(self._image, [window], self.config.crop_size) + 0.5
        feats = self.net.features(crop.to(self.device))
        self._cache[window] = feats
        while len(self._cache) > self.CACHE:
            self._cache.popitem(last=False)
        return feats

    @torch.inference_mode()
    def predict_object(
        self, prompt: ObjectPrompt, previous: np.ndarray | None = None
    ) -> np.ndarray:
        """One object's probability map, HxW float32 in [0, 1] (0 outside its crop).

        ``previous``: an earlier HxW mask (bool or probability) of this object, fed back to the
        network as its first pass's previous mask.
        """
        if self._image is None:
            raise VosError("call set_image(rgb) before predict")
        check_prompts([prompt], self.width, self.height)
        window = self.window_for(prompt)
        feats = self._features(window)
        size = self.config.crop_size
        prev = None if previous is None else resample_to_crop(previous, window, size)
        # the training protocol: box alone (box_passes times), then one click more per pass,
        # each pass seeing the previous one's mask; a given previous mask stands for the passes
        # before the last
        if prev is not None:
            passes = [prompt.points]
        elif prompt.box is None:  # without a box, the first pass needs a click
            passes = [prompt.points[:k] for k in range(1, len(prompt.points) + 1)]
        else:
            passes = [[]] * self.box_passes
            passes += [prompt.points[:k] for k in range(1, len(prompt.points) + 1)]
        logits = None
        for points in passes:
            maps = prompt_maps(prompt.box, points, window, self.config, prev)
            logits = self.net.decode(feats, maps[None].to(self.device))[0, 0].float().cpu()
            prev = torch.sigmoid(logits)
        assert logits is not None
        pasted, (x0, y0, x1, y1) = paste_logits(logits, window, self.width, self.height)
        out = np.zeros((self.height, self.width), np.float32)
        out[y0:y1, x0:x1] = torch.sigmoid(pasted).numpy()
        return out

    def predict(
        self, objects: Sequence[ObjectPrompt], previous: np.ndarray | None = None
    ) -> np.ndarray:
        """HxW uint8 label map: object i (1-based) of ``objects`` is id i, 0 background.

        ``previous``: an earlier label map of these objects (e.g. the last result), whose
        id-i region seeds object i's refinement.
        """
        if self._image is None:
            raise VosError("call set_image(rgb) before predict")
        check_prompts(objects, self.width, self.height)
        probs = np.stack(
            [
                self.predict_object(
                    prompt, None if previous is None else (np.asarray(previous) == i)
                )
                for i, prompt in enumerate(objects, 1)
            ]
        )
        return resolve_labels(probs)


def resolve_labels(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(N, H, W) object probabilities -> label map: the most probable object where it is at
    least ``threshold``, else 0. Ties go to the lower id."""
    best = probs.argmax(axis=0)
    top = np.take_along_axis(probs, best[None], axis=0)[0]
    return np.where(top >= threshold, best + 1, 0).astype(np.uint8)
