"""Turn the benchmark results (``bench/results/*.json``) into the README's performance tables.

Writes between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` in README.md (``--readme``), or
prints the Markdown. Every number comes from the JSON files; nothing is typed in by hand.

    python bench/report.py --readme README.md
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
TARGETS = {"fp32": 1.3, "bf16": 2.5, "cpu_best": 3.0, "cpu_best_diff": 0.05, "pipeline": 3.0, "detect_s": 1.0,
           "onnx": 1e-3, "crops": 1.0}
#: the fastest CPU path we ship, when it was measured (the optional OpenVINO backend)
BEST_CPU = "ours-clean-openvino"


def _load(name: str, device: str) -> dict | None:
    path = RESULTS / f"{name}_{device}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _max_load(values: list) -> float:
    known = [v for v in values if v is not None]
    return max(known) if known else 0.0


def _row(results: list[dict], impl: str, batch: int | None = None) -> dict | None:
    return next((r for r in results if r["impl"] == impl and (batch is None or r.get("batch") == batch)), None)


def forward_section(data: dict) -> list[str]:
    results = data["results"]
    env = data["environment"]
    lines = [f"**Forward pass**, one aligned 512×512 face, {env['cpu']} ({env['device']}, {env['torch_threads']} "
             f"threads), torch {env['torch']}; median of {env['repeats']} timed rounds after {env['warmup']} "
             f"warm-up, implementations interleaved (`bench/bench_forward.py`). *speed-up* = official median ÷ "
             f"this median; *max / mean abs diff* = output difference from the official model on the [-1, 1] "
             f"scale; *other CPU load* = the largest share of the CPUs other processes took during a timed run.",
             "",
             "| model | implementation | batch | s / forward | ms / face | faces / s | speed-up | "
             "max / mean abs diff | peak memory of the forward | other CPU load |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        model = "v1.2–v1.4 (clean)" if r["arch"] == "clean" else "v1 (original)"
        speedup = f"{1 / r['ratio_vs_official']:.2f}×" if r.get("ratio_vs_official") else "–"
        diff = "–"
        if r.get("max_abs_diff_vs_official") is not None:
            diff = f"{r['max_abs_diff_vs_official']:.1e} / {r['mean_abs_diff_vs_official']:.1e}"
        memory = (r.get("memory") or {}).get("peak_delta_mib")
        lines.append(f"| {model} | {r['label']} | {r['batch']} | {r['median_s']:.2f} | "
                     f"{1000 * r['median_per_face_s']:.0f} | {1 / r['median_per_face_s']:.2f} | {speedup} | {diff} | "
                     f"{'–' if memory is None else f'{memory:.0f} MiB'} | {_max_load(r['other_cpu']):.0%} |")
    return lines


def pipeline_section(data: dict) -> list[str]:
    results = data["results"]
    env = data["environment"]
    lines = [f"**Whole photo**, `GFPGANer.enhance` against `FaceRestorer.restore`: 1024×1024, three faces "
             f"(insightface's `t1.jpg`), upscale 2, {data.get('mask', 'box')} masks, the same seeded weights "
             f"(GFPGAN and ParseNet) and landmarks, detection excluded; median of {env['repeats']} "
             f"(`bench/bench_pipeline.py`).", "",
             "| pipeline | s / photo | speed-up | restore | masks + paste + background | other CPU load |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        stages = r["stage_medians_s"]
        lines.append(f"| {r['label']} | {r['median_s']:.2f} | {1 / r['ratio_vs_official']:.2f}× | "
                     f"{stages['restore']:.2f} | {stages['masks+paste+background']:.2f} | "
                     f"{_max_load(r['other_cpu']):.0%} |")
    lines.append("")
    for key, check in data.get("restored_crop_checks", {}).items():
        lines.append(f"- Restored crops, {key}, against the official model on the same crops with its noise fixed: "
                     f"at most {check['max']:.0f} 8-bit level(s) apart, {check['share_differing']:.2%} of values "
                     f"differ.")
    return lines


def detect_section(data: dict) -> list[str]:
    lines = [f"**Detection** of a {data['photo_size'][0]}×{data['photo_size'][1]} photo "
             f"(`bench/bench_detect.py`; ResNet-50 weights seeded random with the classifier set to background, "
             f"so that garbage boxes do not time NMS instead of detection):", "",
             "| detector | s / photo | speed-up | under 1 s | other CPU load |", "|---|---:|---:|:---:|---:|"]
    for r in data["results"]:
        lines.append(f"| {r['label']} | {r['median_s']:.2f} | {r['speedup_vs_official']:.2f}× | "
                     f"{'yes' if r['median_s'] < TARGETS['detect_s'] else 'no'} | {_max_load(r['other_cpu']):.0%} |")
    return lines


def targets_section(forward: dict | None, pipeline: dict | None, detect: dict | None) -> list[str]:
    rows = []

    def add(target: str, measured: str, met: bool | None) -> None:
        rows.append(f"| {target} | {measured} | {'–' if met is None else ('met' if met else '**missed**')} |")

    if forward:
        res = forward["results"]
        fp32 = _row(res, "ours-clean", 1)
        if fp32:
            speedup = 1 / fp32["ratio_vs_official"]
            add("one face, fp32: ≥ 1.3× the official speed", f"{speedup:.2f}× (max abs diff "
                f"{fp32['max_abs_diff_vs_official']:.1e})", speedup >= TARGETS["fp32"])
        bf16 = _row(res, "ours-clean-bf16", 1)
        if bf16:
            speedup = 1 / bf16["ratio_vs_official"]
            add("one face, bf16: ≥ 2.5× the official fp32 speed", f"{speedup:.2f}× (max / mean abs diff from fp32 "
                f"{bf16['max_abs_diff_vs_official']:.3f} / {bf16['mean_abs_diff_vs_official']:.4f})",
                speedup >= TARGETS["bf16"])
        best_diff = (_row(res, BEST_CPU, 1) or {}).get("max_abs_diff_vs_official")
        for batch in sorted({r["batch"] for r in res}):
            best = _row(res, BEST_CPU, batch)
            if best and best_diff is not None:
                speedup = 1 / best["ratio_vs_official"]
                add(f"one face, OpenVINO backend, batch {batch}: ≥ 3× the official speed, max abs diff ≤ 0.05",
                    f"{speedup:.2f}× (max abs diff {best_diff:.3f})",
                    speedup >= TARGETS["cpu_best"] and best_diff <= TARGETS["cpu_best_diff"])
        for impl in ("ours-clean", BEST_CPU):
            for batch in sorted({r["batch"] for r in res}):
                ours, official = _row(res, impl, batch), _row(res, "official-clean", batch)
                mem_ours = ((ours or {}).get("memory") or {}).get("peak_delta_mib")
                mem_official = ((official or {}).get("memory") or {}).get("peak_delta_mib")
                if mem_ours is not None and mem_official is not None:
                    runtime = "OpenVINO backend" if impl == BEST_CPU else "PyTorch"
                    add(f"peak memory of the forward ≤ official, {runtime}, batch {batch}",
                        f"{mem_ours:.0f} vs {mem_official:.0f} MiB", mem_ours <= mem_official)
                    if impl == BEST_CPU:  # it also holds a compiled copy of the network beside PyTorch's
                        total, total_official = ours["memory"]["peak_total_mib"], official["memory"]["peak_total_mib"]
                        add(f"whole process's peak ≤ official, {runtime}, batch {batch}",
                            f"{total:.0f} vs {total_official:.0f} MiB", total <= total_official)
        onnx = _row(res, "onnxruntime-clean", 1)
        if onnx:
            add("ONNX export matches PyTorch within 1e-3", f"{onnx['max_abs_diff_vs_official']:.1e}; onnxruntime "
                f"{onnx['median_s']:.2f} s vs PyTorch {fp32['median_s'] if fp32 else float('nan'):.2f} s per face",
                onnx["max_abs_diff_vs_official"] <= TARGETS["onnx"])
    if pipeline:
        for key, name in (("ours", "PyTorch"), ("ours-openvino", "OpenVINO backend")):
            ours = _row(pipeline["results"], key)
            if ours:
                speedup = 1 / ours["ratio_vs_official"]
                add(f"whole pipeline ({pipeline.get('mask')} masks), {name}: ≥ 3× the official speed",
                    f"{speedup:.2f}×", speedup >= TARGETS["pipeline"])
        check = pipeline.get("restored_crop_checks", {}).get("ours")
        if check:
            add("restored crops equal to the official within 1/255", f"max {check['max']:.0f} level",
                check["max"] <= TARGETS["crops"])
    if detect:
        ours = _row(detect["results"], "ours-resnet50")
        if ours:
            add("detection of a 4000×3000 photo, default detector, under 1 s", f"{ours['median_s']:.2f} s",
                ours["median_s"] < TARGETS["detect_s"])
    return ["| target | measured | |", "|---|---|---|", *rows]


def build(device: str) -> str:
    forward, pipeline, detect = (_load(name, device) for name in ("forward", "pipeline", "detect"))
    parts = [START, "", "<!-- generated by bench/report.py from bench/results/*.json; do not edit by hand -->", ""]
    parts += targets_section(forward, pipeline, detect) + [""]
    for data, section in ((forward, forward_section), (pipeline, pipeline_section), (detect, detect_section)):
        if data:
            parts += section(data) + [""]
    parts.append(END)
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="which results: bench/results/*_<device>.json")
    parser.add_argument("--readme", type=Path, help="write the tables into this file between the markers")
    args = parser.parse_args(argv)
    text = build(args.device)
    if args.readme is None:
        print(text)
        return 0
    readme = args.readme.read_text()
    if START not in readme or END not in readme:
        print(f"{args.readme} has no {START} … {END} markers", file=sys.stderr)
        return 1
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    args.readme.write_text(pattern.sub(lambda _: text, readme, count=1))
    print(f"performance tables written to {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
