"""The A-GAME network (paper fig. 2) as a set of per-frame operations.

The recurrence is driven from outside (the streaming tracker at test time, the unrolled training
loop): ``encode_frame`` runs the backbone and every object-independent projection once per frame,
``init_objects`` builds each object's state from its first mask, ``predict`` runs all objects'
heads as one batch, and ``update`` feeds a soft mask back into the state.

Objects are rows of a batch; ``owner[n]`` says which image of the frame batch object n belongs to,
so one call serves one video with several objects (inference) or several single-object snippets
(training) alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vos_cli.model.appearance import GaussianAppearance, MixtureParams
from vos_cli.model.backbones import Backbone, build_backbone
from vos_cli.model.config import ModelConfig
from vos_cli.model.heads import Fusion, MaskPropagation, Upsampler

STRIDE = 16


@dataclass
class FrameEncoding:
    """Everything computed once per frame, shared by all objects of that frame."""

    appearance_x: Tensor | None  # (B, D, h, w) float32 mixture features
    propagation_current: Tensor | None  # (B, P, h, w) current-frame part of the propagation conv
    s16: Tensor  # (B, C, h, w)
    s8: Tensor  # (B, U, 4h... ) projected s8
    s4: Tensor  # projected s4


@dataclass
class ObjectState:
    """What one object carries from frame to frame (rows = objects)."""

    mixture: MixtureParams | None
    first_encoding: Tensor | None  # (N, P, h, w) first-frame part of the propagation conv
    first_mask: Tensor  # (N, 2, h, w)
    prev_mask: Tensor  # (N, 2, h, w)
    first_mixture: MixtureParams | None = None  # frame 0's, never updated (first_frame_mixture)

    def index(self, idx: Tensor) -> ObjectState:
        def pick(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[idx]

        return ObjectState(
            self.mixture.index(idx) if self.mixture is not None else None,
            pick(self.first_encoding),
            self.first_mask[idx],
            self.prev_mask[idx],
            self.first_mixture.index(idx) if self.first_mixture is not None else None,
        )

    @staticmethod
    def cat(states: list[ObjectState]) -> ObjectState:
        first = states[0]

        def join(name: str) -> Tensor | None:
            if getattr(first, name) is None:
                return None
            return torch.cat([getattr(s, name) for s in states])

        return ObjectState(
            MixtureParams.cat([s.mixture for s in states]) if first.mixture is not None else None,
            join("first_encoding"),
            join("first_mask"),
            join("prev_mask"),
            MixtureParams.cat([s.first_mixture for s in states])
            if first.first_mixture is not None
            else None,
        )


@dataclass
class Prediction:
    fine_logits: Tensor  # (N, 2, H, W)
    coarse_logits: Tensor  # (N, 2, h, w)


def two_channel(object_prob: Tensor) -> Tensor:
    """(N, 1, H, W) object probability -> (N, 2, H, W) (not-object, object)."""
    return torch.cat([1.0 - object_prob, object_prob], dim=1)


def pool_to_stride16(mask: Tensor) -> Tensor:
    """Soft labels at stride 16 by average pooling, as the authors feed masks to the heads."""
    return F.avg_pool2d(mask, kernel_size=STRIDE, stride=STRIDE)


class AGame(nn.Module):
    """A-GAME: backbone, appearance module, mask propagation, fusion, upsampling."""

    def __init__(self, config: ModelConfig, backbone_weights: str | Path | None = "imagenet"):
        super().__init__()
        self.config = config
        self.backbone: Backbone = build_backbone(
            config.backbone, weights=backbone_weights, train_from=config.backbone_train_from
        )
        c16, c8, c4 = self.backbone.channels
        fusion_in = 0
        self.appearance: GaussianAppearance | None = None
        if config.use_appearance:
            self.appearance = GaussianAppearance(
                c16,
                config.appearance_dim,
                config.num_components,
                config.cov_reg_init,
                init=config.appearance_init,
            )
            fusion_in += config.num_components * (2 if config.first_frame_mixture else 1)
        self.propagation: MaskPropagation | None = None
        if config.use_propagation:
            self.propagation = MaskPropagation(c16, config.propagation_dim)
            fusion_in += config.propagation_dim
        self.fusion = Fusion(
            fusion_in, config.fusion_dim, config.encoding_dim, config.coarse_kernel
        )
        self.upsampler = Upsampler(config.encoding_dim, c8, c4, config.upsample_dim)

    # -- per frame ---------------------------------------------------------------------------
    def encode_frame(self, images: Tensor) -> FrameEncoding:
        """images: (B, 3, H, W) RGB in [0, 1], H and W multiples of 16."""
        return self.encode_features(*self.backbone(images))

    def encode_features(self, s16: Tensor, s8: Tensor, s4: Tensor) -> FrameEncoding:
        """The heads' per-frame projections of backbone features."""
        s8p, s4p = self.upsampler.project(s8, s4)
        return FrameEncoding(
            appearance_x=self.appearance.project(s16) if self.appearance is not None else None,
            propagation_current=self.propagation.encode_current(s16)
            if self.propagation is not None
            else None,
            s16=s16,
            s8=s8p,
            s4=s4p,
        )

    # -- per object --------------------------------------------------------------------------
    def init_objects(self, frame: FrameEncoding, owner: Tensor, mask: Tensor) -> ObjectState:
        """Start objects from a full-resolution soft mask (N, 2, H, W) given at this frame."""
        mask16 = pool_to_stride16(mask.float())
        mixture = None
        if self.appearance is not None:
            x = frame.appearance_x[owner]
            mixture = self.appearance.fit(x, mask16)
            if self.config.detach_appearance:
                mixture = MixtureParams(mixture.mean.detach(), mixture.var.detach())
        first_encoding = None
        if self.propagation is not None:
            first_encoding = self.propagation.encode_first(frame.s16)[owner]
        first_mixture = mixture if self.config.first_frame_mixture else None
        return ObjectState(mixture, first_encoding, mask16, mask16, first_mixture)

    def predict(self, frame: FrameEncoding, state: ObjectState, owner: Tensor) -> Prediction:
        """Coarse and fine logits for every object of the batch."""
        scores = propagated = None
        if self.appearance is not None:
            x = frame.appearance_x[owner]
            mixtures = [state.mixture]
            if state.first_mixture is not None:
                mixtures.append(state.first_mixture)
            parts = [self.appearance.scores(x, m) for m in mixtures]
            if self.config.appearance_softmax:
                parts = [torch.softmax(p, dim=1) for p in parts]
            scores = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if self.propagation is not None:
            propagated = self.propagation(
                frame.propagation_current[owner],
                state.first_encoding,
                state.prev_mask,
                state.first_mask,
            )
        encoding, coarse = self.fusion(scores, propagated)
        fine_logits = self.upsampler(encoding, frame.s8[owner], frame.s4[owner])
        return Prediction(fine_logits=fine_logits.float(), coarse_logits=coarse.float())

    def update(
        self, frame: FrameEncoding, state: ObjectState, owner: Tensor, mask16: Tensor
    ) -> ObjectState:
        """Feed a soft (N, 2, h, w) stride-16 mask back: new mixture and previous mask."""
        mixture = state.mixture
        if self.appearance is not None and self.config.update_appearance:
            x = frame.appearance_x[owner]
            mixture = self.appearance.update(x, mask16, mixture, self.config.update_rate)
            if self.config.detach_appearance:
                mixture = MixtureParams(mixture.mean.detach(), mixture.var.detach())
        return replace(state, mixture=mixture, prev_mask=mask16)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
