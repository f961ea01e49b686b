"""The soft-Jaccard training term: hand-computed values and the properties that make it J-like."""

import torch

from vos_cli.train.unroll import IGNORE, soft_jaccard_loss


def _log_probs(object_probs: torch.Tensor) -> torch.Tensor:
    """(O, H, W) object probabilities -> (O+1, H, W) log-probabilities, background first."""
    background = 1.0 - object_probs.sum(0, keepdim=True)
    return torch.cat([background, object_probs]).clamp_min(1e-12).log()


def test_hand_computed_one_object_with_an_ignored_pixel():
    # p = [[0.5, 1.0], [0.0, 0.3]], truth = [[0, 1], [1, ignore]]:
    # intersection 1.0, union 0.5 + 1.0 + 1.0 = 2.5 (the ignored pixel is out) -> 1 - 0.4.
    target = torch.tensor([[[0, 1], [1, IGNORE]]])
    lp = _log_probs(torch.tensor([[[0.5, 1.0], [0.0, 0.3]]]))
    loss = soft_jaccard_loss([lp], target)
    assert abs(loss.item() - 0.6) < 1e-5


def test_perfect_prediction_scores_zero_and_objects_are_averaged():
    target = torch.tensor([[[1, 1, 2], [0, 0, 2]]])
    exact = _log_probs(torch.stack([(target[0] == 1).float(), (target[0] == 2).float()]))
    assert soft_jaccard_loss([exact], target).item() < 1e-5
    # Object 2 predicted empty: its IoU is 0, object 1's is 1 -> mean loss 0.5.
    half = _log_probs(torch.stack([(target[0] == 1).float(), torch.zeros(2, 3)]))
    assert abs(soft_jaccard_loss([half], target).item() - 0.5) < 1e-5


def test_a_small_object_weighs_as_much_as_a_large_one():
    """Missing a 1-pixel object costs as much as missing a 9-pixel one, unlike cross-entropy."""
    small = torch.zeros(1, 6, 6, dtype=torch.long)
    small[0, 0, 0] = 1
    large = torch.zeros(1, 6, 6, dtype=torch.long)
    large[0, :3, :3] = 1
    miss = _log_probs(torch.zeros(1, 6, 6))
    assert abs(soft_jaccard_loss([miss], small).item() - 1.0) < 1e-5
    assert abs(soft_jaccard_loss([miss], large).item() - 1.0) < 1e-5


def test_gradient_is_finite_and_pushes_probability_towards_the_truth():
    target = torch.tensor([[[1, 0], [1, 0]]])
    logits = torch.zeros(2, 2, 2, requires_grad=True)
    soft_jaccard_loss([torch.log_softmax(logits, dim=0)], target).backward()
    grad = logits.grad
    assert torch.isfinite(grad).all()
    on_object = target[0] == 1
    assert (grad[1][on_object] < 0).all()  # raise the object's logit where the object is
    assert (grad[1][~on_object] > 0).all()  # and lower it elsewhere


def test_unroller_adds_the_term_to_fine_and_optionally_coarse_loss():
    """With the term on, the fine loss is cross-entropy plus the weighted mean soft-Jaccard of
    the fine prediction; the coarse loss takes it only when asked."""
    from vos_cli.model.factory import build_model
    from vos_cli.train.config import load_config
    from vos_cli.train.unroll import SnippetUnroller

    torch.manual_seed(0)
    model = build_model(load_config("smoke").model, backbone_weights=None).eval()
    images = torch.randn(1, 3, 3, 64, 96)
    labels = torch.zeros(1, 3, 64, 96, dtype=torch.long)
    labels[:, :, 20:44, 30:60] = 1
    objects = torch.tensor([1])
    with torch.no_grad():
        plain = SnippetUnroller(model)(images, labels, objects)
        fine_only = SnippetUnroller(model, iou_loss_weight=2.0)(images, labels, objects)
        both = SnippetUnroller(model, iou_loss_weight=2.0, iou_loss_on_coarse=True)(
            images, labels, objects
        )
    assert torch.allclose(fine_only.coarse_loss, plain.coarse_loss)
    extra = fine_only.fine_loss - plain.fine_loss
    assert 0.0 < extra.item() <= 2.0  # 2 x (1 - soft IoU), averaged over frames
    assert torch.allclose(both.fine_loss, fine_only.fine_loss)
    assert both.coarse_loss.item() > plain.coarse_loss.item()
