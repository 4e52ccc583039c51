"""Alignment jitter on video: how much the aligned 512×512 crop shakes from frame to frame, with the
face tracks' temporal smoothing (``gfp_core.face.track``) at several strengths.

The clips come from ``tests/clips.py``: the astronaut's face (``skimage.data.astronaut()``) placed on
256×256 frames by a known similarity, each frame with its own Gaussian noise (σ 4 levels) and JPEG
compression (quality 70), at 30 fps:

* *moving*: one slow loop per clip (pan ±24/±12 px, zoom ±12 %, rotation ±6°);
* *fast*: the same loop every 24 frames (0.8 s; at its quickest the face moves 6 px a frame);
* *still*: the face does not move, only the noise and the compression change;
* *jump*: still, then 40 px to the right at the middle frame (a face box is about 95 px wide).

Each frame is detected on its own (the real detector, the embedded RetinaFace MobileNet-0.25 by
default), the faces linked into tracks (``link_tracks``) and smoothed (``smooth_tracks``); every
frame's alignment comes from ``gfp_core.face.align.estimate_alignment`` of its landmarks, as the
engine computes it. Measured, in pixels of the 512 crop:

* *jitter*: the RMS second difference over frames of where the face's true points (the photo's
  detected landmarks carried by the clip's known transform) land in the crop: the crop's shake,
  not counting smooth drift (*jump* clips: frames more than 3 away from the jump);
* *error*: RMS distance of those crop points from where the unsmoothed alignment puts them on
  average (the detector's own steady offset; *jump* clips: before and after the jump apart); it
  grows if smoothing lags behind the face;
* *jump* clips: *lag*, frames from the jump until the smoothed crop stays within 2 px of the
  unsmoothed one; *lead*, frames before the jump that already moved ≥ 2 px (the backward pass looks
  ahead); *settle*, frames from the jump until it stays within 2 px of the face's true place
  (the detector's steady offset after the jump removed); *peak*, the largest distance from the
  unsmoothed crop.

    python bench/bench_video_jitter.py                      # table + results/video_jitter_cpu.json
    python bench/bench_video_jitter.py --seeds 1 --json ''  # quick look, nothing written
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for folder in (REPO_ROOT, REPO_ROOT / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import numpy as np  # noqa: E402

from clips import alignment_jitter, crop_positions, make_clip  # noqa: E402
from gfp_core.face.align import estimate_alignment  # noqa: E402
from gfp_core.face.detection import detect_faces, load_detector  # noqa: E402
from gfp_core.face.track import (DEFAULT_STRENGTH, FaceTracker, link_tracks, look_ahead_frames,  # noqa: E402
                                 smooth_tracks)

CLIPS = ("moving", "fast", "still", "jump")
NEAR = 2.0  # crop pixels: "within" for lag, lead and settle


def alignments(faces) -> np.ndarray:
    return np.stack([estimate_alignment(f.landmarks) for f in faces])


def frames_until(distance: np.ndarray, start: int) -> int:
    """Frames from ``start`` until ``distance`` stays below NEAR to the end."""
    far = np.flatnonzero(distance[start:] >= NEAR)
    return 0 if not len(far) else int(far[-1]) + 1


def measure(kind: str, seed: int, frames: int, detector, strengths: list[float]) -> dict:
    clip = make_clip(kind, frames, seed=seed)
    reference = detect_faces(detector, clip.photo)
    if len(reference) != 1:
        raise SystemExit(f"expected one face in the photo, found {len(reference)}")
    truth = clip.truth(reference[0].landmarks)
    start = time.perf_counter()
    found = [detect_faces(detector, f) for f in clip.frames]
    detect_s = (time.perf_counter() - start) / len(clip)
    start = time.perf_counter()
    tracks = link_tracks(found)
    link_s = (time.perf_counter() - start) / len(clip)
    if len(tracks) != 1 or len(tracks.tracks[0]) != len(clip):
        raise SystemExit(f"{kind} clip, seed {seed}: expected one track over all {len(clip)} frames, got "
                         f"{[(t.first, t.last) for t in tracks]}")
    raw = alignments(tracks.tracks[0].faces)
    raw_pos = crop_positions(raw, truth)
    keep = np.arange(len(clip))
    if clip.jump_at is not None:  # the jump itself is real motion, not shake
        keep = keep[np.abs(keep - clip.jump_at) > 3]
    # the detector's steady offset (per side of the jump: it differs a little with the face's place)
    steady = np.broadcast_to(raw_pos.mean(0), raw_pos.shape)
    if clip.jump_at is not None:
        k = clip.jump_at
        steady = np.concatenate([np.broadcast_to(raw_pos[:k].mean(0), raw_pos[:k].shape),
                                 np.broadcast_to(raw_pos[k:].mean(0), raw_pos[k:].shape)])
    rows = []
    for strength in strengths:
        start = time.perf_counter()
        smooth = smooth_tracks(tracks, strength, clip.fps)
        smooth_s = (time.perf_counter() - start) / len(clip)
        # the streamed result must be the same, bit for bit
        tracker = FaceTracker(strength, clip.fps)
        streamed = [e for fs in found for e in tracker.push(fs)] + tracker.finish()
        assert all(np.array_equal(e[1][0].face.landmarks, f.landmarks)
                   for e, f in zip(streamed, smooth.tracks[0].faces)), "streaming differs from the whole clip"
        affines = alignments(smooth.tracks[0].faces)
        pos = crop_positions(affines, truth)
        runs = [np.arange(keep[0], keep[-1] + 1)] if clip.jump_at is None else \
            [np.arange(0, clip.jump_at - 3), np.arange(clip.jump_at + 4, len(clip))]
        second = np.concatenate([(pos[r][2:] - 2 * pos[r][1:-1] + pos[r][:-2]) for r in runs if len(r) > 2])
        row = {"strength": strength, "look_ahead": look_ahead_frames(strength, clip.fps),
               "jitter_px": float(np.sqrt(np.mean(np.sum(second ** 2, axis=-1)))),
               "error_px": float(np.sqrt(np.mean(np.sum((pos - steady) ** 2, axis=-1)))),
               "smooth_ms_per_frame": 1000 * smooth_s}
        if clip.jump_at is None:
            row["jitter_all_px"] = alignment_jitter(affines, truth)
        else:
            k = clip.jump_at
            off_raw = np.linalg.norm(pos - raw_pos, axis=-1).mean(-1)
            steady_after = np.median(raw_pos[k + 3:], axis=0)
            off_truth = np.linalg.norm(pos - steady_after, axis=-1).mean(-1)
            row.update(lag=frames_until(off_raw, k), settle=frames_until(off_truth, k),
                       lead=int(sum(off_raw[:k] >= NEAR)), peak_px=float(off_raw.max()))
        rows.append(row)
    return {"clip": kind, "seed": seed, "frames": len(clip), "fps": clip.fps,
            "detect_ms_per_frame": 1000 * detect_s, "link_ms_per_frame": 1000 * link_s, "results": rows}


def summary(runs: list[dict], strengths: list[float]) -> list[dict]:
    out = []
    for kind in CLIPS:
        mine = [r for r in runs if r["clip"] == kind]
        if not mine:
            continue
        base = [r["results"][0]["jitter_px"] for r in mine]  # strength 0 comes first
        for i, strength in enumerate(strengths):
            rows = [r["results"][i] for r in mine]
            entry = {"clip": kind, "strength": strength, "look_ahead": rows[0]["look_ahead"],
                     "jitter_px": float(np.mean([x["jitter_px"] for x in rows])),
                     "jitter_ratio": float(np.mean([b / x["jitter_px"] for b, x in zip(base, rows)])),
                     "jitter_ratio_min": float(min(b / x["jitter_px"] for b, x in zip(base, rows))),
                     "error_px": float(np.mean([x["error_px"] for x in rows]))}
            if kind == "jump":
                entry.update({k: max(x[k] for x in rows) for k in ("lag", "lead", "settle", "peak_px")})
            out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (30 fps)")
    parser.add_argument("--seeds", type=int, default=3, help="clips of each kind (different noise)")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.25, DEFAULT_STRENGTH, 0.75, 1.0],
                        help="smoothing strengths besides 0")
    parser.add_argument("--detector", default="embedded", help="a detector name for load_detector")
    parser.add_argument("--json", default=str(REPO_ROOT / "bench" / "results" / "video_jitter_cpu.json"),
                        help="where to write the results ('' for nowhere)")
    args = parser.parse_args(argv)

    strengths = [0.0] + sorted(set(args.strengths) - {0.0})
    detector = load_detector(args.detector)
    runs = [measure(kind, seed, args.frames, detector, strengths) for kind in CLIPS for seed in range(args.seeds)]
    table = summary(runs, strengths)

    print(f"{args.frames} frames per clip, {args.seeds} seeds, detector {detector.name}; pixels of the 512 crop; "
          f"detection {np.mean([r['detect_ms_per_frame'] for r in runs]):.1f} ms/frame, linking "
          f"{1000 * np.mean([r['link_ms_per_frame'] for r in runs]):.0f} µs/frame, smoothing "
          f"{1000 * np.mean([x['smooth_ms_per_frame'] for r in runs for x in r['results'][1:]]):.0f} µs/frame")
    print("| clip | strength | look-ahead | jitter (px) | vs strength 0 (mean / worst) | error (px) "
          "| lag | lead | settle | peak (px) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in table:
        jump = (f"{e['lag']} | {e['lead']} | {e['settle']} | {e['peak_px']:.1f}" if e["clip"] == "jump"
                else "– | – | – | –")
        default = " (default)" if e["strength"] == DEFAULT_STRENGTH else ""
        print(f"| {e['clip']} | {e['strength']:g}{default} | {e['look_ahead']} | {e['jitter_px']:.2f} | "
              f"{e['jitter_ratio']:.1f}× / {e['jitter_ratio_min']:.1f}× | {e['error_px']:.2f} | {jump} |")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        result = {"device": "cpu", "cpu": platform.processor() or platform.machine(), "detector": detector.name,
                  "frames": args.frames, "seeds": args.seeds, "default_strength": DEFAULT_STRENGTH,
                  "summary": table, "runs": runs}
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
