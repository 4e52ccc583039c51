"""``python -m gfp_core restore`` and its output files: what a batch does when writing goes wrong,
when inputs repeat or would overwrite each other, and when a result would be too large."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def run_restore(*args: str, tmp_path: Path, file_size_limit: int | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GFP_HOME": str(tmp_path / "home"), "GFP_MODEL_DIRS": "",
           "HF_HUB_CACHE": str(tmp_path / "hf")}

    def limit_file_size() -> None:  # what a full disk does to a write: it fails part way
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([sys.executable, "-m", "gfp_core", "restore", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, preexec_fn=limit_file_size if file_size_limit else None)


def _face(path: Path, seed: int = 0, size: int = 64) -> None:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(low).resize((size, size), Image.BICUBIC).save(path)


def _noise(path: Path, size: int, seed: int = 0) -> None:
    """A photo without a face that PNG cannot compress: ``size``² × 3 bytes on disk."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def _partials(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".partial" in p.name]


def test_a_file_where_a_face_folder_should_be_fails_those_images_only(tmp_path, tiny_checkpoint):
    for name, seed in (("a.png", 0), ("b.png", 1)):
        _face(tmp_path / "in" / name, seed)
    out = tmp_path / "out"
    out.mkdir()
    (out / "cropped_faces").write_text("not a folder")
    result = run_restore(str(tmp_path / "in"), "--aligned", "-m", str(tiny_checkpoint), "-o", str(out),
                         tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for stem in ("a", "b"):
        assert Image.open(out / "restored_imgs" / f"{stem}.png").size == (64, 64)  # the product is kept
        assert (out / "restored_faces" / f"{stem}_00.png").exists() and (out / "cmp" / f"{stem}_00.png").exists()
        assert (f"error: {tmp_path / 'in' / stem}.png: cannot write {out / 'cropped_faces' / stem}_00.png: "
                f"{out / 'cropped_faces'} is a file, not a folder; {out / 'restored_imgs' / stem}.png was written"
                in result.stderr)
    assert "0 images restored" in result.stderr and "2 failed" in result.stderr
    assert (out / "cropped_faces").read_text() == "not a folder"


def test_an_output_folder_that_cannot_be_made_stops_before_any_work(tmp_path, tiny_checkpoint):
    _face(tmp_path / "a.png")
    blocker = tmp_path / "somefile"
    blocker.write_text("a file, not a folder")
    result = run_restore(str(tmp_path / "a.png"), "--aligned", "-m", str(tiny_checkpoint), "-o",
                         str(blocker / "out"), tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: cannot use the output folder {blocker / 'out'}: {blocker} is a file, "
                                     f"not a folder; choose another with -o")  # nothing loaded, nothing said


def test_a_failed_write_leaves_no_half_file_and_the_batch_goes_on(tmp_path, tiny_checkpoint):
    """With the disk 'full' for files over 100 kB, the large result fails (named, with the reason),
    the one before it stays as it was, no partial file is left, and the next image is still restored."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    _noise(inputs / "big.png", 300)  # ~270 kB result
    _noise(inputs / "small.png", 40)
    args = (str(inputs), "--detector", "embedded", "-s", "1", "-m", str(tiny_checkpoint), "-o", str(out))
    first = run_restore(*args, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    before = (out / "restored_imgs" / "big.png").read_bytes()
    _noise(inputs / "big.png", 300, seed=1)
    _noise(inputs / "small.png", 40, seed=1)

    full = run_restore(*args, "--overwrite", tmp_path=tmp_path, file_size_limit=100_000)
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    assert (f"error: {inputs / 'big.png'}: cannot write {out / 'restored_imgs' / 'big.png'}: File too large"
            in full.stderr)
    assert "1 images restored" in full.stderr and "1 failed" in full.stderr
    assert (out / "restored_imgs" / "big.png").read_bytes() == before  # not truncated, not half new
    assert np.array_equal(np.asarray(Image.open(out / "restored_imgs" / "small.png")),
                          np.asarray(Image.open(inputs / "small.png")))  # the image after it: new result
    assert _partials(out) == []


def test_output_name_clashes_are_refused_before_any_work(tmp_path, tiny_checkpoint):
    _face(tmp_path / "a" / "face.png", 0)
    _face(tmp_path / "b" / "face.png", 1)
    _face(tmp_path / "c" / "x.png", 2)
    Image.open(tmp_path / "c" / "x.png").save(tmp_path / "c" / "x.jpg")
    out = tmp_path / "out"
    result = run_restore(str(tmp_path / "a" / "face.png"), str(tmp_path / "b" / "face.png"), str(tmp_path / "c"),
                         "--aligned", "--ext", "png", "-m", str(tiny_checkpoint), "-o", str(out), tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: these inputs would write the same output files; restore them in "
                                    "separate runs with different --output folders, or rename them:")
    assert f"  {tmp_path / 'a' / 'face.png'}, {tmp_path / 'b' / 'face.png'} -> face.*" in result.stderr
    assert f"  {tmp_path / 'c' / 'x.jpg'}, {tmp_path / 'c' / 'x.png'} -> x.*" in result.stderr
    assert not out.exists()


def test_the_same_file_listed_again_is_restored_once(tmp_path, tiny_checkpoint):
    folder = tmp_path / "in"
    _face(folder / "face.png")
    (tmp_path / "link.png").symlink_to(folder / "face.png")
    out = tmp_path / "out"
    result = run_restore(str(folder / "face.png"), str(folder), str(tmp_path / "link.png"), str(folder / "*.png"),
                         "--aligned", "-m", str(tiny_checkpoint), "-o", str(out), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ("3 inputs named a file already listed and were restored once "
            f"(e.g. {folder / 'face.png'} is {folder / 'face.png'})") in result.stderr
    assert "1 images restored (1 faces, 0 without a face), 0 skipped" in result.stderr
    assert sorted(p.name for p in (out / "restored_imgs").iterdir()) == ["face.png"]


def test_a_symlink_loop_under_a_recursive_glob(tmp_path, tiny_checkpoint):
    """glob.glob follows such links: 41 copies of the path with one loop, without end with two."""
    folder = tmp_path / "in"
    _face(folder / "sub" / "face.png")
    (folder / "loop").symlink_to(".")
    (folder / "sub" / "up").symlink_to("..")
    out = tmp_path / "out"
    result = run_restore(str(folder / "**" / "*.png"), "--aligned", "-m", str(tiny_checkpoint), "-o", str(out),
                         tmp_path=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 images restored (1 faces, 0 without a face), 0 skipped" in result.stderr
    assert "already listed" not in result.stderr  # not even listed twice


def test_results_over_the_output_limit_are_refused_per_image(tmp_path, tiny_checkpoint):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _noise(inputs / "large.png", 100)
    _noise(inputs / "small.png", 50)
    result = run_restore(str(inputs), "--detector", "embedded", "-s", "2", "--max-output-pixels", "30000",
                         "-m", str(tiny_checkpoint), "-o", str(out), tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    assert (f"error: {inputs / 'large.png'}: the result would be 200x200, 0.04 megapixels, over the output limit "
            "of 0.03; use an upscale of at most 1.73, or raise --max-output-pixels if you have the memory") in result.stderr
    assert "1 images restored" in result.stderr and "1 failed" in result.stderr
    assert Image.open(out / "restored_imgs" / "small.png").size == (100, 100)
    assert not (out / "restored_imgs" / "large.png").exists()


@pytest.mark.parametrize("value", ["-5", "0"])
def test_detection_threshold_out_of_range_is_refused_before_loading(tmp_path, value):
    _face(tmp_path / "a.png")
    result = run_restore(str(tmp_path / "a.png"), "--threshold", value, "-m", str(tmp_path / "missing.pth"),
                         "-o", str(tmp_path / "out"), tmp_path=tmp_path)
    assert result.returncode == 2  # not 3: the missing weights were never looked for
    assert result.stderr.startswith(f"error: --threshold must be above 0 and at most 1, got {value}")
    assert not (tmp_path / "out").exists()
