"""C^3 (Eq. 8) and reconstruction (Eq. 9) losses on hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wsris.methods.sag.losses import (
    c3_logits,
    c3_loss,
    c3_retrieval_accuracy,
    negation_exclusion_loss,
    reconstruction_loss,
    subject_consistency_loss,
)

TEXT = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
# Z[i, j]: image i fused with text j
Z = torch.tensor(
    [
        [[1.0, 0.0], [0.6, 0.8]],
        [[0.0, 1.0], [0.0, 1.0]],
    ]
)


def test_c3_two_by_two_by_hand() -> None:
    # text 0: logits <z00,t0>=1, <z10,t0>=0, positive image 0
    # text 1: logits <z01,t1>=1.6, <z11,t1>=2, positive image 1
    assert torch.allclose(c3_logits(Z, TEXT), torch.tensor([[1.0, 0.0], [1.6, 2.0]]))
    want = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-0.4))) / 2
    assert c3_loss(Z, TEXT).item() == pytest.approx(want, rel=1e-6)
    scaled = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-0.8))) / 2
    assert c3_loss(Z, TEXT, scale=2.0).item() == pytest.approx(scaled, rel=1e-6)
    assert c3_retrieval_accuracy(Z, TEXT) == 1.0


def test_c3_several_texts_per_image() -> None:
    z = torch.zeros(2, 3, 2)
    z[0, :, 0] = 1.0  # image 0 always gives [1, 0]
    z[1, :, 1] = 1.0  # image 1 always gives [0, 1]
    text = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    idx = torch.tensor([0, 1, 1])
    # text 0: (3, 0) -> image 0; text 1: (0, 1) -> image 1; text 2: (1, 1) -> image 1
    want = (math.log(1 + math.exp(-3)) + math.log(1 + math.exp(-1)) + math.log(2)) / 3
    assert c3_loss(z, text, image_index=idx).item() == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="image_index"):
        c3_loss(z, text)
    assert c3_retrieval_accuracy(z, text, idx) == pytest.approx(2 / 3)


def test_c3_stop_gradient_on_the_text_target() -> None:
    torch.manual_seed(0)
    w = torch.randn(2, 2, requires_grad=True)
    text = torch.randn(2, 2, requires_grad=True)

    def fused(t: torch.Tensor) -> torch.Tensor:
        # z[i, j] depends on text j, as the fusion module's query does
        imgs = torch.tensor([[1.0, 0.5], [-0.5, 1.0]])
        return F.normalize(imgs[:, None, :] + t[None] @ w, dim=-1)

    # 1. a target that is only a target receives no gradient at all
    target_only = torch.randn(2, 2, requires_grad=True)
    c3_loss(fused(text.detach()), target_only).backward()
    assert target_only.grad is None

    # 2. gradients reach the text only through z: equal to using a constant copy
    loss = c3_loss(fused(text), text)
    (g_sg,) = torch.autograd.grad(loss, text)
    const = text.detach().clone()
    (g_const,) = torch.autograd.grad(c3_loss(fused(text), const, stop_gradient=False), text)
    assert torch.allclose(g_sg, g_const)
    (g_full,) = torch.autograd.grad(c3_loss(fused(text), text, stop_gradient=False), text)
    assert not torch.allclose(g_sg, g_full)


def test_c3_learnable_scale_gets_a_gradient() -> None:
    scale = torch.tensor(3.0, requires_grad=True)
    c3_loss(Z, TEXT, scale=scale).backward()
    assert scale.grad is not None and scale.grad != 0


def test_reconstruction_by_hand() -> None:
    recon = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]], requires_grad=True)
    target = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 1.0]]], requires_grad=True)
    # squared errors: 0, 4, 9, 0, 4, 0 -> mean 17/6
    loss = reconstruction_loss(recon, target)
    assert loss.item() == pytest.approx(17 / 6)
    loss.backward()
    assert target.grad is None and recon.grad is not None  # stop-gradient on the target
    # split into a 2-wide and a 1-wide part: (0+4+0+4)/4 + (9+0)/2
    split = reconstruction_loss(recon, target, [("vit", 2), ("pixels", 1)])
    assert split.item() == pytest.approx(2.0 + 4.5)
    with pytest.raises(ValueError):
        reconstruction_loss(recon, target, [("vit", 2), ("pixels", 2)])


def test_subject_consistency_by_hand() -> None:
    # text 0: subject weights [0.2, 0.8, 0] / 0.8 = [0.25, 1, 0]; inside 0.5*0.25 + 0.5*1
    # text 1: all of the text's attention on the subject's best entity: loss 0
    a_text = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    a_subject = torch.tensor([[0.2, 0.8, 0.0], [0.1, 0.6, 0.3]], requires_grad=True)
    loss = subject_consistency_loss(a_text, a_subject, eps=0.0)
    assert loss.item() == pytest.approx(-math.log(0.625) / 2, rel=1e-6)
    loss.backward()
    assert a_subject.grad is None  # the subject's attention is a fixed target
    # d/da_text[0] of -log(inside)/2 = -w / (2 * inside): more attention on the subject helps
    torch.testing.assert_close(a_text.grad[0], torch.tensor([-0.25, -1.0, 0.0]) / 1.25)


def test_subject_consistency_penalises_a_landmark_pick() -> None:
    subject = torch.tensor([[0.45, 0.45, 0.1]])  # two candidates, a landmark
    on_candidate = subject_consistency_loss(torch.tensor([[0.9, 0.05, 0.05]]), subject)
    on_landmark = subject_consistency_loss(torch.tensor([[0.05, 0.05, 0.9]]), subject)
    assert on_candidate.item() < 0.1 < on_landmark.item()
    with pytest.raises(ValueError, match="both be"):
        subject_consistency_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_negation_exclusion_by_hand() -> None:
    # negated weights [0.8, 0.2, 0] / 0.8 = [1, 0.25, 0]; text 0 puts 0.5 on the negated
    # entity and 0.5 on the other: outside = 1 - (0.5 + 0.125) = 0.375
    a_text = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], requires_grad=True)
    a_negated = torch.tensor([[0.8, 0.2, 0.0], [0.7, 0.3, 0.0]], requires_grad=True)
    loss = negation_exclusion_loss(a_text, a_negated, eps=0.0)
    assert loss.item() == pytest.approx(-math.log(0.375) / 2, rel=1e-6)
    loss.backward()
    assert a_negated.grad is None
    torch.testing.assert_close(a_text.grad[0], torch.tensor([1.0, 0.25, 0.0]) / 0.75)
    # text 1 avoids it already (outside = 1): the pull away is the weight itself, / 2 rows
    torch.testing.assert_close(a_text.grad[1], torch.tensor([1.0, 3 / 7, 0.0]) / 2)
    with pytest.raises(ValueError, match="both be"):
        negation_exclusion_loss(torch.zeros(2, 3), torch.zeros(3, 3))
