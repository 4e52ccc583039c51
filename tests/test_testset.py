"""``python -m train testset``: a reproducible test set from a user's own photos (paper degradation)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gfp_core.errors import GFPError

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128  # small crops keep the tests quick; the degradation does not depend on the size


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A list file naming real photos: scikit-image's astronaut (one face) and insightface's t1.jpg
    (six faces; read in place from the installed wheel, never copied)."""
    from skimage.data import astronaut

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(astronaut()).save(folder / "astronaut.png")
    spec = importlib.util.find_spec("insightface")
    if spec is None or spec.origin is None:
        pytest.skip("insightface is not installed (its data/images/t1.jpg is the multi-face test photo)")
    t1 = Path(spec.origin).parent / "data" / "images" / "t1.jpg"
    listing = folder / "photos.txt"
    listing.write_text(f"astronaut.png\n{t1}\n")
    return listing


def build(source, out, **options):
    from train.testset import build_testset

    return build_testset([source], out, size=SIZE, **options)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_the_same_photos_and_seed_give_the_same_pairs_in_any_order(photos, tmp_path):
    first = build(photos, tmp_path / "a")
    again = build(photos, tmp_path / "b")
    assert len(first["pairs"]) >= 5  # the astronaut and most of the poker table
    assert first["pairs"] == again["pairs"]
    for pair in first["pairs"]:
        assert (tmp_path / "a" / pair["lq"]).read_bytes() == (tmp_path / "b" / pair["lq"]).read_bytes()

    # one photo alone, listed somewhere else: its faces are degraded exactly as in the whole set
    alone = tmp_path / "alone.txt"
    alone.write_text(photos.read_text().splitlines()[1] + "\n")
    subset = build(alone, tmp_path / "c")
    whole = {p["name"]: p for p in first["pairs"]}
    for pair in subset["pairs"]:
        assert pair == whole[pair["name"]]
        np.testing.assert_array_equal(pixels(tmp_path / "c" / pair["lq"]), pixels(tmp_path / "a" / pair["lq"]))

    other_seed = build(photos, tmp_path / "d", seed=1)
    assert [p["params"] for p in other_seed["pairs"]] != [p["params"] for p in first["pairs"]]


def test_pairs_are_degraded_within_the_papers_ranges(photos, tmp_path):
    from train.testset import PAPER_DEGRADATION

    manifest = build(photos, tmp_path / "set")
    saved = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert saved == manifest and saved["kind"] == "synthetic" and saved["seed"] == 0
    assert saved["degradation"] == {k: list(v) for k, v in PAPER_DEGRADATION.items()}
    for pair in manifest["pairs"]:
        for key, (low, high) in PAPER_DEGRADATION.items():
            assert low <= pair["params"][key] <= high, (pair, key)
        gt, lq = pixels(tmp_path / "set" / pair["gt"]), pixels(tmp_path / "set" / pair["lq"])
        assert gt.shape == lq.shape == (SIZE, SIZE, 3)
        assert np.abs(gt.astype(int) - lq).mean() > 1  # visibly degraded
    # a heavier blur leaves less detail: the sharpest input belongs to the smallest σ·r
    sharpness = {p["name"]: np.abs(np.diff(pixels(tmp_path / "set" / p["lq"]).astype(int), axis=1)).mean()
                 for p in manifest["pairs"]}
    mildest = min(manifest["pairs"], key=lambda p: p["params"]["blur_sigma"] * p["params"]["downsample"])
    harshest = max(manifest["pairs"], key=lambda p: p["params"]["blur_sigma"] * p["params"]["downsample"])
    assert sharpness[mildest["name"]] > sharpness[harshest["name"]]


def test_wild_photos_are_aligned_without_ground_truth(photos, tmp_path):
    manifest = build(photos, tmp_path / "wild", wild=True)
    assert manifest["kind"] == "wild" and manifest["seed"] is None and manifest["degradation"] is None
    assert all(p["gt"] is None and (tmp_path / "wild" / p["lq"]).is_file() for p in manifest["pairs"])
    assert not (tmp_path / "wild" / "gt").exists()


def test_bad_requests_are_refused_clearly(photos, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(GFPError, match="not empty"):
        build(photos, used)
    assert (used / "keep.txt").read_text() == "mine"

    crops = tmp_path / "crops"
    crops.mkdir()
    Image.fromarray(np.zeros((100, 80, 3), np.uint8)).save(crops / "odd.png")
    with pytest.raises(GFPError, match="not an aligned 128×128 face crop"):
        build(crops, tmp_path / "from_crops", aligned=True)
    assert not (tmp_path / "from_crops").exists()  # nothing half-built stands in the way of a re-run

    blank = tmp_path / "blank"
    blank.mkdir()
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank / "wall.png")
    with pytest.raises(GFPError, match="no face was found"):
        build(blank, tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_command_line(photos, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "train", "testset", str(photos), str(tmp_path / "cli"),
                           "--size", str(SIZE), "--seed", "7"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert f"{len(manifest['pairs'])} pairs (seed 7) written to" in done.stdout
    again = subprocess.run([sys.executable, "-m", "train", "testset", str(photos), str(tmp_path / "cli")],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert again.returncode == 2 and "not empty" in again.stderr
