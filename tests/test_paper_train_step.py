"""The paper-size training-step benchmark, end to end on the CPU with its tiny ``--smoke``
setting: what it writes (no timing is asserted; the GPU figures come from a GPU run)."""

from __future__ import annotations

import json

from benchmarks import paper_train_step as bench
from wsris.training import TrainConfig


def test_smoke_run_writes_a_report_and_the_doc_table(tmp_path):
    out = tmp_path / "smoke.json"
    report = bench.main(["--smoke", "--device", "cpu", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert set(report["methods"]) == {"sag", "chunk"} and report["smoke"] is True
    for method, r in report["methods"].items():
        assert r["preset"] == "tiny" and r["batch"] == 4 and r["autocast"] == "off"
        median = r["step_seconds"]["median"]
        assert median > 0 and r["step_seconds"]["all"] == [median]
        for name, steps in r["total_steps"].items():  # the paper recipes' own schedules
            assert steps == TrainConfig.from_yaml(bench.REPO / "configs" / f"{name}.yaml") \
                .optim.total_steps
            assert r["gpu_hours"][name] == median * steps / 3600
        assert set(r["total_steps"]) == set(bench.SCHEDULES[method])
    doc = tmp_path / "performance.md"
    doc.write_text(f"# P\n\n## Section\n\n{bench.BEGIN}\nold table\n{bench.END}\n\n## Next\n")
    bench.update_doc(doc, bench.markdown(report))
    text = doc.read_text()
    assert "old table" not in text and text.endswith(f"{bench.END}\n\n## Next\n")
    assert "| sag: `sag_refcoco.yaml` |" in text and "chunk_refcocop" in text
