"""The model card written next to every saved model."""

from __future__ import annotations

from wsris.model_card import describe_data, render_model_card


def test_curriculum_is_listed_stage_by_stage():
    text = describe_data([{"spec": "shapes:train?variant=attributes", "until": 1500},
                          {"spec": "shapes:train"}])
    assert text.splitlines() == [
        "Curriculum:", "", "- `shapes:train?variant=attributes` until step 1500",
        "- `shapes:train` to the end",
    ]
    assert describe_data("shapes:train") == "shapes:train"
    assert describe_data(None) == ""


def test_card_has_every_section_and_the_measured_metrics():
    config = {"name": "sag-test", "method": "sag",
              "card": {"data": [{"spec": "shapes:train"}], "recipe": "R",
                       "metrics": {"shapes:val": {"mIoU": 41.5}}, "limits": "L"}}
    card = render_model_card(config)
    for heading in ("# sag-test", "## Training data", "## Recipe", "## Measured metrics",
                    "## Intended use and limits", "## Files"):
        assert heading in card
    assert '"mIoU": 41.5' in card and "- `shapes:train` to the end" in card
    assert "Shatter and Gather" in card
