"""Public names that moved keep a deprecated alias for one release (listed in CHANGELOG)."""

from __future__ import annotations

import importlib
import sys

import pytest

MOVED = {
    "wsris.methods.gradcam": "wsris.blocks.gradcam",
    "wsris.methods.affinity": "wsris.blocks.affinity",
    "wsris.methods.proposals": "wsris.blocks.proposals",
    "wsris.methods.slots": "wsris.blocks.slots",
    "wsris.pipelines.chunk": "wsris.methods.chunk.pipeline",
    "wsris.pipelines.sag": "wsris.methods.sag.pipeline",
    "wsris.training.chunk_objective": "wsris.methods.chunk.objective",
    "wsris.training.chunk_validation": "wsris.methods.chunk.validation",
    "wsris.training.sag_objective": "wsris.methods.sag.objective",
    "wsris.training.init": "wsris.training.warm_start",
    "wsris.losses.chunk": "wsris.methods.chunk.losses",
    "wsris.losses.sag": "wsris.methods.sag.losses",
    "wsris.noun_chunks": "wsris.blocks.noun_chunks",
    "wsris.methods.chunk.noun_chunks": "wsris.blocks.noun_chunks",
    "wsris.convert.albef": "wsris.methods.chunk.convert",
    "wsris.convert.sag": "wsris.methods.sag.convert",
}


@pytest.mark.parametrize("old,new", sorted(MOVED.items()))
def test_a_moved_module_is_the_new_one_with_a_warning(old, new, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_moved_names_keep_working_with_a_warning():
    from wsris import model_ref, variants
    from wsris.methods import get_method

    with pytest.warns(DeprecationWarning):
        assert model_ref.METHOD_OPTIONS["sag"] == set(get_method("sag").options)
    with pytest.warns(DeprecationWarning):
        assert variants.METHOD_VARIANTS["chunk"]["gradcam"] == {"stages": ("gradcam",)}
    with pytest.warns(DeprecationWarning):
        from wsris.models import build_model
        model = build_model("sag", get_method("sag").preset("tiny"))
    assert type(model).__name__ == "SagModel"
    with pytest.warns(DeprecationWarning):
        from wsris.evaluation import main  # noqa: F401
    from wsris.losses import c3_loss
    from wsris.methods.sag.losses import c3_loss as new

    assert c3_loss is new
