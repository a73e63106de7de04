"""Shatter and Gather losses (paper Sec. 3.4).

* C^3, contrastive cycle-consistency (Eq. 8): for every text ``j`` of the batch, the
  cross-modal embeddings ``z_ij`` of text ``j`` fused with every image ``i`` are scored
  against the text feature itself, ``<z_ij, sg(x_j^T)>``, and a softmax over the images
  must pick the text's own image. ``sg`` (stop-gradient) keeps the text target fixed;
  the temperature is 1 (``scale=1``) in the paper.
* Reconstruction (Eq. 9): mean squared error between the decoder's output and the
  stop-gradient ViT features (and/or pixel patches, a departure for tiny models).
* Two departures that read the text's own structure (no masks, no boxes): subject
  consistency (a text's ``A^fuse`` stays on what its first noun chunk attends to) and
  negation exclusion (a negated text's ``A^fuse`` avoids what it negates attends to).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def c3_logits(
    z: torch.Tensor,
    text: torch.Tensor,
    scale: torch.Tensor | float = 1.0,
    stop_gradient: bool = True,
) -> torch.Tensor:
    """``[B_txt, B_img]`` logits ``scale * <z[i, j], sg(text[j])>``.

    ``z`` is ``[B_img, B_txt, D]`` with ``z[i, j]`` the fusion of image ``i`` and text
    ``j``; ``text`` is ``[B_txt, D]``. Computed in float32.
    """
    if z.dim() != 3 or text.dim() != 2 or z.shape[1] != text.shape[0]:
        raise ValueError(
            f"z must be [B_img, B_txt, D] and text [B_txt, D]; got "
            f"{tuple(z.shape)} and {tuple(text.shape)}"
        )
    target = text.detach() if stop_gradient else text
    logits = torch.einsum("ijd,jd->ji", z.float(), target.float())
    return logits * scale


def c3_loss(
    z: torch.Tensor,
    text: torch.Tensor,
    scale: torch.Tensor | float = 1.0,
    image_index: torch.Tensor | None = None,
    stop_gradient: bool = True,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 8: mean over texts of ``-log softmax_i(<z_ij, sg(x_j)>)`` at the text's image.

    ``image_index[j]`` is the batch index of text ``j``'s image (default: ``j``, one text
    per image). ``scale`` multiplies the logits (1 in the paper; a learnable scale with
    L2-normalised text features is a departure for tiny models). ``exclude``
    ``[B_txt, B_img]`` bool (a departure): images left out of text ``j``'s softmax, e.g.
    other images the text is known to describe too; a text's own image is never left out.
    """
    logits = c3_logits(z, text, scale, stop_gradient)
    if image_index is None:
        if logits.shape[0] != logits.shape[1]:
            raise ValueError("B_img != B_txt: pass image_index")
        image_index = torch.arange(logits.shape[0], device=logits.device)
    image_index = image_index.to(logits.device)
    if exclude is not None:
        own = F.one_hot(image_index, logits.shape[1]).bool()
        logits = logits.masked_fill(exclude.to(logits.device) & ~own, float("-inf"))
    return F.cross_entropy(logits, image_index)


@torch.no_grad()
def c3_retrieval_accuracy(
    z: torch.Tensor, text: torch.Tensor, image_index: torch.Tensor | None = None
) -> float:
    """Share of texts whose highest C^3 logit is their own image (training monitor)."""
    logits = c3_logits(z, text)
    if image_index is None:
        image_index = torch.arange(logits.shape[0], device=logits.device)
    return float((logits.argmax(dim=1) == image_index.to(logits.device)).float().mean())


def reconstruction_loss(
    recon: torch.Tensor,
    target: torch.Tensor,
    splits: list[tuple[str, int]] | None = None,
) -> torch.Tensor:
    """Eq. 9 as the official code computes it: mean squared error over every element,
    target detached (stop-gradient).

    With ``splits`` (names and widths of concatenated target parts, e.g. ViT features
    then pixel patches) each part's mean squared error is computed separately and the
    parts are summed, so that a narrow part is not drowned by a wide one.
    """
    target = target.detach().float()
    recon = recon.float()
    if recon.shape != target.shape:
        raise ValueError(f"recon {tuple(recon.shape)} != target {tuple(target.shape)}")
    if not splits or len(splits) == 1:
        return F.mse_loss(recon, target)
    widths = [w for _, w in splits]
    if sum(widths) != target.shape[-1]:
        raise ValueError("splits do not add up to the target width")
    parts = zip(recon.split(widths, dim=-1), target.split(widths, dim=-1), strict=True)
    return sum(F.mse_loss(r, t) for r, t in parts)  # type: ignore[return-value]


def subject_consistency_loss(
    a_text: torch.Tensor, a_subject: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """A departure: a text's ``A^fuse`` should lie on entities its subject finds.

    ``a_text`` ``[T, K]`` is each text's ``A^fuse`` over the entities of its own image;
    ``a_subject`` ``[T, K]`` is the ``A^fuse`` of the text's subject, its first noun
    chunk ("the red circle" of "the red circle left of the blue square"), on the same
    entities, taken as a fixed target. Each subject weight is scaled by its row's largest,
    so every entity the subject picks as strongly as its best counts fully; the loss is
    ``-log sum_k a_text[k] * w[k]``, averaged over texts: 0 when all of a text's
    attention is on its subject's best entities, and large when it sits elsewhere (on a
    relation's landmark, say). Padding entities carry 0 in both.
    """
    inside = _mass_on_phrase(a_text, a_subject, "a_subject", eps)
    return -torch.log(inside + eps).mean()


def negation_exclusion_loss(
    a_text: torch.Tensor, a_negated: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """A departure: a negated text's ``A^fuse`` should avoid what it negates.

    ``a_text`` ``[T, K]``: each text's ``A^fuse`` over the entities of its own image;
    ``a_negated`` ``[T, K]``: the ``A^fuse`` of what the text negates ("red" of "the
    circle that is not red") on the same entities, a fixed target, scaled by its row's
    largest as in :func:`subject_consistency_loss`. The loss is
    ``-log(1 - sum_k a_text[k] * w[k])``, averaged over texts: 0 when the text's
    attention avoids every entity the negated phrase picks.
    """
    outside = 1.0 - _mass_on_phrase(a_text, a_negated, "a_negated", eps)
    return -torch.log(outside.clamp_min(0.0) + eps).mean()


def _mass_on_phrase(
    a_text: torch.Tensor, a_phrase: torch.Tensor, name: str, eps: float
) -> torch.Tensor:
    """``[T]``: ``sum_k a_text[k] * w[k]`` with ``w`` the phrase's ``A^fuse`` (detached)
    divided by its row's largest entry."""
    if a_text.shape != a_phrase.shape or a_text.dim() != 2:
        raise ValueError(f"a_text and {name} must both be [T, K]; got "
                         f"{tuple(a_text.shape)} and {tuple(a_phrase.shape)}")
    target = a_phrase.detach().float()
    weight = target / target.amax(dim=-1, keepdim=True).clamp_min(eps)
    return (a_text.float() * weight).sum(dim=-1)
