"""Output flicker on video: how much the restored face region changes from frame to frame with the
face tracks' alignment smoothing at strength 0, the default (0.5) and 1, and with the restored crops
steadied in time (``gfp_core.face.steady``) on top; and whether the pasted face follows a sudden move.

A model that does not restore (seeded random weights) answers every input with much the same
pattern, so only its alignment makes it flicker; this needs one that restores and so answers each
frame's noise: the tiny training recipe's model (``python -m train --config tiny_cpu``, a 64-px
GFPGANv1Clean; about 6 minutes on 2 idle cores), trained once on the faces of
``tests/test_train_run.py`` and kept in ``--cache``. Beside it run the cheap stand-in restorer of
``tests/test_video_flicker.py`` (a fixed Gaussian filter of the aligned crop) and, to show the
difference, the tests' 64-px model with seeded random weights.

The clips come from ``tests/clips.py`` (noise σ 4 levels and JPEG quality 70 per frame, 30 fps). The
engine's crop is the model's size, 64 px; by default the face is at 0.4 of the photo's size, so the
crop is about 1:1 with the frame (``--scale 1``: the face is 2.6 times larger than its crop):

* *moving*: one loop (pan, zoom, rotation) over 60 / scale frames: as fast, in face sizes per
  second, as ``bench_video_jitter.py``'s;
* *still*: 60 frames;
* *jump*: still, then 40 × scale px (0.4 face widths, as there) to the right at frame 30 of 60.

Each run is ``Engine(model, detector=EmbeddedRetinaFace(), smoothing=s, fps=30)`` run stage by
stage as ``Engine.run`` strings them (detection once per clip for all strengths; for one clip per
kind the whole ``Engine.run`` is checked to give the same frames); the steadied rows steady the
restored crops per track and paste them with ``Engine.paste_crops``: the masks and the paste of the
engine. Measured (``tests/flicker.py``) inside the face's true box, found on the clean photo and
carried into every frame by the clip's transform (so it does not move with the crop), less 15 % on
each side (where the pasted face covers every pixel):

* *flicker*: mean absolute difference (8-bit levels) between a frame and the frame before moved onto
  it by the face's true motion (*jump*: the 3 frames either side of the jump left out); *out / in*:
  the output's over the input's; *vs smoothing 0*: each frame alone (strength 0, not steadied) over
  this row, mean and worst over the seeds. On a moving face the motion compensation resamples an
  aliased frame: the noiseless clip's own flicker (``clean_flicker`` in the JSON) is a floor that
  no restoration goes under;
* *corr*: mean correlation of the face region with the noiseless clip's;
* *jump*: *follow*, frames from the jump until the output's face is within 1 px of its true place
  (the horizontal shift that best correlates with the noiseless face) and stays there; *early*,
  frames before the jump already farther off; *worst offset*; *ghost*, the largest drop near the jump
  of the correlation with the noiseless face below its median elsewhere, in units of that median's
  distance to 1, inside the face region and *around* it (the box grown by 25 %: the crop's edges and
  the background it carries). A control row blends at the default strength without its gates (on
  motion and on change).

    python bench/bench_video_flicker.py                   # trains once (cache), then about 3 minutes
    python bench/bench_video_flicker.py --scale 1 --json bench/results/video_flicker_large_face_cpu.json
    python bench/bench_video_flicker.py --seeds 1 --no-stand-in --json ''
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
for folder in (REPO_ROOT, REPO_ROOT / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from gfp_core.face.steady import DEFAULT_STRENGTH as DEFAULT_STEADY  # noqa: E402
from gfp_core.face.steady import CHANGE_LEVELS, MAX_WEIGHT, STILL  # noqa: E402
from gfp_core.face.track import DEFAULT_STRENGTH as DEFAULT_SMOOTHING  # noqa: E402

CLIPS = ("moving", "still", "jump")
#: the face's size in the clip, relative to the photo: the 64-px crop is about 1:1 with the frame there
FACE_SCALE = 0.4
#: the face region is the true face box less this share of its size on each side: where the pasted
#: face covers every pixel in every frame (the box mask feathers the crop's edge, near the chin)
REGION_SHRINK = 0.15
#: ... and for ghosts also the box grown by this share on each side: the pasted crop's edges and the
#: background it carries, where a blend of crops from before a move would leave a trail
AROUND_GROW = 0.25
STRENGTHS = (0.0, DEFAULT_SMOOTHING, 1.0)
STEADY = (0.5, DEFAULT_STEADY)
DEFAULT_CACHE = REPO_ROOT / "bench" / "results" / "flicker_model"
#: the held-out alignment of every face (as tests/test_train_run.py): validation only
HELD_OUT_SUFFIX = "_j5"


def tiny_model(cache: Path, log=print) -> tuple[Path, dict]:
    """The tiny recipe's exported model (``model_ema.safetensors``), trained into ``cache`` unless it
    is already there, and its last validation record (held-out PSNR against the degraded input)."""
    weights = cache / "run" / "model_ema.safetensors"
    metrics = cache / "run" / "metrics.jsonl"
    if not weights.is_file():
        import insightface  # its sample photos: used from the package, never copied into the repository
        import skimage.data

        from gfp_core.image import save_rgb
        from train.prepare import prepare_faces

        photos, train, val = cache / "photos", cache / "train", cache / "val"
        for folder in (photos, train, val):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        save_rgb(photos / "astronaut.png", skimage.data.astronaut())
        images = Path(insightface.__file__).parent / "data" / "images"
        shutil.copy(images / "t1.jpg", photos / "t1.jpg")
        shutil.copy(images / "Tom_Hanks_54745.png", photos / "hanks.png")
        for crop in prepare_faces([photos], cache / "all", size=64, jitter=5):
            shutil.copy(crop, (val if crop.stem.endswith(HELD_OUT_SUFFIX) else train) / crop.name)
        for folder in (photos, cache / "all"):  # the copied photos (and duplicate crops) are not kept
            shutil.rmtree(folder)
        env = dict(os.environ, HF_HUB_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "train", "--config", "tiny_cpu", f"data.train={train}", f"data.val={val}",
               f"output={cache / 'run'}", "log.progress=false"]
        log(f"training the tiny recipe into {cache / 'run'} (about 6 minutes on 2 idle cores) ...")
        started = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=REPO_ROOT, check=True)
        log(f"trained in {(time.perf_counter() - started) / 60:.1f} min")
    scores = [json.loads(line)["validation"] for line in metrics.read_text().splitlines() if "validation" in line]
    return weights, scores[-1] if scores else {}


def random_model():
    """The tests' 64-px model with seeded random weights (tests/conftest.py ``tiny_checkpoint``): it
    does not restore, and shows why the measure needs a model that does."""
    import torch

    from gfp_core.archs import GFPGANv1Clean

    torch.manual_seed(3)
    net = GFPGANv1Clean(out_size=64, narrow=0.25)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("stylegan_decoder.") and name.endswith(".weight") and p.numel() == 1:
                p.fill_(0.25)  # the tests' noise strength (a fresh model's are 0)
    return net.eval()


def clip_frames(kind: str, scale: float) -> int:
    """Frames of a clip: a moving face loops once in 60 frames at scale 1 (bench_video_jitter.py),
    in more at a smaller scale, so that it moves as fast in face sizes per second."""
    return round(60 / scale) if kind == "moving" else 60


def jump_px(scale: float) -> float:
    """The jump: 40 px at scale 1 (0.4 face widths, as bench_video_jitter.py)."""
    return 40.0 * scale


def run_clip(kind: str, seed: int, models: dict, detector, strengths, steadies, check_engine: bool,
             scale: float = FACE_SCALE) -> dict:
    from clips import alignment_jitter, make_clip
    from flicker import clean_frames, correlation, face_regions, flicker, follow
    from gfp_core.engine import Engine
    from gfp_core.face.detection import detect_faces
    from gfp_core.face.steady import steady_tracks

    clip = make_clip(kind, clip_frames(kind, scale), scale=scale, jump_px=jump_px(scale), seed=seed)
    reference = detect_faces(detector, clip.photo)[0]
    regions = face_regions(clip, reference.box, REGION_SHRINK)
    around = face_regions(clip, reference.box, -AROUND_GROW)
    truth = clip.truth(reference.landmarks)
    clean = clean_frames(clip)
    entry = {"clip": kind, "seed": seed, "frames": len(clip), "input_flicker": flicker(clip.frames, clip, regions),
             "clean_flicker": flicker(clean, clip, regions), "rows": []}
    if clip.jump_at is not None:
        entry["input_follow"] = asdict(follow(clip.frames, clip, regions))
        entry["input_follow_around"] = asdict(follow(clip.frames, clip, around))
    found = Engine(None, detector=detector).detect(list(clip.frames))
    sizes = [f.shape[:2] for f in clip.frames]
    for name, model in models.items():
        for s in strengths:
            engine = Engine(model, detector=detector, smoothing=s, fps=clip.fps, coverage=True)
            faces = engine.choose_tracked(engine.track(found), sizes)
            if faces.counts != [1] * len(clip):
                raise SystemExit(f"{kind} clip, seed {seed}: expected one face per frame, got {faces.counts}")
            started = time.perf_counter()
            result = engine.run(clip.frames, faces=faces)
            seconds = (time.perf_counter() - started) / len(clip)
            if check_engine and s > 0:  # the stages here are the engine's own run, frame for frame
                whole = engine.run(clip.frames)
                assert np.array_equal(whole.images, result.images), "the staged run differs from Engine.run"
            landmarks = np.stack([f.landmarks for f in faces.flat_faces])
            # a control on the jump: the default blend without its gates, which must show as a ghost
            control = [(DEFAULT_STEADY, False)] if clip.jump_at is not None and s == DEFAULT_SMOOTHING else []
            for steady, gated in [(0.0, True), *((x, True) for x in steadies), *control]:
                if steady == 0:
                    out = result.images
                else:
                    crops = steady_tracks(result.restored, result.affines, landmarks, result.frame_index,
                                          result.numbers, steady, still=STILL if gated else np.inf,
                                          change_levels=CHANGE_LEVELS if gated else np.inf)
                    out = engine.paste_crops(clip.frames, faces, crops).images
                row = {"model": name, "smoothing": s, "steady": steady, "gated": gated,
                       "flicker": flicker(out, clip, regions),
                       "coverage_min": float(min(c[r].min() for c, r in zip(result.coverage, regions))),
                       "corr": float(correlation(out, clean, regions).mean()),
                       "jitter_px": alignment_jitter(result.affines, truth), "ms_per_frame": 1000 * seconds}
                if clip.jump_at is not None:
                    row["follow"] = asdict(follow(out, clip, regions))
                    row["follow_around"] = asdict(follow(out, clip, around))
                entry["rows"].append(row)
    return entry


def summary(runs: list[dict]) -> list[dict]:
    """Means over the seeds; *vs_input* and *vs_0* per seed, then averaged (*_min*: the worst seed)."""
    table = []

    def key(r: dict) -> tuple:
        return r["model"], r["smoothing"], r["steady"], r["gated"]

    for kind in CLIPS:
        mine = [run for run in runs if run["clip"] == kind]
        if not mine:
            continue
        keys = sorted({key(r) for r in mine[0]["rows"]}, key=lambda k: (k[0] != "tiny recipe", k[1], not k[3], k[2]))
        for model, s, steady, gated in keys:
            rows, vs_input, vs_0 = [], [], []
            for run in mine:
                row = next(r for r in run["rows"] if key(r) == (model, s, steady, gated))
                base = next(r for r in run["rows"] if key(r) == (model, 0.0, 0.0, True))
                rows.append(row)
                vs_input.append(row["flicker"] / run["input_flicker"])
                vs_0.append(base["flicker"] / row["flicker"])
            entry = {"clip": kind, "model": model, "smoothing": s, "steady": steady, "gated": gated,
                     "input_flicker": float(np.mean([r["input_flicker"] for r in mine])),
                     "clean_flicker": float(np.mean([r["clean_flicker"] for r in mine])),
                     "flicker": float(np.mean([r["flicker"] for r in rows])),
                     "vs_input": float(np.mean(vs_input)), "vs_0": float(np.mean(vs_0)), "vs_0_min": float(min(vs_0)),
                     "corr": float(np.mean([r["corr"] for r in rows])),
                     "jitter_px": float(np.mean([r["jitter_px"] for r in rows]))}
            if kind == "jump":
                entry.update(follow=max(r["follow"]["frames"] for r in rows),
                             early=max(r["follow"]["early"] for r in rows),
                             worst_px=max(r["follow"]["worst_px"] for r in rows),
                             ghost=max(r["follow"]["ghost"] for r in rows),
                             ghost_around=max(r["follow_around"]["ghost"] for r in rows))
            table.append(entry)
    return table


def markdown(table: list[dict]) -> str:
    lines = ["| clip | model | smoothing | steady | flicker in → out (levels) | out / in | vs smoothing 0 "
             "(mean / worst) | corr | follow (early) | worst offset (px) | ghost (face / around) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in table:
        follow = "– | – | –"
        if "follow" in e:
            follow = (f"{e['follow']} ({e['early']}) | {e['worst_px']:.1f} | "
                      f"{e['ghost']:.2f} / {e['ghost_around']:.2f}")
        steady = f"{e['steady']:g}" + ("" if e["gated"] else " (no gates)")
        lines.append(f"| {e['clip']} | {e['model']} | {e['smoothing']:g} | {steady} | "
                     f"{e['input_flicker']:.2f} → {e['flicker']:.2f} | {e['vs_input']:.2f} | "
                     f"{e['vs_0']:.1f}× / {e['vs_0_min']:.1f}× | {e['corr']:.4f} | {follow} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where the tiny recipe's model is trained once and kept")
    parser.add_argument("--seeds", type=int, default=2, help="clips of each kind (different noise)")
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    parser.add_argument("--scale", type=float, default=FACE_SCALE,
                        help="the face's size relative to the photo (0.4: the 64-px crop is 1:1 with the frame; "
                             "1: the face is 2.6 times larger than its crop)")
    parser.add_argument("--strengths", type=float, nargs="+", default=list(STRENGTHS), help="smoothing strengths")
    parser.add_argument("--steady", type=float, nargs="+", default=list(STEADY),
                        help="steadying strengths besides 0, on top of each smoothing strength")
    parser.add_argument("--no-stand-in", action="store_true",
                        help="only the trained model (not the Gaussian stand-in and the random weights)")
    parser.add_argument("--json", default=str(REPO_ROOT / "bench" / "results" / "video_flicker_cpu.json"),
                        help="where to write the results ('' for nowhere)")
    args = parser.parse_args(argv)

    import torch

    from flicker import blur_restorer
    from gfp_core.face.detection import EmbeddedRetinaFace
    from gfp_core.weights import load_model_with_info

    weights, validation = tiny_model(args.cache)
    model, info = load_model_with_info(weights, device="cpu")
    if model.out_size != 64 or info.synthetic:
        raise SystemExit(f"{weights} is not the tiny recipe's trained 64-px model")
    models = {"tiny recipe": model}
    if not args.no_stand_in:
        models["Gaussian stand-in"] = blur_restorer(model.out_size)
        models["random weights"] = random_model()
    strengths = [0.0] + sorted(set(args.strengths) - {0.0})
    detector = EmbeddedRetinaFace()
    started = time.perf_counter()
    runs = [run_clip(kind, seed, models, detector, strengths, sorted(set(args.steady) - {0.0}),
                     check_engine=seed == 0, scale=args.scale)
            for kind in args.clips for seed in range(args.seeds)]
    table = summary(runs)
    print(markdown(table))
    nan = float("nan")
    print(f"\n{time.perf_counter() - started:.0f} s; tiny recipe held-out PSNR {validation.get('psnr', nan):.2f} dB "
          f"vs its inputs {validation.get('psnr_input', nan):.2f} dB")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "environment": {"python": platform.python_version(), "torch": torch.__version__,
                            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
            "options": {"seeds": args.seeds, "clips": {k: clip_frames(k, args.scale) for k in args.clips},
                        "face_scale": args.scale, "jump_px": jump_px(args.scale), "region_shrink": REGION_SHRINK,
                        "around_grow": AROUND_GROW, "strengths": strengths, "steady": args.steady},
            "model": {"weights": str(weights.relative_to(REPO_ROOT)) if weights.is_relative_to(REPO_ROOT)
                      else str(weights), "validation": validation},
            "steady": {"max_weight": MAX_WEIGHT, "still": STILL, "change_levels": CHANGE_LEVELS},
            "summary": table, "runs": runs}, indent=1))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
