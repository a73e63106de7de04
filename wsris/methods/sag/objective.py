"""Shatter and Gather training: C^3 (Eq. 8) + reconstruction (Eq. 9).

Loss weights (``loss:`` in the recipe): ``c3`` (1.0), ``recon`` (1.0) and
``recon_only_steps`` (0: the paper trains both from the start; a departure for tiny
models trains reconstruction alone first so that slots bind before C^3 pulls on them),
``frozen_text`` (false: a departure for small models whose pretrained text encoder is
kept fixed, with its projection; their output is computed once per distinct expression,
which takes the text encoder out of almost every step; a text head, the architecture's
``text_head_layers``, still trains),
``filter_false_negatives`` (false; Shapes-Ref only: another image of the batch that a
text's head phrase fits is left out of that text's C^3 softmax, see
:mod:`wsris.training.false_negatives`) from step ``false_negatives_from_step`` (0),
``subject`` (0.0; a departure): the weight of the subject-consistency loss, which asks
a text's ``A^fuse`` on its own image to lie on the entities its subject (first noun
chunk) attends to, so that "the red circle left of the blue square" looks among the red
circles and not at the square (:func:`.losses.subject_consistency_loss`),
``negation`` (0.0; a departure): the weight of the negation-exclusion loss, which asks a
negated text's ``A^fuse`` on its own image to avoid the entities that what it negates
attends to, so that "the circle that is not red" looks away from what "red" finds
(:func:`.losses.negation_exclusion_loss`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from ...evaluation.during_training import localisation_metrics
from ...strict import from_mapping
from ...training.objectives import Objective
from .losses import (
    c3_loss,
    c3_retrieval_accuracy,
    negation_exclusion_loss,
    reconstruction_loss,
    subject_consistency_loss,
)


@dataclass
class SagLoss:
    """The ``loss:`` section of a sag recipe (see the module docstring), checked by type
    at recipe load and by range in :meth:`check`."""

    c3: float = 1.0
    recon: float = 1.0
    recon_only_steps: int = 0
    frozen_text: bool = False
    filter_false_negatives: bool = False
    false_negatives_from_step: int = 0
    false_negative_rule: str = "head"
    subject: float = 0.0
    negation: float = 0.0

    def check(self) -> None:
        from ...training.false_negatives import RULES

        for name in ("c3", "recon", "subject", "negation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is a weight: must be >= 0, got "
                                 f"{getattr(self, name)}")
        for name in ("recon_only_steps", "false_negatives_from_step"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.false_negative_rule not in RULES:
            raise ValueError(f"false_negative_rule must be one of {list(RULES)}, got "
                             f"{self.false_negative_rule!r}")


#: The default loss settings, by name.
LOSS_DEFAULTS: dict[str, Any] = dataclasses.asdict(SagLoss())


def _first_sample_per_image(data, limit: int) -> list[int]:
    """Indices of the first expression of each image among the first ``limit`` samples."""
    firsts, seen = [], set()
    for i in range(min(limit, len(data))):
        key = data.image_key(i)
        if key not in seen:
            seen.add(key)
            firsts.append(i)
    return firsts


class SagObjective(Objective):
    method = "sag"
    loss_config = SagLoss

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self._loss = dataclasses.asdict(
            from_mapping(SagLoss, config.loss, "recipe: loss", SagLoss.check))
        self._text_cache: dict[str, torch.Tensor] = {}
        if self._weights()["frozen_text"]:
            self.model.text_encoder.requires_grad_(False)
            self.model.text_proj.requires_grad_(False)

    def _weights(self) -> dict[str, Any]:
        return self._loss

    def _frozen_text_features(self, texts: list[str]) -> torch.Tensor:
        """Text features over a fixed text encoder and projection: their part
        (:meth:`~wsris.methods.sag.model.SagModel.text_tokens`, in eval mode as at inference)
        is computed once per distinct text; the trainable text head, if any, runs on it
        every step."""
        m = self.model
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            was_training = m.text_encoder.training
            m.text_encoder.eval()
            with torch.no_grad():
                tb = self.tokenizer(missing).to(self.device)
                tokens, mask = m.text_tokens(tb.input_ids, tb.attention_mask)
            m.text_encoder.train(was_training)
            for text, t, k in zip(missing, tokens.float(), mask, strict=True):
                self._text_cache[text] = t[: int(k.sum())]
        rows = [self._text_cache[t] for t in texts]
        tokens = pad_sequence(rows, batch_first=True)
        lengths = torch.tensor([len(r) for r in rows], device=tokens.device)
        mask = torch.arange(tokens.shape[1], device=tokens.device) < lengths[:, None]
        return m.text_feature(tokens, mask)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        """Text features of ``texts`` as the training forward computes them."""
        if self._weights()["frozen_text"]:
            return self._frozen_text_features(texts)
        tb = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tb.input_ids, tb.attention_mask)

    def _own_image_attention(
        self, batch, out, phrases: list[str | None]
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For the texts of ``batch`` with a phrase (not ``None``): their ``A^fuse`` on
        their own image ``[R, K]`` and, without gradient, the phrase's on the same
        entities ``[R, K]``; ``None`` when no text has one."""
        rows = [j for j, p in enumerate(phrases) if p is not None]
        if not rows:
            return None
        rows_t = torch.tensor(rows, device=out.a_fuse.device)
        images = batch.image_index.to(out.a_fuse.device)[rows_t]
        with torch.no_grad():  # the phrase's attention is the target
            feats = self._text_features([phrases[j] for j in rows])  # type: ignore[misc]
            a_all = self.model.fuse(out.slots, feats, out.entity_mask).a_fuse  # [B, R, K]
            a_phrase = a_all[images, torch.arange(len(rows), device=images.device)]
        return out.a_fuse[images, rows_t], a_phrase

    def _subject_loss(self, batch, out) -> torch.Tensor:
        """Subject consistency over the texts of ``batch`` that have a subject."""
        from ...blocks.noun_chunks import subject_phrases

        pair = self._own_image_attention(batch, out, subject_phrases(batch.text.texts,
                                                                     self.tokenizer))
        return out.a_fuse.sum() * 0.0 if pair is None else subject_consistency_loss(*pair)

    def _negation_loss(self, batch, out) -> torch.Tensor:
        """Negation exclusion over the texts of ``batch`` that negate something."""
        from ...blocks.noun_chunks import negated_phrases

        pair = self._own_image_attention(batch, out, negated_phrases(batch.text.texts,
                                                                     self.tokenizer))
        return out.a_fuse.sum() * 0.0 if pair is None else negation_exclusion_loss(*pair)

    def forward(self, batch) -> dict[str, torch.Tensor]:
        w = self._weights()
        text = None
        if w["frozen_text"]:
            text = self._frozen_text_features(batch.text.texts)
        out = self.model(batch.pixel_values, batch.text.input_ids, batch.text.attention_mask,
                         text=text)
        recon = reconstruction_loss(out.recon, out.recon_target, out.recon_splits)
        exclude = None
        if w["filter_false_negatives"] and self.step >= int(w["false_negatives_from_step"]):
            exclude = self.describable(batch, str(w["false_negative_rule"]))
        c3 = c3_loss(out.z, out.text, out.logit_scale, batch.image_index, exclude=exclude)
        c3_weight = 0.0 if self.step < int(w["recon_only_steps"]) else float(w["c3"])
        total = float(w["recon"]) * recon + c3_weight * c3
        metrics = {}
        if float(w["subject"]) > 0:
            subject = self._subject_loss(batch, out)
            total = total + float(w["subject"]) * subject
            metrics["subject"] = subject.detach()
        if float(w["negation"]) > 0:
            negation = self._negation_loss(batch, out)
            total = total + float(w["negation"]) * negation
            metrics["negation"] = negation.detach()
        acc = c3_retrieval_accuracy(out.z.detach(), out.text.detach(), batch.image_index)
        return {
            "loss": total,
            "c3": c3.detach(),
            "recon": recon.detach(),
            **metrics,
            "c3_acc": torch.tensor(acc),
            "scale": out.logit_scale.detach(),
        }

    @torch.no_grad()
    def heldout_retrieval(self, data, limit: int, batch_size: int = 32) -> dict[str, float]:
        """C^3 retrieval accuracy on val: batches of ``batch_size`` different images with
        one expression each; the share of texts whose highest C^3 logit is their own
        image (chance: 1 / batch_size)."""
        firsts = _first_sample_per_image(data, limit)
        correct, total = 0.0, 0
        for start in range(0, len(firsts) - batch_size + 1, batch_size):
            batch = self.collator([data[i] for i in firsts[start : start + batch_size]])
            batch = batch.to(self.device)
            _, slots = self.model.encode_slots(batch.pixel_values, init="sample", seed=0)
            text = self.model.encode_text(batch.text.input_ids, batch.text.attention_mask)
            entities = self.model.entities(slots)
            z = self.model.fuse(entities.slots, text, entities.mask).z
            correct += c3_retrieval_accuracy(z, text) * batch_size
            total += batch_size
        if not total:
            return {}
        return {"c3_retrieval": correct / total, "c3_retrieval_chance": 1.0 / batch_size}

    @torch.no_grad()
    def validate(self, limit: int) -> dict[str, float]:
        """Binding first (best-slot IoU per object), then localisation."""
        from .slots import best_slot_iou

        data = self.val_dataset()
        if data is None:
            return {}
        self.model.eval()
        ious = []
        for i in _first_sample_per_image(data, limit):
            sample = data[i]
            batch = self.collator([sample])
            # Seeded sampling: with Ks > 1, the Gaussian means give Ks identical slots.
            _, slots = self.model.encode_slots(
                batch.pixel_values.to(self.device), init="sample", seed=0
            )
            slots = self.model.entities(slots)  # binding of what the text is fused with
            h, w = slots.grid
            a_slot = slots.a_slot[0].reshape(-1, h, w).float().cpu()
            masks = torch.stack([torch.from_numpy(m) for m in sample.object_masks])
            ious.append(best_slot_iou(a_slot, masks))
        metrics = {"best_slot_iou": float(torch.cat(ious).mean())} if ious else {}
        metrics.update(self.heldout_retrieval(data, limit))
        metrics.update(localisation_metrics(self, limit))
        self.model.train()
        return metrics
