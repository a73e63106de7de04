"""A third method, registered in a few dozen lines, works end to end: ``wsris.load``,
``segment``, ``wsris eval`` and a training step, with no change anywhere else."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import wsris.cli  # noqa: F401  (the command line exists before the method registers)
from wsris.pipelines import LocalizationOutput
from wsris.registry import MethodSpec, register_method, unregister_method
from wsris.strict import from_mapping
from wsris.training.objectives import Objective

HERE = __name__


@dataclass
class ToyConfig:
    image_size: int = 32
    dim: int = 8

    @classmethod
    def from_dict(cls, d: dict) -> ToyConfig:
        return from_mapping(cls, d, "toy architecture")

    @classmethod
    def tiny(cls) -> ToyConfig:
        return cls()

    def to_dict(self) -> dict:
        return asdict(self)


class ToyModel(nn.Module):
    """Heat = image patch features . mean word embedding."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.patches = nn.Conv2d(3, config.dim, 4, stride=4)
        self.words = nn.Embedding(30522, config.dim)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bdhw,bd->bhw", self.patches(pixel_values),
                            self.words(input_ids).mean(1))


class ToyPipeline:
    @staticmethod
    def encode(model, pixel_values, image, options, cache) -> None:
        pass

    @staticmethod
    def localize(model, pixel_values, text, image, options, cache=None):
        with torch.no_grad():
            pixels = pixel_values.expand(len(text.texts), -1, -1, -1)
            heat = model(pixels, text.input_ids) * options.get("gain", 1.0)
        return [LocalizationOutput(h.float().cpu()) for h in heat]


class ToyObjective(Objective):
    def forward(self, batch) -> dict[str, torch.Tensor]:
        heat = self.model(batch.pixel_values[batch.image_index], batch.text.input_ids)
        return {"loss": (heat - batch.masks[:, ::4, ::4].float()).pow(2).mean()}


TOY = MethodSpec(
    name="toy", title="a toy method", paper="nobody, never",
    config_class=f"{HERE}:ToyConfig", model_class=f"{HERE}:ToyModel",
    pipeline=f"{HERE}:ToyPipeline", options=frozenset({"gain"}),
    defaults={"preprocessing": {"mean": [0.5] * 3, "std": [0.5] * 3},
              "text": {"style": "bert", "max_length": 16}, "inference": {"threshold": 0.5}},
    variants={"loud": {"gain": 2.0}}, objective=f"{HERE}:ToyObjective",
)


@pytest.fixture
def toy():
    register_method(TOY)
    yield TOY
    unregister_method("toy")


def test_a_registered_toy_method_trains_loads_segments_and_evaluates(toy, tmp_path, image):
    import wsris
    from wsris.cli import main
    from wsris.training import TrainConfig, train

    recipe = TrainConfig.from_dict({
        "method": "toy", "model": {"preset": "tiny"}, "output_dir": str(tmp_path / "run"),
        "data": {"train": "shapes:train?length=4&image_size=32"},
        "optim": {"total_steps": 1, "batch_size": 2, "warmup_steps": 0},
        "schedule": {"eval_limit": 0}, "amp": False, "device": "cpu",
    })
    folder = train(recipe, progress=False)

    seg = wsris.load(str(folder), device="cpu")
    assert seg.method == "toy"
    result = seg.segment(image, "the red circle")
    assert result.mask.shape == result.heatmap.shape == wsris.images.load_image(image).shape[:2]
    with pytest.raises(wsris.WsrisError, match="unknown option"):
        seg.segment(image, "the red circle", stages=("gradcam",))

    res = CliRunner().invoke(main, ["eval", "--model", str(folder), "--data", "shapes:val",
                                    "--limit", "2", "--variant", "loud", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "model" in res.output and "variant loud" in res.output
