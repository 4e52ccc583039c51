"""The benchmark's correctness checks (``bash bench/run.sh --quick``) and its README writer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.heavy
def test_quick_checks_pass():
    """Our forward within 2e-4 of the official one (exact kernels: equal), the pipeline's restored crops
    within 1/255 of the official model's, and the full-size ONNX export within 1e-3 of PyTorch."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "quick_check.py")], capture_output=True, text=True,
                          cwd=ROOT, timeout=1200, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("forward, 1 face") and line.endswith("ok") for line in lines)
    assert any(line.startswith("pipeline, 3 faces, parsing masks") and line.endswith("ok") for line in lines)
    assert any(line.startswith("ONNX export in onnxruntime") and line.endswith("ok") for line in lines)
    assert "all checks passed" in done.stdout


def _forward_result(impl: str, batch: int, median: float, official_median: float, diff: float, memory: float) -> dict:
    return {"impl": impl, "arch": "clean", "label": impl, "batch": batch, "median_s": median,
            "median_per_face_s": median / batch, "ratio_vs_official": median / official_median, "other_cpu": [0.01],
            "max_abs_diff_vs_official": diff, "mean_abs_diff_vs_official": diff / 10,
            "memory": {"peak_delta_mib": memory}}


def test_report_writes_tables_between_the_markers_and_flags_missed_targets(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    import report

    results = tmp_path / "results"
    results.mkdir()
    env = {"cpu": "Test CPU", "device": "cpu", "torch_threads": 2, "torch": "2.x", "repeats": 3, "warmup": 1}
    forward = {"environment": env, "results": [
        _forward_result("official-clean", 1, 3.0, 3.0, 0.0, 700),
        _forward_result("ours-clean", 1, 1.5, 3.0, 2e-5, 650),
        _forward_result("ours-clean-bf16", 1, 1.4, 3.0, 0.05, 400),
        _forward_result("ours-clean-openvino", 1, 0.9, 3.0, 0.035, 250)]}
    forward["results"][0]["memory"]["peak_total_mib"] = 1800
    forward["results"][-1]["memory"]["peak_total_mib"] = 2300
    (results / "forward_cpu.json").write_text(json.dumps(forward))
    monkeypatch.setattr(report, "RESULTS", results)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Performance\n\nintro\n\n<!-- bench:start -->\nold\n<!-- bench:end -->\n\n## Next\n")

    assert report.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and text.startswith("# x\n\n## Performance\n\nintro\n") and text.endswith("## Next\n")
    assert "| one face, fp32: ≥ 1.3× the official speed | 2.00× (max abs diff 2.0e-05) | met |" in text
    assert "| one face, bf16: ≥ 2.5× the official fp32 speed | 2.14×" in text and "**missed**" in text
    assert "| peak memory of the forward ≤ official, PyTorch, batch 1 | 650 vs 700 MiB | met |" in text
    assert ("| one face, OpenVINO backend, batch 1: ≥ 3× the official speed, max abs diff ≤ 0.05 | 3.33× "
            "(max abs diff 0.035) | met |") in text
    assert "| whole process's peak ≤ official, OpenVINO backend, batch 1 | 2300 vs 1800 MiB | **missed** |" in text

    no_markers = tmp_path / "plain.md"
    no_markers.write_text("# nothing here\n")
    assert report.main(["--readme", str(no_markers)]) == 1
