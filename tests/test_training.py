"""The shared training loop: schedule, data order, resume, DDP, recipe validation."""

from __future__ import annotations

import json
import math
import os
import socket

import pytest
import torch

from wsris.errors import ManifestError
from wsris.training import TrainConfig, train
from wsris.training.loop import StepSampler, lr_lambda, param_groups

TINY_SAG = {
    "method": "sag",
    "model": {"preset": "tiny", "architecture": {"image_size": 32, "iterations": 2}},
    "data": {"train": "shapes:train?image_size=32&length=64"},
    "optim": {"lr": 1e-3, "warmup_steps": 2, "total_steps": 6, "batch_size": 4},
    "schedule": {"log_every": 1, "checkpoint_every": 3},
}


def test_warmup_then_cosine():
    f = lr_lambda(warmup=4, total=12)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0)
    assert f(8) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(12) == pytest.approx(0.0)
    assert f(20) == pytest.approx(0.0)


def test_param_groups_split_decay_and_multipliers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    groups = param_groups(model, lr=1.0, weight_decay=0.1, lr_mult={"0.": 0.5})
    by_lr_decay = {(g["lr"], g["weight_decay"]): len(g["params"]) for g in groups}
    # 0.weight decays at lr 0.5; 0.bias no decay at 0.5; LayerNorm weight+bias no decay at 1
    assert by_lr_decay == {(0.5, 0.1): 1, (0.5, 0.0): 1, (1.0, 0.0): 2}


def test_step_sampler_is_a_function_of_the_step_and_partitions_ranks():
    a = StepSampler(10, 4, seed=3)
    b = StepSampler(10, 4, seed=3)
    assert [a.indices(s) for s in range(6)] == [b.indices(s) for s in (0, 1, 2, 3, 4, 5)]
    epoch0 = sum((a.indices(s) for s in range(5)), [])[:10]
    assert sorted(epoch0) == list(range(10))  # each epoch is a permutation
    r0, r1 = StepSampler(10, 4, 3, rank=0, world=2), StepSampler(10, 4, 3, rank=1, world=2)
    for s in range(4):
        assert sorted(r0.indices(s) + r1.indices(s)) == sorted(a.indices(s))


def test_recipe_errors_name_the_problem(tmp_path):
    with pytest.raises(ManifestError, match="unknown field"):
        TrainConfig.from_dict({**TINY_SAG, "optimiser": {}})
    with pytest.raises(ManifestError, match="optim: unknown field"):
        TrainConfig.from_dict({**TINY_SAG, "optim": {"learning_rate": 1}})
    with pytest.raises(ManifestError, match="method"):
        TrainConfig.from_dict({**TINY_SAG, "method": "clip"})
    with pytest.raises(ManifestError, match="not found"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


def _config(out, **changes):
    raw = {**TINY_SAG, "output_dir": str(out), **changes}
    return TrainConfig.from_dict(raw)


@pytest.mark.slow  # training runs
def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    straight = train(_config(tmp_path / "a"), progress=False)
    cfg = _config(tmp_path / "b")
    cfg.schedule.time_limit_minutes = 1e-9  # stops right after the first step
    train(cfg, progress=False)
    state = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 1
    resumed = train(_config(tmp_path / "b"), progress=False)
    from safetensors.torch import load_file

    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    log = (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 6  # one line per step, none lost or repeated


@pytest.mark.slow  # training runs
def test_exported_model_loads_and_segments(tmp_path):
    import numpy as np

    import wsris

    folder = train(_config(tmp_path / "r"), progress=False)
    seg = wsris.load(folder)
    assert seg.method == "sag"
    image = np.zeros((40, 50, 3), np.uint8)
    result = seg.segment(image, "the red circle")
    assert result.mask.shape == (40, 50) and result.heatmap.dtype == np.float32
    assert "recipe" in (folder / "README.md").read_text().lower()


@pytest.mark.slow  # training runs
def test_export_only_writes_the_checkpoints_weights(tmp_path):
    from safetensors.torch import load_file

    from wsris.errors import WeightsNotAvailableError
    from wsris.training import export_checkpoint

    with pytest.raises(WeightsNotAvailableError, match="no checkpoint"):
        export_checkpoint(_config(tmp_path / "none"))
    cfg = _config(tmp_path / "r")
    cfg.schedule.time_limit_minutes = 1e-9  # stop after one step, with a checkpoint
    train(cfg, progress=False)
    folder = export_checkpoint(_config(tmp_path / "r"))
    assert folder.name == "model-step1"
    state = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)
    saved = load_file(folder / "model.safetensors")
    for key, value in saved.items():
        torch.testing.assert_close(value, state["model"][key].to(value.dtype), msg=key)
    assert "1 steps" in (folder / "README.md").read_text()
    # the card carries the recipe the run trained with, not the one export was called with
    other = _config(tmp_path / "r")
    other.optim.lr = 0.5
    card = json.loads((export_checkpoint(other) / "config.json").read_text())["card"]
    assert '"lr": 0.001' in card["recipe"] and '"lr": 0.5' not in card["recipe"]


@pytest.mark.slow  # training runs
def test_export_only_can_take_a_kept_step_instead_of_the_last(tmp_path):
    from wsris.errors import WeightsNotAvailableError
    from wsris.training import export_checkpoint

    cfg = _config(tmp_path / "k")
    cfg.optim.total_steps = 3
    cfg.schedule.checkpoint_every = 1
    cfg.schedule.keep_every = 2
    train(cfg, progress=False)
    kept = torch.load(tmp_path / "k" / "checkpoints" / "step2.pt", weights_only=True)
    last = torch.load(tmp_path / "k" / "checkpoints" / "last.pt", weights_only=True)
    assert (kept["step"], last["step"]) == (2, 3)
    folder = export_checkpoint(_config(tmp_path / "k"), step=2)
    assert folder.name == "model-step2"
    import wsris

    seg = wsris.load(folder)
    name, value = next(iter(kept["model"].items()))
    assert torch.equal(seg.model.state_dict()[name].float(), value.float())
    with pytest.raises(WeightsNotAvailableError, match="step1.pt"):
        export_checkpoint(_config(tmp_path / "k"), step=1)


@pytest.mark.slow  # training runs
def test_validate_only_reports_the_checkpoints_step_and_metrics(tmp_path):
    from wsris.training import validate_checkpoint

    data = {**TINY_SAG["data"], "val": "shapes:val?image_size=32&length=6"}
    cfg = _config(tmp_path / "v", data=data)
    cfg.schedule.time_limit_minutes = 1e-9
    train(cfg, progress=False)
    metrics = validate_checkpoint(_config(tmp_path / "v", data=data), limit=6)
    assert metrics["step"] == 1
    assert 0.0 <= metrics["best_slot_iou"] <= 1.0 and 0.0 <= metrics["mIoU"] <= 1.0
    assert metrics["mIoU_random_object"] > 0  # the baselines ran on the same samples


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
         "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict({**TINY_SAG, "output_dir": out, "device": "cpu"})
    cfg.optim.total_steps = 3
    train(cfg, progress=False)


@pytest.mark.slow  # training runs
def test_two_gloo_processes_train_and_agree(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3
    assert (out / "model" / "model.safetensors").is_file()
    lines = (out / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == 3  # only rank 0 logs


@pytest.mark.slow  # training runs
def test_curriculum_switches_data_at_the_stage_boundary(tmp_path):
    from wsris.training.loop import StepSampler, _batches
    from wsris.training.objectives import build_objective

    stages_raw = [
        {"spec": "shapes:train?image_size=32&length=8&variant=attributes", "until": 2},
        {"spec": "shapes:train?image_size=32&length=8"},
    ]
    cfg = _config(tmp_path / "c", data={"train": stages_raw})
    obj = build_objective(cfg, torch.device("cpu"))
    stages = [(u, d, StepSampler(len(d), 4, k)) for k, (u, d) in enumerate(obj.train_stages())]
    assert [u for u, _, _ in stages] == [2, None]
    kinds, sources = [], []
    for step, (batch, dataset) in _batches(stages, lambda samples, data: (samples, data), 0):
        kinds.append({s.kind for s in batch})
        sources.append(dataset)
        if step == 4:
            break
    assert kinds[0] == kinds[1] == {"attribute"}  # the attribute-only stage
    # collate is told which stage's dataset the samples come from
    assert sources[:2] == [stages[0][1]] * 2 and sources[2:] == [stages[1][1]] * 3
    assert stages[0][1].scenes.variant == "attributes" and stages[1][1].scenes.variant == "default"
    bad = _config(tmp_path / "d", data={"train": [{"spec": "shapes:train"}, {"spec": "x"}]})
    with pytest.raises(ManifestError, match="until"):
        build_objective(bad, torch.device("cpu")).train_stages()


def test_heldout_retrieval_counts_texts_whose_own_image_scores_highest():
    from wsris.methods.sag.losses import c3_logits
    from wsris.training.objectives import build_objective

    data_spec = {**TINY_SAG["data"], "val": "shapes:val?image_size=32&length=24"}
    obj = build_objective(_config("unused", data=data_spec), torch.device("cpu"))
    obj.model.eval()
    data = obj.val_dataset()
    out = obj.heldout_retrieval(data, limit=len(data), batch_size=2)
    assert out["c3_retrieval_chance"] == 0.5
    # by hand: the first expression of each scene, in pairs of scenes
    firsts = sorted({data.image_key(i): i for i in reversed(range(len(data)))}.values())
    hits = []
    with torch.no_grad():
        for k in range(0, len(firsts) - 1, 2):
            batch = obj.collator([data[firsts[k]], data[firsts[k + 1]]])
            _, slots = obj.model.encode_slots(batch.pixel_values, init="sample", seed=0)
            text = obj.model.encode_text(batch.text.input_ids, batch.text.attention_mask)
            logits = c3_logits(obj.model.fuse(slots.slots, text).z, text)
            hits += (logits.argmax(dim=1) == torch.arange(2)).tolist()
    assert len(hits) >= 2
    assert out["c3_retrieval"] == pytest.approx(sum(hits) / len(hits))


@pytest.mark.slow  # training runs
def test_eval_limit_zero_switches_validation_off(tmp_path):
    data = {**TINY_SAG["data"], "val": "shapes:val?image_size=32&length=6"}
    schedule = {**TINY_SAG["schedule"], "eval_every": 3, "eval_limit": 0}
    train(_config(tmp_path / "off", data=data, schedule=schedule), progress=False)
    assert not (tmp_path / "off" / "val_log.jsonl").exists()
    schedule["eval_limit"] = 4
    train(_config(tmp_path / "on", data=data, schedule=schedule), progress=False)
    lines = (tmp_path / "on" / "val_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [3, 6]  # the last one not twice


def test_step_sampler_groups_keep_a_scenes_expressions_together():
    s = StepSampler(12, 4, seed=1, group=2)
    seen = []
    for step in range(3):  # one epoch of 6 blocks, 2 per step
        idx = s.indices(step)
        assert len(idx) == 4
        assert all(idx[k + 1] == idx[k] + 1 and idx[k] % 2 == 0 for k in (0, 2))
        seen += idx
    assert sorted(seen) == list(range(12))
    with pytest.raises(ValueError, match="multiple"):
        StepSampler(12, 5, seed=1, group=2)


def test_texts_per_image_must_match_the_data(tmp_path):
    from wsris.training.loop import _texts_per_image

    cfg = _config(tmp_path / "r")
    cfg.optim.texts_per_image = 3
    from wsris.data.shapes import ShapesRef

    with pytest.raises(ManifestError, match="3 expressions per scene"):
        _texts_per_image(ShapesRef("val", length=2).referring(), cfg.optim)
    cfg.optim.texts_per_image = 2
    assert _texts_per_image(ShapesRef("val", length=2).referring(), cfg.optim) == 2


def test_keep_every_keeps_numbered_checkpoints(tmp_path):
    cfg = _config(tmp_path / "k")
    cfg.schedule.keep_every = 3
    cfg.schedule.eval_limit = 0
    train(cfg, progress=False)
    kept = sorted(p.name for p in (tmp_path / "k" / "checkpoints").glob("step*.pt"))
    assert kept == ["step3.pt", "step6.pt"]
    state = torch.load(tmp_path / "k" / "checkpoints" / "step3.pt", weights_only=True)
    assert state["step"] == 3


def test_frozen_text_features_are_cached_and_equal_the_encoder(tmp_path):
    from wsris.training.objectives import build_objective

    cfg = _config(tmp_path / "f", loss={"frozen_text": True})
    obj = build_objective(cfg, torch.device("cpu"))
    assert not any(p.requires_grad for p in obj.model.text_encoder.parameters())
    texts = ["the red circle", "blue square", "the red circle"]
    feats = obj._frozen_text_features(texts)
    assert len(obj._text_cache) == 2
    obj.model.eval()
    tb = obj.tokenizer(texts)
    with torch.no_grad():
        direct = obj.model.encode_text(tb.input_ids, tb.attention_mask)
    torch.testing.assert_close(feats, direct.float())
    # the loss section is checked when the recipe loads, before any objective is built
    with pytest.raises(ManifestError, match="did you mean 'frozen_text'"):
        _config(tmp_path / "g", loss={"frozen_txt": True})
    with pytest.raises(ManifestError, match="false_negative_rule must be one of"):
        _config(tmp_path / "r", loss={"false_negative_rule": "whole"})


def test_frozen_text_cache_feeds_a_trainable_text_head(tmp_path):
    """With a text head, the cache holds the frozen projected tokens and the head runs on
    them every step: the same features as encode_text, with gradients into the head only."""
    from wsris.training.objectives import build_objective

    model = {**TINY_SAG["model"],
             "architecture": {**TINY_SAG["model"]["architecture"], "text_head_layers": 1}}
    obj = build_objective(_config(tmp_path / "h", model=model, loss={"frozen_text": True}),
                          torch.device("cpu"))
    for p in obj.model.text_head.parameters():  # away from the identity start
        torch.nn.init.normal_(p, std=0.2)
    obj.model.eval()
    texts = ["the red circle left of the blue square", "blue square", "the red circle"]
    feats = obj._frozen_text_features(texts)
    assert len(obj._text_cache) == 3
    assert [len(v) for v in obj._text_cache.values()] == [
        int(n) for n in obj.tokenizer(texts).attention_mask.sum(1)]  # padding not stored
    tb = obj.tokenizer(texts)
    with torch.no_grad():
        direct = obj.model.encode_text(tb.input_ids, tb.attention_mask)
    torch.testing.assert_close(feats, direct.float(), atol=1e-5, rtol=1e-5)
    feats.sum().backward()
    assert all(p.grad is not None for p in obj.model.text_head.parameters())
    assert obj.model.text_proj.weight.grad is None  # frozen with the encoder


def test_autocast_settings_follow_the_recipe_and_the_device():
    from wsris.training.loop import autocast_settings

    cpu = torch.device("cpu")
    assert autocast_settings(TrainConfig.from_dict(TINY_SAG), cpu) == (False, torch.float32)
    on = TrainConfig.from_dict({**TINY_SAG, "cpu_amp": True})
    assert autocast_settings(on, cpu) == (True, torch.bfloat16)
    off = TrainConfig.from_dict({**TINY_SAG, "cpu_amp": True, "amp": False})
    assert autocast_settings(off, cpu) == (True, torch.bfloat16)  # amp is the CUDA switch


def test_cpu_bf16_training_logs_losses_close_to_float32(tmp_path):
    """bf16 autocast on the CPU: the same first-step losses within bf16 rounding, and
    every step finite (the weights stay float32; only the forward is cast)."""
    logs = {}
    for name, amp in (("fp32", False), ("bf16", True)):
        cfg = _config(tmp_path / name)
        cfg.cpu_amp = amp
        folder = train(cfg, progress=False)
        from safetensors.torch import load_file

        weights = load_file(folder / "model.safetensors")
        assert not any(v.dtype == torch.bfloat16 for v in weights.values())
        logs[name] = [json.loads(line) for line in
                      (tmp_path / name / "train_log.jsonl").read_text().splitlines()]
    assert len(logs["bf16"]) == len(logs["fp32"]) == 6
    assert all(math.isfinite(r["loss"]) for r in logs["bf16"])
    first32, first16 = logs["fp32"][0]["loss"], logs["bf16"][0]["loss"]
    assert first16 != first32  # the cast did happen
    assert abs(first16 - first32) < 0.02 * abs(first32)


def test_the_fused_optimiser_makes_the_same_updates_as_the_per_tensor_loop():
    from wsris.training.loop import build_optimizer, param_groups

    cfg = TrainConfig.from_dict({**TINY_SAG, "optim": {"lr": 1e-2, "weight_decay": 0.05,
                                                       "lr_mult": {"decoder": 0.5}}})
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    b = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    b.load_state_dict(a.state_dict())
    start = a[0].weight.detach().clone()
    fused = build_optimizer(a, cfg.optim)
    plain = torch.optim.AdamW(param_groups(b, 1e-2, 0.05, {"decoder": 0.5}), lr=1e-2,
                              betas=tuple(cfg.optim.betas))
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    for step in range(5):
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(step))
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    assert (a[0].weight - start).abs().max() > 1e-3  # it did train


def test_resuming_an_unfused_optimiser_state_runs_fused(tmp_path):
    """A checkpoint written before AdamW ran fused resumes with the fused kernel."""
    cfg = _config(tmp_path / "r")
    cfg.schedule.time_limit_minutes = 1e-9  # stop after the first step
    train(cfg, progress=False)
    path = tmp_path / "r" / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    assert all(g["fused"] for g in state["optimizer"]["param_groups"])
    for group in state["optimizer"]["param_groups"]:
        group["fused"] = None  # as the per-tensor AdamW saved it
    torch.save(state, path)
    cfg = _config(tmp_path / "r")
    cfg.schedule.time_limit_minutes = 1e-9
    train(cfg, progress=False)
    state = torch.load(path, weights_only=True)
    assert state["step"] == 2
    assert all(g["fused"] for g in state["optimizer"]["param_groups"])


def test_num_workers_is_reported_as_unused(tmp_path):
    """The loop reads batches in its own process: a recipe asking for workers is told so
    rather than silently getting none."""
    cfg = _config(tmp_path / "w")
    cfg.optim.num_workers = 4
    cfg.optim.total_steps = 1
    with pytest.warns(UserWarning, match="num_workers = 4 is not used"):
        train(cfg, progress=False)


@pytest.mark.parametrize("term", ["subject", "negation"])
def test_phrase_losses_pair_each_text_with_its_own_image(tmp_path, term):
    """The subject-consistency and negation-exclusion terms read, for every text with a
    subject (negated phrase), the text's and that phrase's A^fuse on the text's OWN image;
    recomputed here one pair at a time."""
    from wsris.blocks.noun_chunks import negated_phrases, subject_phrases
    from wsris.methods.sag.losses import negation_exclusion_loss, subject_consistency_loss
    from wsris.training.objectives import build_objective

    phrases_of, loss_of = {
        "subject": (subject_phrases, subject_consistency_loss),
        "negation": (negated_phrases, negation_exclusion_loss),
    }[term]
    obj = build_objective(_config(tmp_path / "s", loss={term: 2.0}), torch.device("cpu"))
    obj.model.eval()
    data = obj.train_dataset()
    samples = [data[i] for i in range(8)]
    samples[1].text = "the red circle left of the blue square"
    samples[2].text = "the square on the left"
    samples[3].text = "the circle that is not red"
    samples[5].text = "the green circle"  # neither a subject nor a negation: left out
    batch = obj.collate(samples, data)
    torch.manual_seed(0)
    out = obj.model(batch.pixel_values, batch.text.input_ids, batch.text.attention_mask)
    got = obj._subject_loss(batch, out) if term == "subject" else obj._negation_loss(batch, out)

    phrases = phrases_of(batch.text.texts, obj.tokenizer)
    assert phrases[3] == ("the circle" if term == "subject" else "red")
    assert phrases[5] is None
    a_text, a_subject = [], []
    for j, subject in enumerate(phrases):
        if subject is None:
            continue
        i = int(batch.image_index[j])
        tb = obj.tokenizer([subject])
        feat = obj.model.encode_text(tb.input_ids, tb.attention_mask)
        mask = None if out.entity_mask is None else out.entity_mask[i : i + 1]
        a_subject.append(obj.model.fuse(out.slots[i : i + 1], feat, mask).a_fuse[0, 0])
        a_text.append(out.a_fuse[i, j])
    want = loss_of(torch.stack(a_text), torch.stack(a_subject))
    torch.testing.assert_close(got, want)
    got.backward()  # the text's side trains the fusion
    assert obj.model.fusion.attn.to_q.weight.grad is not None
