"""A test set from a user's own faces, degraded as in the paper, reproducible from its seed.

    python -m train testset HQ_PHOTOS OUT [--seed 0] [--aligned] [--wild]

High-quality photos are aligned to the FFHQ template (or taken as aligned crops with ``--aligned``)
and each crop is degraded with the paper's model (§4.1, CelebA-Test was built the same way):

    x = JPEG_q( (y ⊛ k_σ)↓_r + n_δ ),  σ ∈ [0.2, 10], r ∈ [1, 8], δ ∈ [0, 15], q ∈ [60, 100]

then brought back to the crop's size. Each face draws from its own generator, seeded by the set's
seed and the face's file name, so the same folder and seed give the same pairs whoever builds them,
in whatever order the files are listed. ``OUT/manifest.json`` records the seed, the degradation's
ranges and each pair's drawn parameters. ``--wild`` takes photos that are already degraded and
have no ground truth: the faces are aligned into ``OUT/lq`` only (for the no-reference measures).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gfp_core.errors import GFPError

from .degradations import gaussian_kernel, jpeg

#: the paper's degradation ranges (§4.1): blur σ, down-sampling factor r, noise δ (8-bit levels), JPEG quality q
PAPER_DEGRADATION: dict[str, tuple[float, float]] = {
    "blur_sigma": (0.2, 10.0), "downsample": (1.0, 8.0), "noise": (0.0, 15.0), "jpeg_quality": (60, 100)}
BLUR_KERNEL_SIZE = 41  # as in training: wide enough for σ = 10
MANIFEST_VERSION = 1


def face_seed(seed: int, name: str) -> np.random.Generator:
    """The generator of one face: the set's seed and the face's file name, nothing else."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def degrade_for_test(gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """``gt`` float32 RGB in [0, 1] → (the degraded 8-bit image as float32 in [0, 1], the drawn parameters)."""
    ranges = PAPER_DEGRADATION
    params = {"blur_sigma": float(rng.uniform(*ranges["blur_sigma"])),
              "downsample": float(rng.uniform(*ranges["downsample"])),
              "noise": float(rng.uniform(*ranges["noise"])),
              "jpeg_quality": int(rng.integers(ranges["jpeg_quality"][0], ranges["jpeg_quality"][1] + 1))}
    h, w = gt.shape[:2]
    sigma = params["blur_sigma"]
    lq = cv2.filter2D(gt, -1, gaussian_kernel(BLUR_KERNEL_SIZE, sigma, sigma, 0.0).astype(np.float32))
    r = params["downsample"]
    lq = cv2.resize(lq, (max(1, round(w / r)), max(1, round(h / r))), interpolation=cv2.INTER_LINEAR)
    lq = np.clip(lq + rng.standard_normal(lq.shape).astype(np.float32) * (params["noise"] / 255.0), 0, 1)
    lq = jpeg(lq, params["jpeg_quality"])
    lq = cv2.resize(lq, (w, h), interpolation=cv2.INTER_LINEAR)
    lq = np.clip(np.round(lq * 255.0), 0, 255) / 255.0  # what a saved 8-bit picture holds
    return lq.astype(np.float32), {k: round(v, 6) if isinstance(v, float) else v for k, v in params.items()}


def _aligned_crops(sources: Iterable[str | Path], folder: Path, size: int, aligned: bool, detector: str) -> list[Path]:
    """The faces of ``sources`` as ``size``² crops in ``folder`` (aligned here unless ``aligned``)."""
    from gfp_core.image import load_rgb, save_rgb

    from .data import IMAGE_SUFFIXES, list_images
    from .prepare import prepare_faces

    # folders, list files (one path a line) and single photos
    paths = [p for source in sources
             for p in ([Path(source)] if Path(source).suffix.lower() in IMAGE_SUFFIXES else list_images(source))]
    if not aligned:
        return sorted(prepare_faces(paths, folder, size, detector))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        img = load_rgb(path)
        if img.shape[:2] != (size, size):
            raise GFPError(f"{path} is {img.shape[1]}×{img.shape[0]}, not an aligned {size}×{size} face crop; "
                           "leave out --aligned to detect and align its faces, or pass --size")
        target = folder / f"{path.stem}.png"
        save_rgb(target, img)
        written.append(target)
    return sorted(written)


def build_testset(sources: Iterable[str | Path], output: str | Path, *, seed: int = 0, size: int = 512,
                  aligned: bool = False, wild: bool = False, detector: str = "embedded") -> dict[str, Any]:
    """Write ``OUT/gt/*.png`` and ``OUT/lq/*.png`` (``lq`` only when ``wild``) and ``OUT/manifest.json``;
    return the manifest. ``OUT`` must be new or empty: a test set is never mixed with another."""
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise GFPError(f"{out} is not empty; a test set is written into a new folder")
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _write_pairs(sources, out, seed, size, aligned, wild, detector)
    except BaseException:  # a failed build leaves the folder as it found it, so the command can be re-run
        shutil.rmtree(out, ignore_errors=True)
        if existed:
            out.mkdir()
        raise


def _write_pairs(sources: Iterable[str | Path], out: Path, seed: int, size: int, aligned: bool, wild: bool,
                 detector: str) -> dict[str, Any]:
    from gfp_core.image import load_rgb, save_rgb

    pairs = []
    (out / "lq").mkdir()
    if wild:
        for crop in _aligned_crops(sources, out / "lq", size, aligned, detector):
            pairs.append({"name": crop.name, "lq": f"lq/{crop.name}", "gt": None})
    else:
        for crop in _aligned_crops(sources, out / "gt", size, aligned, detector):
            gt = load_rgb(crop).astype(np.float32) / 255.0
            lq, params = degrade_for_test(gt, face_seed(seed, crop.name))
            save_rgb(out / "lq" / crop.name, np.round(lq * 255).astype(np.uint8))
            pairs.append({"name": crop.name, "lq": f"lq/{crop.name}", "gt": f"gt/{crop.name}", "params": params})
    if not pairs:
        raise GFPError("no face was found in the given photos; nothing to build a test set from")
    manifest = {"version": MANIFEST_VERSION, "kind": "wild" if wild else "synthetic", "seed": None if wild else seed,
                "size": size, "degradation": None if wild else {k: list(v) for k, v in PAPER_DEGRADATION.items()},
                "pairs": pairs}
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1))  # last: every pair is written
    return manifest


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file renamed over it: never a half-written file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, newline="")  # as given: a CSV keeps its own line ends
    os.replace(partial, path)
