"""Detection benchmark: one 4000×3000 photo, ours (``detect_faces``) vs the official pipeline's detector call.

* **Photo.** insightface's sample ``t1.jpg`` (six faces; read in place from the installed wheel,
  never copied), cropped to 4:3 and enlarged to 4000×3000 with bicubic interpolation.
* **Ours.** ``detect_faces(load_detector(name), rgb)`` with its defaults: the photo is detected on
  a copy whose longest side is 1280 (``--detect-max-side``), area-downscaled. Timed for the default
  ``retinaface_resnet50`` and for the ``embedded`` MobileNet-0.25 (real weights, OpenCV DNN).
* **Official.** What ``GFPGANer.enhance`` runs: ``FaceRestoreHelper.get_face_landmarks_5`` calls
  facexlib's ``RetinaFace('resnet50').detect_faces(img_bgr, 0.97)`` on the full-size photo.
* **Weights.** No detector weights can be downloaded here, so both ResNet-50 detectors load the
  same seeded random weights (``gfp_core.synthetic``), with the face/background classifier set to
  "background" everywhere: a random classifier passes thousands of garbage boxes to NMS, which
  would time NMS rather than detection. A real photo gives a handful of candidates; so does this.
  The network, pre- and post-processing run in full.

Timing as in ``bench_forward.py``: warm-up, then the implementations round-robin; medians.

    python bench/bench_detect.py --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import bench_forward as bf  # noqa: E402  (puts the repository root and tests/ on sys.path)
import bench_pipeline as bp  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

DEFAULT_JSON = bf.REPO_ROOT / "bench" / "results" / "detect_cpu.json"
PHOTO_SIZE = (4000, 3000)  # width, height
TARGET_S = 1.0


def make_photo() -> np.ndarray:
    t1 = np.asarray(Image.open(bp.t1_path()).convert("RGB"))
    h, w = t1.shape[:2]
    crop_w = h * 4 // 3
    x0 = (w - crop_w) // 2
    return np.ascontiguousarray(cv2.resize(t1[:, x0:x0 + crop_w], PHOTO_SIZE, interpolation=cv2.INTER_CUBIC))


def background_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Random RetinaFace weights whose classifier says "background" for every anchor (see the docstring)."""
    state = dict(state)
    for key in [k for k in state if k.startswith("ClassHead.")]:
        if key.endswith("weight"):
            state[key] = torch.zeros_like(state[key])
        else:  # per anchor: (background, face) logits
            state[key] = torch.tensor([10.0, -10.0] * (state[key].numel() // 2))
    return state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    device = bf.setup_torch(args)

    from facexlib.detection.retinaface import RetinaFace

    from gfp_core.face.detection import detect_faces, load_detector
    from gfp_core.synthetic import random_state_dict
    from gfp_core.weights.checkpoint import write_state_dict
    from gfp_core.weights.registry import get_spec
    from gfp_core.weights.resolve import add_model_dir

    photo = make_photo()
    photo_bgr = np.ascontiguousarray(photo[:, :, ::-1])
    state = background_only(random_state_dict("retinaface_resnet50", seed=args.seed))
    with tempfile.TemporaryDirectory(prefix="gfp_bench_det_") as tmp:
        write_state_dict(state, Path(tmp) / get_spec("retinaface_resnet50").filename)
        add_model_dir(tmp, kinds=["detection"])
        ours_resnet = load_detector("retinaface_resnet50", device=device, allow_unverified=True)
    embedded = load_detector("embedded")
    official = RetinaFace(network_name="resnet50", half=False, device=device)
    official.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    official.eval()

    runs = {
        "ours-resnet50": lambda: detect_faces(ours_resnet, photo),
        "ours-embedded": lambda: detect_faces(embedded, photo),
        "official-resnet50": lambda: official.detect_faces(photo_bgr, 0.97),
    }
    labels = {"ours-resnet50": "ours, retinaface_resnet50 (default), longest side 1280",
              "ours-embedded": "ours, embedded MobileNet-0.25 (OpenCV DNN), longest side 1280",
              "official-resnet50": "official facexlib RetinaFace ResNet-50, full size (as GFPGANer)"}
    found = {}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for key, run in runs.items():
                found[key] = len(run())
        timings: dict[str, list[bf.Timing]] = {key: [] for key in runs}
        keys = list(runs)
        for round_idx in range(args.repeats):
            shift = round_idx % len(keys)
            for key in keys[shift:] + keys[:shift]:
                timings[key].append(bf.time_once(lambda _, run=runs[key]: run(), None, device))
    medians = {key: statistics.median(t.seconds for t in ts) for key, ts in timings.items()}
    print(f"\nFace detection on a {PHOTO_SIZE[0]}×{PHOTO_SIZE[1]} photo ({device}, {torch.get_num_threads()} threads); "
          f"median of {args.repeats}; ResNet-50 weights: seeded random, classifier set to background.\n")
    print("| detector | median s | min s | speed-up vs official | under 1 s | other CPU load |")
    print("|---|---:|---:|---:|:---:|---:|")
    results = []
    for key in keys:
        seconds = [t.seconds for t in timings[key]]
        load = bf.max_other_cpu(t.other_cpu for t in timings[key])
        speedup = medians["official-resnet50"] / medians[key]
        print(f"| {labels[key]} | {medians[key]:.3f} | {min(seconds):.3f} | {speedup:.2f}× "
              f"| {'yes' if medians[key] < TARGET_S else 'no'} | {'–' if load is None else f'{load:.0%}'} |")
        results.append({"impl": key, "label": labels[key], "times_s": seconds, "median_s": medians[key],
                        "min_s": min(seconds), "speedup_vs_official": speedup, "faces_found": found.get(key),
                        "other_cpu": [t.other_cpu for t in timings[key]]})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    env = {"cpu": bf.environment(argparse.Namespace(batches=None, warmup=args.warmup, repeats=args.repeats,
                                                     seed=args.seed, noise_strength=None, spandrel_call=None),
                                  device)["cpu"],
           "torch_threads": torch.get_num_threads(), "opencv_threads": cv2.getNumThreads(), "device": str(device),
           "cpu_count": os.cpu_count()}
    args.json.write_text(json.dumps({"environment": env, "photo_size": PHOTO_SIZE, "results": results,
                                     "time": time.strftime("%Y-%m-%d %H:%M")}, indent=2) + "\n")
    print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
