"""Evaluate restorers on a test set (:mod:`train.testset`): the paper's measures per model, one table.

    python -m train evaluate TESTSET --model v1.4 --model runs/me/model_ema.safetensors [--output DIR]

Every model (registry name or weights file: GFPGAN, RestoreFormer, CodeFormer) restores every
degraded face of the set; each measure of :mod:`train.measures` that can run here compares the
result with the ground truth (FID compares the restored set with the ground-truth set), and the time
per face is kept. ``with_inputs`` adds a row for the degraded inputs as they are (the paper's "Input"). Written to ``--output``:
``results.json`` (everything, with the per-face values), ``results.csv`` and ``results.md`` (the
table), and with ``--sheet-every N`` a contact sheet per N faces (input | each model | ground truth).
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gfp_core.errors import GFPError

from .measures import MEASURES, Measure, SetMeasure, build_measures
from .testset import write_text_atomic


@dataclass
class ModelResult:
    model: str
    faces: int
    seconds_per_face: float
    means: dict[str, float]                       # measure → mean over the faces it could measure (FID: the set's)
    per_face: dict[str, list[float]] = field(default_factory=dict)
    unmeasured: dict[str, int] = field(default_factory=dict)  # measure → faces it could not measure


def read_testset(folder: str | Path) -> tuple[Path, dict[str, Any]]:
    root = Path(folder)
    path = root / "manifest.json"
    if not path.is_file():
        raise GFPError(f"{root} has no manifest.json; build a test set with python -m train testset")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GFPError(f"{path} is damaged ({exc}); build the test set again with python -m train testset") from None
    if not isinstance(manifest, dict) or not manifest.get("pairs"):
        raise GFPError(f"{path} lists no faces")
    return root, manifest


def _restore_all(model: torch.nn.Module, inputs: np.ndarray, fidelity: float, progress) -> tuple[np.ndarray, float]:
    from gfp_core.restore import restore_aligned

    out = np.empty_like(inputs)
    seconds = []
    for i in range(len(inputs)):
        start = time.perf_counter()
        out[i] = restore_aligned(model, inputs[i:i + 1], fidelity=fidelity, batch_size=1)[0]
        seconds.append(time.perf_counter() - start)
        progress.update(1)
    return out, float(np.median(seconds))  # the median: the first face also pays for warming up


def evaluate(testset: str | Path, models: Sequence[str], *, measures: Sequence[str] = MEASURES,
             device: str | None = None, backend: str | None = None, fidelity: float = 1.0,
             allow_unverified: bool | None = None, identity_weights: str = "arcface_resnet18",
             lpips_weights: str = "alexnet_imagenet", niqe_params: str = "niqe_pris_params",
             fid_weights: str = "inception_fid", fid_stats: str | None = None, with_inputs: bool = False,
             output: str | Path | None = None, sheet_every: int = 0) -> dict[str, Any]:
    """Run ``models`` over ``testset``; returns (and, with ``output``, writes) the results."""
    from tqdm import tqdm

    from gfp_core.device import resolve_device
    from gfp_core.image import load_rgb
    from gfp_core.weights import load_model_with_info

    root, manifest = read_testset(testset)
    wild = manifest.get("kind") == "wild"
    target = resolve_device(device)
    names = [p["name"] for p in manifest["pairs"]]
    inputs = np.stack([load_rgb(root / p["lq"]) for p in manifest["pairs"]])
    ready, missing = build_measures(tuple(measures), device=target, identity_weights=identity_weights,
                                    lpips_weights=lpips_weights, niqe_params=niqe_params, fid_weights=fid_weights,
                                    fid_stats=fid_stats, ground_truth=not wild, face_size=min(inputs.shape[1:3]))
    truths = None if wild else np.stack([load_rgb(root / p["gt"]) for p in manifest["pairs"]])

    results: list[ModelResult] = []
    outputs: dict[str, np.ndarray] = {}
    if with_inputs:
        results.append(_measure(INPUT_ROW, inputs, truths, ready, 0.0))
    for ref in models:
        loaded = load_model_with_info(ref, device=target, allow_unverified=allow_unverified, backend=backend)
        size = getattr(loaded.module, "out_size", 512)
        if inputs.shape[1] != size:
            raise GFPError(f"{ref} restores {size}×{size} faces and the test set's are {inputs.shape[1]}×"
                           f"{inputs.shape[2]}; build the set with --size {size}")
        with tqdm(total=len(inputs), desc=f"restoring with {Path(ref).name}", unit="face") as progress:
            restored, seconds = _restore_all(loaded.module, inputs, fidelity, progress)
        outputs[ref] = restored
        results.append(_measure(ref, restored, truths, ready, seconds))
        del loaded  # before the next model loads

    report = {"testset": str(root), "kind": manifest.get("kind"), "faces": len(names), "names": names,
              "measures": [{"name": m.name, "label": m.label, "higher_is_better": m.higher_is_better}
                           for m in ready],
              "missing": missing, "fidelity": fidelity,
              "results": [r.__dict__ for r in results]}
    if output is not None:
        write_report(report, Path(output))
        if sheet_every:
            write_contact_sheets(Path(output), inputs, outputs, truths, sheet_every)
    return report


#: the row of the degraded inputs as they are
INPUT_ROW = "input (degraded)"


def _measure(ref: str, restored: np.ndarray, truths: np.ndarray | None, ready: list[Measure | SetMeasure],
             seconds: float) -> ModelResult:
    per_face = {m.name: [m.compute(restored[i], None if truths is None else truths[i])
                         for i in range(len(restored))] for m in ready if isinstance(m, Measure)}
    means, unmeasured = {}, {}
    for m in ready:
        if isinstance(m, SetMeasure):
            means[m.name] = m.compute(restored, truths)
            continue
        values = per_face[m.name]
        known = [v for v in values if not math.isnan(v)]
        means[m.name] = float(np.mean(known)) if known else float("nan")
        if len(known) < len(values):
            unmeasured[m.name] = len(values) - len(known)
    return ModelResult(ref, len(restored), seconds, means, per_face, unmeasured)


#: below this many faces FID's covariance is poorly estimated (2048 features)
FID_FEW = 2048


def _short_names(models: list[str]) -> dict[str, str]:
    """Weights files by their file name in the table, unless two share one (results.json keeps paths)."""
    names = {m: Path(m).name for m in models}
    unique = len(set(names.values())) == len(names)
    return names if unique else {m: m for m in models}


def _reason(name: str, why: str) -> str:
    """One list item: the measure's name not repeated, later lines indented under it."""
    why = why.removeprefix(f"{name}: ")
    return "\n  ".join(line.strip() for line in why.splitlines())


def markdown_table(report: dict[str, Any]) -> str:
    measures = report["measures"]
    header = "| model | " + " | ".join(f"{m['label']} {'↑' if m['higher_is_better'] else '↓'}" for m in measures)
    lines = [header + " | s / face |", "|---|" + "---:|" * (len(measures) + 1)]
    shown = _short_names([r["model"] for r in report["results"]])
    for r in report["results"]:
        cells = [f"{r['means'][m['name']]:.4g}" for m in measures]
        seconds = "–" if r["model"] == INPUT_ROW else f"{r['seconds_per_face']:.2f}"
        lines.append(f"| {shown[r['model']]} | " + " | ".join(cells) + f" | {seconds} |")
    notes = [f"- {name}: not measured: {_reason(name, why)}" for name, why in report["missing"].items()]
    if any(m["name"] == "fid" for m in measures) and report["faces"] < FID_FEW:
        notes.append(f"- FID over {report['faces']} faces is biased upwards (the paper's sets have thousands): "
                     "compare models on the same set only")
    for r in report["results"]:
        notes += [f"- {shown[r['model']]}: {name} found no face in {n} of {r['faces']} faces (left out of its mean)"
                  for name, n in r["unmeasured"].items()]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def write_report(report: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "results.json", json.dumps(report, indent=1))
    write_text_atomic(folder / "results.md", markdown_table(report))
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["model", *[m["name"] for m in report["measures"]], "seconds_per_face"])
    for r in report["results"]:
        writer.writerow([r["model"], *[r["means"][m["name"]] for m in report["measures"]], r["seconds_per_face"]])
    write_text_atomic(folder / "results.csv", table.getvalue())


def write_contact_sheets(folder: Path, inputs: np.ndarray, outputs: dict[str, np.ndarray],
                         truths: np.ndarray | None, every: int) -> list[Path]:
    """``sheet_<k>.jpg``: one row per face (input | each model | ground truth), ``every`` rows a sheet."""
    from gfp_core.image import save_rgb

    written = []
    for k, start in enumerate(range(0, len(inputs), every)):
        rows = []
        for i in range(start, min(start + every, len(inputs))):
            row = [inputs[i], *(out[i] for out in outputs.values())]
            if truths is not None:
                row.append(truths[i])
            rows.append(np.concatenate(row, axis=1))
        written.append(save_rgb(folder / f"sheet_{k:03d}.jpg", np.concatenate(rows, axis=0)))
    return written
