"""Does training help? The tiny recipe's model against its starting point, by the evaluation's measures.

Every step is the command a user runs (README, "Training"); this script only chains them:

1. the real face photos that ship in packages: scikit-image's astronaut, insightface's t1.jpg (six
   faces) and Tom Hanks portrait — eight people;
2. ``python -m train prepare photos -o faces --size 64 --jitter 5``: the training crops;
3. ``python -m train testset photos testset --size 64``: the same faces aligned once more and
   degraded as in the paper's CelebA-Test (not as in training), seeded;
4. ``python -m train --config tiny_cpu train.iterations=0``: the starting point (the recipe's seeded
   initial weights), then the recipe itself (300 iterations; its iteration-100 checkpoint exported too);
5. ``python -m train evaluate testset -m start -m iter100 -m final --with-inputs``.

    python bench/evaluate_tiny.py [--iterations 300] [--work DIR] [--niqe-params FILE]

Writes ``bench/results/evaluate_tiny/`` (results.json / .csv / .md; the contact sheet stays in the
work folder) and prints the table. On this machine no LPIPS, FID or ArcFace weights can be downloaded: those columns are left out
with the reason, unless their files are in a model folder (``GFP_MODEL_DIRS``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "evaluate_tiny"


def gather_photos(folder: Path) -> Path:
    import insightface
    import skimage.data

    from gfp_core.image import save_rgb

    folder.mkdir(parents=True)
    save_rgb(folder / "astronaut.png", skimage.data.astronaut())
    images = Path(insightface.__file__).parent / "data" / "images"
    shutil.copy(images / "t1.jpg", folder / "t1.jpg")  # copyrighted: used from the package, never committed
    shutil.copy(images / "Tom_Hanks_54745.png", folder / "hanks.png")
    return folder


def train_cli(*args: str) -> None:
    """``python -m train ARGS`` from the checkout, as the README runs it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "train", *args], cwd=ROOT, env=env, check=True)
    print(f"  ({time.perf_counter() - started:.0f} s: python -m train {' '.join(args[:2])} …)", flush=True)


def basicsr_niqe_params() -> str | None:
    """basicsr ships NIQE's pristine model; use it when basicsr is installed (offline)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("basicsr")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "metrics" / "niqe_pris_params.npz"
    return str(path) if path.is_file() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--work", type=Path, help="keep the photos, crops, runs and test set here")
    parser.add_argument("--niqe-params", default=None, help="NIQE's pristine model (default: basicsr's, if installed)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="evaluate-tiny-"))
    photos = gather_photos(work / "photos")
    train_cli("prepare", str(photos), "-o", str(work / "faces"), "--size", "64", "--jitter", "5")
    train_cli("testset", str(photos), str(work / "testset"), "--size", "64", "--seed", "0")
    recipe = ["--config", "tiny_cpu", f"data.train={work / 'faces'}", "log.progress=false"]
    train_cli(*recipe, "train.iterations=0", f"output={work / 'start'}")
    train_cli(*recipe, f"train.iterations={args.iterations}", "log.checkpoint_every=100",
              "log.keep_checkpoints=10", f"output={work / 'run'}")
    named = work / "models"  # the table names weights files by their file name
    named.mkdir()
    models = [shutil.copy(work / "start" / "model_ema.safetensors", named / "start.safetensors")]
    for checkpoint in sorted((work / "run" / "checkpoints").glob("iter_*.pt")):
        iteration = int(checkpoint.stem.split("_")[1])
        if iteration < args.iterations:
            models.append(named / f"iteration{iteration}.safetensors")
            train_cli("export", str(checkpoint), str(models[-1]))
    models.append(shutil.copy(work / "run" / "model_ema.safetensors", named / f"iteration{args.iterations}.safetensors"))
    niqe = args.niqe_params or basicsr_niqe_params()
    evaluate = ["evaluate", str(work / "testset"), "--with-inputs", "--backend", "torch", "-o", str(work / "eval"),
                "--sheet-every", "8", *(["--niqe-params", niqe] if niqe else [])]
    for path in models:
        evaluate += ["-m", str(path)]
    train_cli(*evaluate)
    # the tables are kept; the contact sheet stays in the work folder (t1.jpg's faces are not ours to publish)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "results.csv", "results.md"):
        shutil.copy(work / "eval" / name, RESULTS / name)
    print(f"work folder (contact sheet in eval/): {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
