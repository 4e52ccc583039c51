"""Restoring a video file: frames per second against the official per-frame loop, and peak memory
against the clip's length.

**Speed.** A 1280×720 H.264 clip (crf 12, with an AAC track) of one face: the astronaut of
``skimage.data.astronaut()`` moving on the frame (``tests/clips.py``, ``--face-scale`` 2.5: a face
box of about 240 px), ``--frames`` frames at 30 fps. Both pipelines load the same seeded random
v1.4-format checkpoint (``official_gfpgan('clean', seed, 0.1)``, as ``bench_pipeline.py``), restore
at upscale 2 (the official CLI's default) with square paste masks, and write a 2560×1440 H.264
file (crf 18, preset medium, yuv420p):

* **ours**: what ``python -m gfp_core restore clip.mp4`` runs, ``restore_video(FaceRestorer(weights,
  detector='embedded', upscale=2).engine, src, dst)``: pass 1 detects every frame and tracks and
  smooths the face (strength 0.5, the default), pass 2 restores 8 frames at a time and encodes, the
  segments are joined and the audio copied;
* **official**: frames decoded with PyAV, the body of ``GFPGANer.enhance`` per frame
  (``bench_pipeline.official_enhance_with_landmarks``: facexlib's ``FaceRestoreHelper``, weight 0.5,
  no background upsampler), encoded with PyAV, no audio. Its RetinaFace weights cannot be
  downloaded here, so each frame's landmarks come from our embedded detector, called inside the
  timed loop: both pipelines pay the same detector.

Each pipeline runs once untimed on the first few frames, then ``--repeats`` times over the whole
clip, alternating. Reported: seconds, frames per second, ours over official, and the largest share
of the CPUs other processes took during a run (``bench_forward``'s method).

**Memory.** For each of ``--lengths`` (30, 120, 480 frames of 256×256, a small random-weight
model, 64-px faces), a fresh process loads the model and detector, restores a few frames untimed,
hands freed memory back, resets the kernel's peak-RSS mark, runs ``restore_video`` on the clip and
reports its peak resident memory (``VmHWM``) and how far that is above its resident memory just
before. Bounded memory means the peak does not grow with the clip.

    python bench/bench_video.py                         # both parts, table + results/video_cpu.json
    python bench/bench_video.py --frames 12 --lengths 30 120 --json ''    # a quick look, nothing written
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import bench_forward as bf  # noqa: E402  (also puts the repository root and tests/ on sys.path)

REPO_ROOT = bf.REPO_ROOT
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "video_cpu.json"
FPS = 30
UPSCALE = 2
SIZE = (720, 1280)
MEMORY_SIZE = (256, 256)


# --------------------------------------------------------------------------------------------
# speed: ours against the official loop


def official_loop(restorer, detector, src: Path, dst: Path, frames: int | None = None) -> int:
    """Decode ``src`` with PyAV, ``GFPGANer.enhance``'s body per frame (landmarks from ``detector``),
    encode with PyAV: what a script around the official package does. Returns the frames written."""
    import av
    import numpy as np

    from bench_pipeline import official_enhance_with_landmarks
    from gfp_core.face.detection import detect_faces

    count = 0
    with av.open(str(src)) as box, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "medium"})
        stream.pix_fmt = "yuv420p"
        for frame in box.decode(box.streams.video[0]):
            if frames is not None and count >= frames:
                break
            bgr = frame.to_ndarray(format="bgr24")
            faces = detect_faces(detector, np.ascontiguousarray(bgr[:, :, ::-1]))
            _crops, _restored, image = official_enhance_with_landmarks(restorer, bgr, faces)
            if count == 0:
                stream.height, stream.width = image.shape[:2]
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            picture.pts = count
            out.mux(stream.encode(picture))
            count += 1
        out.mux(stream.encode())
    return count


def run_speed(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    import torch

    from bench_pipeline import official_restorer, save_weights
    from clip_files import write_clip
    from clips import make_clip
    from gfp_core.face.detection import load_detector
    from gfp_core.pipeline import FaceRestorer
    from gfp_core.video import probe_video, restore_video

    clip = make_clip("moving", frames=args.frames, size=SIZE, scale=args.face_scale, fps=FPS, seed=args.seed)
    src = write_clip(folder / "clip720.mp4", clip.frames, fps=FPS)
    warm_src = write_clip(folder / "warm720.mp4", clip.frames[:3], fps=FPS)
    del clip
    weights = save_weights(folder, args.seed, args.noise_strength)
    ours = FaceRestorer(weights, detector="embedded", upscale=UPSCALE, mask="box", device="cpu",
                        allow_unverified=True)
    official = official_restorer(weights, torch.device("cpu"))
    detector = load_detector("embedded")
    outcomes = []

    def run_ours(source: Path, name: str) -> int:
        outcome = restore_video(ours.engine, source, folder / name)
        outcomes.append(outcome)
        return outcome.frames

    runs = {"ours": lambda source, name: run_ours(source, name),
            "official": lambda source, name: official_loop(official, detector, source, folder / name)}
    print(f"warm-up, then {args.repeats} timed run(s) of {args.frames} frames each …", flush=True)
    for key, run in runs.items():
        run(warm_src, f"warm_{key}.mp4")
    timings: dict[str, list[bf.Timing]] = {key: [] for key in runs}
    keys = list(runs)
    for round_index in range(args.repeats):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            written = []
            timing = bf.time_once(lambda _, key=key: written.append(runs[key](src, f"{key}.mp4")), None,
                                  torch.device("cpu"))
            if written[0] != args.frames:
                raise SystemExit(f"{key} wrote {written[0]} frames of {args.frames}")
            timings[key].append(timing)
            print(f"  {key}: {timing.seconds:.1f} s ({args.frames / timing.seconds:.3f} frames/s)", flush=True)
    rows = []
    best = {key: min(t.seconds for t in timings[key]) for key in keys}
    for key in keys:
        seconds = [t.seconds for t in timings[key]]
        rows.append({"impl": key, "seconds": seconds, "min_s": best[key], "frames_per_s": args.frames / best[key],
                     "s_per_frame": best[key] / args.frames, "vs_official": best["official"] / best[key],
                     "other_cpu": [t.other_cpu for t in timings[key]]})
    ours_out, official_out = probe_video(folder / "ours.mp4"), probe_video(folder / "official.mp4")
    return {"clip": {"size": [SIZE[1], SIZE[0]], "frames": args.frames, "fps": FPS, "face_scale": args.face_scale,
                     "upscale": UPSCALE, "mask": "box"},
            "outputs": {key: {"size": [info.width, info.height], "frames": info.frame_count, "audio": info.has_audio}
                        for key, info in (("ours", ours_out), ("official", official_out))},
            "ours_faces_restored": outcomes[-1].faces, "results": rows}


# --------------------------------------------------------------------------------------------
# memory: peak resident memory against the clip's length


def memory_child(src: Path, dst: Path, weights: Path) -> None:
    """Run in a fresh process: print the peak resident memory of one ``restore_video``."""
    import torch

    from gfp_core.engine import Engine
    from gfp_core.face.detection import load_detector
    from gfp_core.video import probe_video, restore_video
    from gfp_core.weights import load_model

    torch.set_num_threads(1)  # the tiny model is all overhead: threads only wait for each other
    engine = Engine(load_model(weights, device="cpu"), detector=load_detector("embedded"), smoothing=0.5, steady=1.0)
    warm = dst.with_name("warm" + dst.suffix)
    restore_video(engine, src, warm, segment_frames=10)  # first calls allocate for good (models, codecs)
    bf._release_free_memory()
    baseline = bf._status_kib("VmRSS")
    exact = bf._reset_peak_rss()
    start = time.perf_counter()
    outcome = restore_video(engine, src, dst)
    seconds = time.perf_counter() - start
    peak = bf._status_kib("VmHWM") if exact else bf._maxrss_kib()
    print(json.dumps({"frames": outcome.frames, "largest_chunk": outcome.largest_chunk, "seconds": seconds,
                      "baseline_mib": baseline / 1024, "peak_mib": peak / 1024,
                      "peak_above_baseline_mib": (peak - baseline) / 1024, "peak_reset": exact,
                      "output_frames": probe_video(dst).frame_count}))


def run_memory(args: argparse.Namespace, folder: Path) -> list[dict[str, object]]:
    import torch

    from clip_files import write_clip
    from clips import make_clip
    from gfp_core.archs import GFPGANv1Clean

    torch.manual_seed(args.seed)
    weights = folder / "tiny.pth"
    torch.save({"params_ema": GFPGANv1Clean(out_size=64, narrow=0.25).state_dict()}, weights)
    rows = []
    for length in args.lengths:
        clip = make_clip("moving", frames=length, size=MEMORY_SIZE, scale=0.6, fps=FPS, seed=args.seed)
        src = write_clip(folder / f"clip{length}.mp4", clip.frames, fps=FPS)
        del clip
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-child", str(src),
                               str(folder / f"out{length}.mp4"), str(weights)],
                              capture_output=True, text=True, cwd=REPO_ROOT, timeout=3600)
        if done.returncode != 0:
            raise SystemExit(f"the memory run of {length} frames failed:\n{done.stderr}")
        row = {"length": length, **json.loads(done.stdout.strip().splitlines()[-1])}
        rows.append(row)
        print(f"  {length} frames: peak {row['peak_mib']:.0f} MiB, {row['peak_above_baseline_mib']:.0f} MiB above "
              f"the loaded models, {row['seconds']:.1f} s", flush=True)
    return rows


# --------------------------------------------------------------------------------------------
# reporting


def speed_table(speed: dict[str, object]) -> str:
    lines = ["| pipeline | best s | frames/s | s/frame | vs official | other CPU load |",
             "|---|---:|---:|---:|---:|---:|"]
    labels = {"ours": "ours: `restore_video` (the CLI)", "official": "official: PyAV + `GFPGANer.enhance` per frame"}
    for row in speed["results"]:
        load = bf.max_other_cpu(row["other_cpu"])
        lines.append(f"| {labels[row['impl']]} | {row['min_s']:.1f} | {row['frames_per_s']:.3f} "
                     f"| {row['s_per_frame']:.2f} | {row['vs_official']:.2f}× | "
                     f"{f'{load:.0%}' if load is not None else '–'} |")
    return "\n".join(lines)


def memory_table(rows: list[dict[str, object]]) -> str:
    lines = ["| clip length (frames) | peak RSS (MiB) | above the loaded models (MiB) | seconds |",
             "|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['length']} | {row['peak_mib']:.0f} | {row['peak_above_baseline_mib']:.0f} "
                     f"| {row['seconds']:.1f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24, help="frames of the 720p clip (default 24)")
    parser.add_argument("--face-scale", type=float, default=2.5, help="the face's size on the 720p frames (2.5: "
                                                                      "a box of about 240 px)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each pipeline (default 1)")
    parser.add_argument("--lengths", type=int, nargs="*", default=[30, 120, 480],
                        help="clip lengths of the memory part (default 30 120 480; none: skip it)")
    parser.add_argument("--skip-speed", action="store_true", help="only the memory part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-strength", type=float, default=0.1,
                        help="StyleGAN2 noise strengths of the weights (0 in a fresh model)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=str(DEFAULT_JSON), help=f"results file (default {DEFAULT_JSON}; '' none)")
    parser.add_argument("--memory-child", nargs=3, metavar=("SRC", "DST", "WEIGHTS"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(*map(Path, args.memory_child))
        return
    device = bf.setup_torch(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gfp_bench_video_") as tmp:
        speed = None if args.skip_speed else run_speed(args, Path(tmp))
        memory = run_memory(args, Path(tmp)) if args.lengths else []
    env = bf.environment(argparse.Namespace(batches=None, warmup=1, repeats=args.repeats, seed=args.seed,
                                            noise_strength=args.noise_strength, spandrel_call=None), device)
    for key in ("batches", "spandrel_call", "spandrel", "face_size"):
        env.pop(key, None)
    import av

    env["av"] = av.__version__
    wall = time.perf_counter() - started
    print()
    if speed is not None:
        print(f"Video restoration, {SIZE[1]}×{SIZE[0]} clip of one face, {args.frames} frames at {FPS} fps, upscale "
              f"{UPSCALE}, box masks, on {env['cpu']} ({env['torch_threads']} torch threads); same seeded v1.4-format "
              f"weights; detection (our embedded detector) included in both; best of {args.repeats} after a "
              f"warm-up:")
        print()
        print(speed_table(speed))
        print()
    if memory:
        print(f"Peak resident memory of restore_video against clip length ({MEMORY_SIZE[1]}×{MEMORY_SIZE[0]}, "
              f"a 64-px random-weight model, fresh process each):")
        print()
        print(memory_table(memory))
        print()
    print(f"wall time {wall:.0f} s")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"environment": env, "wall_s": wall, "speed": speed, "memory": memory},
                                   indent=2) + "\n")
        print(f"results written to {path}")


if __name__ == "__main__":
    main()
