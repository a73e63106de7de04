"""Which ITM negatives drawn from the batch are not negatives at all (Shapes-Ref only).

Shapes-Ref expressions are the shortest phrases that single out one object of their own
scene, so another scene's expression is often true of this scene too: on the val split,
20% of the attribute expressions of a random other scene describe an object of the scene
(``the circle``, ``the red shape``). Used as ITM negatives, they teach the model that a
phrase does not match an image that contains what it names. Web captions, the data ALBEF
and the chunk method were made for, rarely describe a random other image; this module
brings Shapes-Ref training closer to that by leaving such texts out of the negatives.

The check reads only the scene's object attributes (size, colour, shape), never masks or
which object an expression refers to: a text *may describe* an image when some object of
the image fits the attribute words of the text's head phrase (the words before its first
relation, location or "that"). A text that fails it is certainly false of the image; one
that passes may or may not be true, and is never drawn as a negative.

That rule (``head``) also leaves out every image whose objects fit the head phrase but
not the rest: "the red shape on the left" is never contrasted with an image whose red
shape is on the right, so a contrastive loss gets no example of what a location or
relation means. The ``semantic`` rule reads the whole expression with the grammar's own
semantics (:mod:`wsris.data.shapes_semantics`, which uses the objects' attributes and
positions, still never masks or targets): a text is left out only where it is true of
some object or left open by the grammar's dead zones, and kept as a negative where it is
false of every object.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

from ..data.shapes import COLOURS, SHAPES, SIZES

#: Words that end an expression's head phrase ("the red circle | left of the square").
HEAD_END = frozenset(
    {"that", "left", "right", "above", "below", "under", "next", "beside", "to", "on", "at"}
)


def head_attributes(text: str) -> tuple[set[str], set[str], set[str]]:
    """The size, colour and shape words of ``text``'s head phrase (empty: unconstrained;
    "shape" names no particular shape)."""
    head: list[str] = []
    for word in text.lower().split():
        if word in HEAD_END:
            break
        head.append(word)
    return (
        {w for w in head if w in SIZES},
        {w for w in head if w in COLOURS},
        {w for w in head if w in SHAPES},
    )


def may_describe(text: str, objects: Sequence[Any]) -> bool:
    """Whether some object (with ``size``, ``colour``, ``shape``) fits ``text``'s head."""
    sizes, colours, shapes = head_attributes(text)
    return any(
        (not sizes or o.size in sizes)
        and (not colours or o.colour in colours)
        and (not shapes or o.shape in shapes)
        for o in objects
    )


#: The rules for "may describe": the head phrase's attributes, or the whole expression.
RULES = ("head", "semantic")


def may_be_true(text: str, objects: Sequence[Any], config: Any) -> bool:
    """Whether ``text`` is true of some object of the scene, or left open by the
    grammar's dead zones (``config``: the scene's :class:`~wsris.data.shapes.ShapesConfig`)."""
    from ..data.shapes_semantics import evaluate

    reading = evaluate(text, objects, config)
    return bool(reading.true or reading.unclear)


def describable(
    texts: Sequence[str],
    scenes: Sequence[Sequence[Any]],
    rule: str = "head",
    config: Any = None,
) -> torch.Tensor:
    """``[T, I]`` bool: text ``t`` may describe image ``i`` (whose objects are
    ``scenes[i]``) under ``rule`` (``semantic`` needs the scenes' ``config``)."""
    if rule not in RULES:
        raise ValueError(f"unknown false-negative rule {rule!r}; known: {RULES}")
    if rule == "semantic" and config is None:
        raise ValueError("the semantic rule needs the scenes' ShapesConfig")
    test = may_describe if rule == "head" else functools.partial(may_be_true, config=config)
    return torch.tensor([[test(t, objs) for objs in scenes] for t in texts],
                        dtype=torch.bool).reshape(len(texts), len(scenes))


def _stage_data(stages: Sequence[tuple[int | None, Any]], step: int) -> Any:
    """The dataset of the curriculum stage (``(until_step, dataset)`` pairs) at ``step``."""
    from ..errors import ConfigError

    data = next(d for until, d in stages if until is None or step < until)
    if not hasattr(data, "scene"):
        raise ConfigError("recipe: loss.filter_false_negatives needs Shapes-Ref data")
    return data


def batch_scenes(
    stages: Sequence[tuple[int | None, Any]], step: int, batch: Any
) -> list[Sequence[Any]]:
    """The objects of each image of a training batch, read from the dataset of the
    curriculum stage (``(until_step, dataset)`` pairs) at ``step``."""
    data = _stage_data(stages, step)
    first: dict[int, int] = {}
    for t, b in enumerate(batch.image_index.tolist()):
        first.setdefault(b, t)
    n_img = int(batch.pixel_values.shape[0])
    return [data.scene(scene_index(batch.sample_ids[first[b]])).objects for b in range(n_img)]


def batch_describable(
    stages: Sequence[tuple[int | None, Any]], step: int, batch: Any, rule: str = "head"
) -> torch.Tensor:
    """``[B_txt, B_img]`` :func:`describable` for a training batch (see
    :func:`batch_scenes`)."""
    config = _stage_data(stages, step).config if rule == "semantic" else None
    return describable(batch.text.texts, batch_scenes(stages, step, batch), rule, config)


def drop_describable(
    w_img: torch.Tensor, w_txt: torch.Tensor, possible: torch.Tensor, image_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the negative-sampling weights of pairs where the text may describe the image.

    ``w_img`` ``[T, I]``: weight of image ``i`` as the negative of text ``t``; ``w_txt``
    ``[T, T]``: weight of text ``u`` as the negative text for the image of text ``t``;
    ``possible`` ``[T, I]`` from :func:`describable`; ``image_index`` ``[T]``.
    """
    return (
        w_img.masked_fill(possible, 0),
        w_txt.masked_fill(possible.T[image_index], 0),
    )


def scene_index(sample_id: str) -> int:
    """The scene of a Shapes-Ref sample id ``split/scene/expression``."""
    parts = sample_id.split("/")
    if len(parts) != 3 or not parts[1].isdigit():
        raise ValueError(f"not a Shapes-Ref sample id: {sample_id!r}")
    return int(parts[1])
