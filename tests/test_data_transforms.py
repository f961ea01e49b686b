"""Snippet transforms: shapes, dtypes, label/image alignment under flips and crops."""

import numpy as np
import torch

from vos_cli.data.transforms import (
    IGNORE_LABEL,
    AugmentConfig,
    augment_snippet,
    color_jitter,
    frames_to_tensor,
    labels_to_tensor,
    resize_snippet,
)

NO_COLOUR = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "frame_brightness": 0.0}


def _red_object_snippet(t: int = 3, h: int = 60, w: int = 100):
    """Gray frames with a red rectangle in the left part; label 1 exactly under it."""
    frames = np.full((t, h, w, 3), 90, dtype=np.uint8)
    labels = np.zeros((t, h, w), dtype=np.uint8)
    frames[:, 20:40, 10:30] = (230, 20, 20)
    labels[:, 20:40, 10:30] = 1
    return frames_to_tensor(list(frames)), labels_to_tensor(list(labels))


def _is_red(images: torch.Tensor) -> torch.Tensor:
    return (images[:, 0] > 0.6) & (images[:, 1] < 0.3)


def test_resize_snippet_shapes_dtypes_and_label_values():
    images, labels = _red_object_snippet()
    labels[:, 0:5] = IGNORE_LABEL
    out_images, out_labels = resize_snippet(images, labels, (30, 50))
    assert out_images.shape == (3, 3, 30, 50) and out_images.dtype == torch.float32
    assert out_labels.shape == (3, 30, 50)
    assert float(out_images.min()) >= 0.0 and float(out_images.max()) <= 1.0
    assert set(out_labels.unique().tolist()) <= {0, 1, IGNORE_LABEL}
    # Nearest-neighbour labels stay aligned with the (bilinear) red object.
    inside = out_labels == 1
    assert _is_red(out_images)[inside].float().mean() > 0.9


def test_flip_keeps_image_and_labels_aligned():
    images, labels = _red_object_snippet()
    config = AugmentConfig(hflip_prob=1.0, scale_range=(1.0, 1.0), frame_jitter=0.0, **NO_COLOUR)
    rng = np.random.default_rng(0)
    out_images, out_labels = augment_snippet(images, labels, (60, 100), rng, config)
    obj = out_labels == 1
    assert obj.any()
    cols = torch.nonzero(obj[0].any(0)).flatten()
    assert int(cols.min()) >= 50, "the object on the left must end up on the right"
    assert torch.equal(_is_red(out_images), obj)


def test_augment_zoom_crop_alignment_and_object_bias():
    images, labels = _red_object_snippet(t=4, h=120, w=200)
    config = AugmentConfig(scale_range=(1.2, 1.3), object_crop_prob=1.0, **NO_COLOUR)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        out_images, out_labels = augment_snippet(images, labels, (48, 64), rng, config)
        assert out_images.shape == (4, 3, 48, 64) and out_labels.shape == (4, 48, 64)
        obj = out_labels[0] == 1
        assert obj.any(), "crop is biased to keep the object of frame 0"
        red = _is_red(out_images)
        # Away from the (interpolated) border the colours match the labels.
        agree = (red == (out_labels == 1)).float().mean()
        assert agree > 0.97


def test_zoom_out_pads_with_ignore():
    images, labels = _red_object_snippet()
    config = AugmentConfig(scale_range=(0.5, 0.5), hflip_prob=0.0, frame_jitter=0.0)
    _, out_labels = augment_snippet(images, labels, (60, 100), np.random.default_rng(1), config)
    assert (out_labels == IGNORE_LABEL).any()


def test_color_jitter_range_and_identity():
    images = torch.rand(2, 3, 8, 9)
    ident = color_jitter(images, np.random.default_rng(0), AugmentConfig(**NO_COLOUR))
    assert torch.allclose(ident, images, atol=1e-5)
    out = color_jitter(images, np.random.default_rng(0), AugmentConfig(brightness=0.9))
    assert out.dtype == torch.float32 and float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.allclose(out, images)
