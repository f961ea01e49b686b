"""Recurrent unrolling of A-GAME over training snippets, and its loss.

The network sees frame 0's mask, then predicts every later frame from its own previous coarse
prediction (paper 3.4): errors it makes early in a snippet are what it learns to recover from.
Wrapped in one ``nn.Module`` so DistributedDataParallel can see the whole step as a forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vos_cli.model.agame import AGame, FrameEncoding, two_channel
from vos_cli.model.aggregation import aggregate_log, margins

IGNORE = 255


@dataclass
class UnrollOutput:
    loss: Tensor
    fine_loss: Tensor
    coarse_loss: Tensor
    iou: Tensor  # mean IoU of the fine prediction over scored frames (a training-set signal)


def _frames_of(encoding: FrameEncoding, t: int, num_frames: int) -> FrameEncoding:
    """The encodings of frame t of every snippet from a (B*T)-batched encoding."""

    def pick(x: Tensor | None) -> Tensor | None:
        if x is None:
            return None
        return x.unflatten(0, (-1, num_frames))[:, t]

    return FrameEncoding(
        appearance_x=pick(encoding.appearance_x),
        propagation_current=pick(encoding.propagation_current),
        s16=pick(encoding.s16),
        s8=pick(encoding.s8),
        s4=pick(encoding.s4),
    )


def soft_jaccard_loss(log_probs: list[Tensor], target: Tensor) -> Tensor:
    """Mean over objects of 1 - soft IoU between the predicted probability and the true mask.

    Cross-entropy is a sum over pixels, so a small object's few pixels (and every object's boundary)
    weigh little in it; J is a ratio per object. Pixels labelled ``IGNORE`` are left out; an object
    absent from both prediction and truth scores a loss of 0.
    """
    losses = []
    for b, lp in enumerate(log_probs):
        tgt = target[b].long()
        valid = (tgt != IGNORE).float()
        probs = lp.exp()
        for k in range(1, lp.shape[0]):
            p = probs[k] * valid
            g = (tgt == k).float() * valid
            inter = (p * g).sum()
            union = (p + g - p * g).sum()
            losses.append(1.0 - (inter + 1e-6) / (union + 1e-6))
    return torch.stack(losses).mean()


class SnippetUnroller(nn.Module):
    """Loss of the network on a batch of snippets (B, T, 3, H, W) with labels (B, T, H, W)."""

    def __init__(
        self,
        model: AGame,
        coarse_loss_weight: float = 1.0,
        iou_loss_weight: float = 0.0,
        iou_loss_on_coarse: bool = False,
    ):
        super().__init__()
        self.model = model
        self.coarse_loss_weight = coarse_loss_weight
        self.iou_loss_weight = iou_loss_weight
        self.iou_loss_on_coarse = iou_loss_on_coarse

    def forward(self, images: Tensor, labels: Tensor, num_objects: Tensor) -> UnrollOutput:
        return self.unroll(self.model.encode_frame(images.flatten(0, 1)), labels, num_objects)

    def unroll(self, encoding: FrameEncoding, labels: Tensor, num_objects: Tensor) -> UnrollOutput:
        """The loss given the (B*T)-batched frame encodings of the snippets."""
        batch, frames = labels.shape[:2]
        model = self.model
        device = labels.device

        # Objects are rows: every object of every snippet, with its snippet as owner.
        counts = [int(n) for n in num_objects.tolist()]
        owner = torch.repeat_interleave(
            torch.arange(batch, device=device), torch.tensor(counts, device=device)
        )
        object_ids = torch.cat([torch.arange(1, n + 1, device=device) for n in counts])

        def object_masks(t: int) -> Tensor:
            lab = labels[:, t][owner]  # (N, H, W)
            return (lab == object_ids.view(-1, 1, 1)).float().unsqueeze(1)

        first = _frames_of(encoding, 0, frames)
        state = model.init_objects(first, owner, two_channel(object_masks(0)))

        fine_losses, coarse_losses, ious = [], [], []
        for t in range(1, frames):
            frame = _frames_of(encoding, t, frames)
            pred = model.predict(frame, state, owner)
            target = labels[:, t]
            coarse_up = F.interpolate(
                pred.coarse_logits, size=target.shape[-2:], mode="bilinear", align_corners=False
            )
            coarse_log = self._class_log_probs(coarse_up, owner, counts)
            coarse_loss_t = self._nll(coarse_log, target)
            if self.iou_loss_weight and self.iou_loss_on_coarse:
                coarse_loss_t = coarse_loss_t + self.iou_loss_weight * soft_jaccard_loss(
                    coarse_log, target
                )
            coarse_losses.append(coarse_loss_t)
            fine_log = self._class_log_probs(pred.fine_logits, owner, counts)
            fine_loss_t = self._nll(fine_log, target)
            if self.iou_loss_weight:
                fine_loss_t = fine_loss_t + self.iou_loss_weight * soft_jaccard_loss(
                    fine_log, target
                )
            fine_losses.append(fine_loss_t)
            ious.append(self._iou(fine_log, target))
            if t < frames - 1:  # the last frame's update would never be used
                feedback = torch.softmax(pred.coarse_logits, dim=1)
                state = model.update(frame, state, owner, feedback)

        coarse_loss = torch.stack(coarse_losses).mean()
        fine_loss = torch.stack(fine_losses).mean()
        loss = fine_loss + self.coarse_loss_weight * coarse_loss
        return UnrollOutput(
            loss, fine_loss.detach(), coarse_loss.detach(), torch.stack(ious).mean()
        )

    @staticmethod
    def _class_log_probs(logits: Tensor, owner: Tensor, counts: list[int]) -> list[Tensor]:
        """Per snippet, (O+1, H, W) log-probabilities over background and its objects."""
        log_probs = F.log_softmax(logits.float(), dim=1)  # (N, 2, H, W)
        out, start = [], 0
        for n in counts:
            rows = log_probs[start : start + n]
            if n == 1:
                out.append(rows[0])
            else:
                out.append(aggregate_log(margins(logits[start : start + n])))
            start += n
        return out

    @staticmethod
    def _nll(log_probs: list[Tensor], target: Tensor) -> Tensor:
        losses = []
        for b, lp in enumerate(log_probs):
            tgt = target[b].long()
            valid = tgt != IGNORE
            tgt = torch.where(valid & (tgt < lp.shape[0]), tgt, torch.full_like(tgt, IGNORE))
            if not bool((tgt != IGNORE).any()):
                losses.append(lp.sum() * 0.0)  # nothing to score; keeps the graph connected
                continue
            losses.append(F.nll_loss(lp[None], tgt[None], ignore_index=IGNORE))
        return torch.stack(losses).mean()

    @staticmethod
    @torch.no_grad()
    def _iou(log_probs: list[Tensor], target: Tensor) -> Tensor:
        values = []
        for b, lp in enumerate(log_probs):
            # Two classes: a comparison (argmax over a strided dim is slow on CPU).
            pred = (lp[1] > lp[0]).long() if lp.shape[0] == 2 else lp.contiguous().argmax(0)
            tgt = target[b]
            valid = tgt != IGNORE
            for k in range(1, lp.shape[0]):
                p, g = (pred == k) & valid, (tgt == k) & valid
                union = (p | g).sum()
                values.append(torch.where(union > 0, (p & g).sum() / union.clamp_min(1), 1.0))
        return torch.stack(values).mean()
