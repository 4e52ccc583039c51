"""End-to-end benchmark: restoring one photo with three faces, ours vs the official ``GFPGANer.enhance``.

The photo is 1024×1024 RGB, built from the three left-hand faces of insightface's sample ``t1.jpg``
(read in place from the installed wheel, never copied): the region x 0–640, y 60–700 of the
1280×886 photo, enlarged 1.6× with bicubic interpolation. The five landmarks of each face come from
our embedded detector, once, before any timing; both pipelines get the same landmarks (the official
code works in BGR, with the same pixel coordinates), so detection is left out of both timings.

* **Ours**: ``FaceRestorer(weights, detector='embedded', upscale=2, mask='parsing').restore(rgb, faces=faces)``
  — alignment, restoration, ParseNet masks, paste-back, Lanczos background; in fp32 (default
  kernels) and, as further rows, bf16 (``--dtypes``) and, where ``openvino`` is installed, the
  OpenVINO backend (``backend='openvino'``, exported before timing). ``--mask box`` compares square
  masks instead.
* **Official**: the body of ``gfpgan.utils.GFPGANer.enhance`` (gfpgan 1.3.8, facexlib's
  ``FaceRestoreHelper``), call for call, with ``get_face_landmarks_5`` replaced by setting the given
  landmarks; ParseNet paste masks (``use_parse=True``, as ``GFPGANer`` builds its helper) with the
  same seeded random ParseNet weights as ours, no background upsampler, upscale 2. The restorer and
  its helper are built without their constructors, which would download the detection and parsing
  weights.

Both load the same seeded random v1.4-format checkpoint (``official_gfpgan('clean', seed, 0.1)`` from
``tests/official.py``, saved as ``{'params_ema': state_dict}`` to a temporary ``.pth``). After one
untimed run of each, the two are timed alternately (the first of each round rotating) for
``--repeats`` rounds; reported are the median and minimum seconds per photo, their ratio, the
largest share of the CPUs other processes used during a timed run (``bench_forward``'s method) and
a per-stage breakdown measured inside the same timed runs. A sanity line gives how far apart the
two outputs are; they are not identical by design (the official forward draws fresh noise, and its
paste-back is offset by half an output pixel).

Example::

    python bench/bench_pipeline.py                  # CPU, 1 warm-up + 3 timed rounds
    python bench/bench_pipeline.py --repeats 5 --threads 2
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import bench_forward as bf  # noqa: E402  (also puts the repository root and tests/ on sys.path)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from gfp_core.face.detection import detect_faces, load_detector  # noqa: E402
from gfp_core.face.types import Face  # noqa: E402
from gfp_core.pipeline import FaceRestorer  # noqa: E402
from official import OFFICIAL_KWARGS, load_official, official_gfpgan  # noqa: E402  (tests/official.py)

REPO_ROOT = bf.REPO_ROOT
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "pipeline_cpu.json"
PHOTO_SIZE = 1024
#: (x0, y0, side) of the square taken from t1.jpg (1280×886): the three faces on the left
T1_REGION = (0, 60, 640)
NUM_FACES = 3
UPSCALE = 2
FACE_SIZE = 512

#: our FaceRestorer stage methods timed inside restore(), and the names they are reported under
OURS_STAGES = {"crop": "align", "restore_crops": "restore", "masks_for": "masks", "paste": "paste",
               "backgrounds": "background"}
OFFICIAL_STAGES = ("align", "restore", "masks+paste+background")


# --------------------------------------------------------------------------------------------
# the photo and its faces


def t1_path() -> Path:
    """insightface's sample photo, in the installed package (copyrighted: used in place, never copied)."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("insightface is not installed; its data/images/t1.jpg is the benchmark photo")
    path = Path(spec.submodule_search_locations[0]) / "data" / "images" / "t1.jpg"
    if not path.is_file():
        raise SystemExit(f"{path} is missing")
    return path


def make_photo() -> np.ndarray:
    """The 1024×1024 RGB uint8 benchmark photo: three faces of t1.jpg, enlarged 1.6×."""
    x0, y0, side = T1_REGION
    t1 = np.asarray(Image.open(t1_path()).convert("RGB"))
    region = t1[y0:y0 + side, x0:x0 + side]
    return np.ascontiguousarray(cv2.resize(region, (PHOTO_SIZE, PHOTO_SIZE), interpolation=cv2.INTER_CUBIC))


def find_faces(photo: np.ndarray, device: torch.device) -> list[Face]:
    """The photo's faces from our embedded detector, left to right; exactly :data:`NUM_FACES` of them."""
    faces = detect_faces(load_detector("embedded", device=device), photo)
    if len(faces) != NUM_FACES:
        raise SystemExit(f"expected {NUM_FACES} faces in the benchmark photo, the detector found {len(faces)}")
    return sorted(faces, key=lambda face: float(face.box[0] + face.box[2]))


# --------------------------------------------------------------------------------------------
# the two pipelines


def save_weights(directory: Path, seed: int, noise_strength: float) -> Path:
    """A seeded random official-format v1.4 checkpoint, ``{'params_ema': state_dict}``."""
    path = directory / f"gfpgan_clean_seed{seed}.pth"
    torch.save({"params_ema": official_gfpgan("clean", seed, noise_strength).state_dict()}, path)
    return path


def official_restorer(weights: Path, device: torch.device, parse_state: dict[str, torch.Tensor] | None = None):
    """``GFPGANer(weights, upscale=2, arch='clean', channel_multiplier=2)`` without its constructor.

    The constructor would download the RetinaFace and ParseNet weights; neither is used here (the
    landmarks are given and the paste uses square masks), so the restorer and its
    ``FaceRestoreHelper`` get, by hand, the attributes their constructors set.
    """
    official = load_official()  # patches basicsr before gfpgan.utils imports it
    from facexlib.utils.face_restoration_helper import FaceRestoreHelper
    from gfpgan.utils import GFPGANer

    net = official.GFPGANv1Clean(channel_multiplier=2, fix_decoder=False, **OFFICIAL_KWARGS)
    loadnet = torch.load(weights, map_location="cpu")
    net.load_state_dict(loadnet["params_ema" if "params_ema" in loadnet else "params"], strict=True)

    restorer = GFPGANer.__new__(GFPGANer)
    restorer.upscale = UPSCALE
    restorer.bg_upsampler = None
    restorer.device = device
    restorer.gfpgan = net.eval().to(device)

    helper = FaceRestoreHelper.__new__(FaceRestoreHelper)  # as FaceRestoreHelper(upscale, face_size=512, …)
    helper.template_3points = False
    helper.upscale_factor = UPSCALE
    helper.crop_ratio = (1, 1)
    helper.face_size = (FACE_SIZE, FACE_SIZE)
    helper.face_template = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                                     [201.26117, 371.41043], [313.08905, 371.15118]]) * (FACE_SIZE / 512.0)
    helper.save_ext = "png"
    helper.pad_blur = False
    # GFPGANer parses (use_parse=True, ParseNet); without parse_state: square masks, like ours with mask='box'
    helper.use_parse = parse_state is not None
    helper.device = device
    helper.face_det = None  # never called: the landmarks are given
    helper.face_parse = None
    if parse_state is not None:  # what init_parsing_model('parsenet') builds, with the given weights
        from facexlib.parsing.parsenet import ParseNet

        helper.face_parse = ParseNet(in_size=512, out_size=512, parsing_ch=19)
        helper.face_parse.load_state_dict(parse_state, strict=True)
        helper.face_parse.eval().to(device)
    helper.is_gray = False  # read by newer facexlib versions
    helper.input_img = None
    helper.clean_all()  # all_landmarks_5, det_faces, affine_matrices, …, pad_input_imgs = []
    restorer.face_helper = helper
    return restorer


@torch.no_grad()
def official_enhance_with_landmarks(restorer, img_bgr: np.ndarray, faces: list[Face],
                                    stages: dict[str, float] | None = None):
    """``GFPGANer.enhance(img_bgr)`` (defaults: not aligned, all faces, paste back, weight 0.5), step
    by step, with the detector's landmarks replaced by ``faces``; returns (crops, restored, image),
    all BGR. ``stages`` receives the seconds spent aligning, restoring and pasting (incl. background).
    """
    from basicsr.utils import img2tensor, tensor2img
    from torchvision.transforms.functional import normalize

    helper = restorer.face_helper
    start = time.perf_counter()
    helper.clean_all()
    helper.read_image(img_bgr)
    # in place of get_face_landmarks_5(only_center_face=False, eye_dist_threshold=5)
    for face in faces:
        helper.all_landmarks_5.append(np.asarray(face.landmarks, dtype=np.float32))
        helper.det_faces.append(np.append(face.box, face.score).astype(np.float32))
    helper.align_warp_face()
    aligned = time.perf_counter()

    for cropped_face in helper.cropped_faces:
        cropped_face_t = img2tensor(cropped_face / 255., bgr2rgb=True, float32=True)
        normalize(cropped_face_t, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), inplace=True)
        cropped_face_t = cropped_face_t.unsqueeze(0).to(restorer.device)
        output = restorer.gfpgan(cropped_face_t, return_rgb=False, weight=0.5)[0]  # randomize_noise=True
        restored_face = tensor2img(output.squeeze(0), rgb2bgr=True, min_max=(-1, 1))
        helper.add_restored_face(restored_face.astype("uint8"))
    restored = time.perf_counter()

    bg_img = None  # no bg_upsampler: paste_faces_to_input_image resizes the input with Lanczos
    helper.get_inverse_affine(None)
    restored_img = helper.paste_faces_to_input_image(upsample_img=bg_img)
    if stages is not None:
        stages.update({"align": aligned - start, "restore": restored - aligned,
                       "masks+paste+background": time.perf_counter() - restored})
    return helper.cropped_faces, helper.restored_faces, restored_img


class StageClock:
    """Times the stage methods of our :class:`FaceRestorer`'s engine inside ``restore()`` (instance-level
    wrappers)."""

    def __init__(self, restorer: FaceRestorer):
        self.last: dict[str, float] = {}
        for method, label in OURS_STAGES.items():
            setattr(restorer.engine, method, self._wrap(getattr(restorer.engine, method), label))

    def _wrap(self, fn: Callable, label: str) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.last[label] = self.last.get(label, 0.0) + time.perf_counter() - start

        return timed

    def reset(self) -> None:
        self.last = {}


# --------------------------------------------------------------------------------------------
# timing


@dataclass
class Result:
    impl: str
    label: str
    times_s: list[float]
    median_s: float
    min_s: float
    ratio_vs_official: float | None
    other_cpu: list[float | None]
    stages_s: list[dict[str, float]] = field(default_factory=list)
    stage_medians_s: dict[str, float] = field(default_factory=dict)


def output_differences(ours, official) -> dict[str, float]:
    """How far apart the two pipelines' results are, in 8-bit levels (official BGR turned to RGB)."""
    image = np.abs(ours.image.astype(np.int16) - official[2][:, :, ::-1].astype(np.int16))
    crops = np.abs(ours.cropped_faces.astype(np.int16) - np.stack(official[0])[..., ::-1].astype(np.int16))
    faces = np.abs(ours.restored_faces.astype(np.int16) - np.stack(official[1])[..., ::-1].astype(np.int16))
    return {"image_mean_abs": float(image.mean()), "image_max_abs": float(image.max()),
            "crops_mean_abs": float(crops.mean()), "crops_max_abs": float(crops.max()),
            "restored_faces_mean_abs": float(faces.mean()), "output_shape": list(ours.image.shape)}


@torch.no_grad()
def official_fixed_noise(restorer, crops_rgb: np.ndarray) -> np.ndarray:
    """The official model's restorations of ``crops_rgb`` (RGB uint8) with its noise fixed
    (``randomize_noise=False``) and its own pre- and post-processing: RGB uint8."""
    from basicsr.utils import img2tensor, tensor2img
    from torchvision.transforms.functional import normalize

    faces = []
    for crop in crops_rgb:
        x = img2tensor(np.ascontiguousarray(crop[:, :, ::-1]) / 255., bgr2rgb=True, float32=True)
        normalize(x, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), inplace=True)
        output = restorer.gfpgan(x.unsqueeze(0).to(restorer.device), return_rgb=False, randomize_noise=False)[0]
        faces.append(tensor2img(output.squeeze(0), rgb2bgr=True, min_max=(-1, 1)).astype(np.uint8)[:, :, ::-1])
    return np.stack(faces)


def restored_crop_check(restorer, ours) -> dict[str, float]:
    """Our restored crops against the official model's on the same (our) crops with fixed noise:
    8-bit levels. Equal within 1/255 means max ≤ 1 (a rounding step)."""
    reference = official_fixed_noise(restorer, ours.cropped_faces)
    diff = np.abs(ours.restored_faces.astype(np.int16) - reference.astype(np.int16))
    return {"max": float(diff.max()), "mean": float(diff.mean()), "share_differing": float((diff > 0).mean())}


def run_benchmark(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    from gfp_core.synthetic import random_state_dict, write_random_checkpoint
    from gfp_core.weights import add_model_dir

    photo = make_photo()
    photo_bgr = np.ascontiguousarray(photo[:, :, ::-1])  # what cv2.imread would give the official code
    faces = find_faces(photo, device)

    ours: dict[str, FaceRestorer] = {}
    with tempfile.TemporaryDirectory(prefix="gfp_bench_") as tmp:
        weights = save_weights(Path(tmp), args.seed, args.noise_strength)
        parse_state = None
        if args.mask == "parsing":  # the same seeded ParseNet for both, ours found in a model folder
            parse_state = random_state_dict("parsenet", seed=args.seed)
            write_random_checkpoint("parsenet", Path(tmp) / "parsing_parsenet.pth", seed=args.seed)
            add_model_dir(tmp, kinds=["parsing"])
        variants = {("ours" if dtype == "fp32" else f"ours-{dtype}"): (dtype, "torch") for dtype in args.dtypes}
        from gfp_core.backends.openvino import available

        if device.type == "cpu" and available():  # the optional backend, exported into this folder's cache
            variants["ours-openvino"] = ("fp32", "openvino")
        os.environ["GFP_HOME"] = tmp
        for key, (dtype, backend) in variants.items():
            ours[key] = FaceRestorer(weights, detector="embedded", upscale=UPSCALE, mask=args.mask, device=device,
                                     dtype=dtype, allow_unverified=True, backend=backend)
            ours[key].parser  # noqa: B018  (loaded now, while its file exists; not in any timing)
        official = official_restorer(weights, device, parse_state)
    clocks = {key: StageClock(restorer) for key, restorer in ours.items()}
    official_stages: dict[str, float] = {}

    def run_ours(key: str):
        clocks[key].reset()
        return ours[key].restore(photo, faces=faces)

    def run_official():
        official_stages.clear()
        return official_enhance_with_landmarks(official, photo_bgr, faces, official_stages)

    runs: dict[str, Callable] = {key: (lambda key=key: run_ours(key)) for key in ours}
    runs["official"] = run_official
    labels = {key: f"ours FaceRestorer.restore{'' if key == 'ours' else ', ' + key[5:]}" for key in ours}
    labels["official"] = "official GFPGANer.enhance"
    stage_of: dict[str, Callable] = {key: (lambda key=key: dict(clocks[key].last)) for key in ours}
    stage_of["official"] = lambda: dict(official_stages)

    print(f"{args.warmup} warm-up + {args.repeats} timed runs each …", flush=True)
    first: dict[str, object] = {}
    for _ in range(max(1, args.warmup)):  # at least one untimed run, for the comparison of the outputs
        for key, run in runs.items():
            first.setdefault(key, run())
    diffs = output_differences(first["ours"], first["official"])
    checks = {key: restored_crop_check(official, first[key]) for key in ours}

    keys = list(runs)
    timings: dict[str, list[bf.Timing]] = {key: [] for key in keys}
    stages: dict[str, list[dict[str, float]]] = {key: [] for key in keys}
    for round_idx in range(args.repeats):
        shift = round_idx % len(keys)
        for key in keys[shift:] + keys[:shift]:
            timing = bf.time_once(lambda _, run=runs[key]: run(), None, device)
            timings[key].append(timing)
            per_run = stage_of[key]()
            if key != "official":
                per_run["masks+paste+background"] = per_run["masks"] + per_run["paste"] + per_run["background"]
                named = sum(per_run[name] for name in OURS_STAGES.values())
            else:
                named = sum(per_run[name] for name in OFFICIAL_STAGES)
            per_run["other"] = timing.seconds - named  # outside the named stages (input checks, copies, …)
            stages[key].append(per_run)

    medians = {key: statistics.median(t.seconds for t in timings[key]) for key in keys}
    results = []
    for key in keys:
        seconds = [t.seconds for t in timings[key]]
        per_stage = {name: statistics.median(run[name] for run in stages[key]) for name in stages[key][0]}
        per_stage["total"] = medians[key]
        results.append(Result(key, labels[key], seconds, medians[key], min(seconds),
                              medians[key] / medians["official"], [t.other_cpu for t in timings[key]],
                              stages[key], per_stage))
    photo_info = {"source": "insightface data/images/t1.jpg (read in place)", "region_xywh":
                  [T1_REGION[0], T1_REGION[1], T1_REGION[2], T1_REGION[2]], "size": [PHOTO_SIZE, PHOTO_SIZE],
                  "resize": "cv2.INTER_CUBIC", "upscale": UPSCALE, "mask": args.mask,
                  "faces": [{"box": f.box.tolist(), "landmarks": f.landmarks.tolist(), "score": float(f.score)}
                            for f in faces]}
    return {"photo": photo_info, "results": results, "differences": diffs, "restored_crop_checks": checks,
            "ours_batch_size": ours["ours"].batch_size}


# --------------------------------------------------------------------------------------------
# reporting


def markdown_table(results: list[Result]) -> str:
    lines = ["| pipeline | median s/photo | min s/photo | median s/face | vs official | other CPU load |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        load = bf.max_other_cpu(r.other_cpu)
        lines.append(f"| {r.label} | {r.median_s:.3f} | {r.min_s:.3f} | {r.median_s / NUM_FACES:.3f} "
                     f"| {r.ratio_vs_official:.3f}× | {f'{load:.0%}' if load is not None else '–'} |")
    return "\n".join(lines)


def stage_table(results: list[Result], batch_size: int) -> str:
    ours = next(r.stage_medians_s for r in results if r.impl == "ours")  # the fp32 default
    official = next(r.stage_medians_s for r in results if r.impl == "official")
    batches = -(-NUM_FACES // batch_size)
    rows = [
        ("detect", "skipped (landmarks given)", "skipped (landmarks given)"),
        ("align (3 crops)", f"{ours['align']:.3f}", f"{official['align']:.3f}"),
        (f"restore (ours: {batches} forward{'s' if batches > 1 else ''} of ≤ {batch_size}; official: 3 × 1)",
         f"{ours['restore']:.3f}", f"{official['restore']:.3f}"),
        ("masks", f"{ours['masks']:.3f}", "– (in paste)"),
        ("paste", f"{ours['paste']:.3f}", "– (in paste)"),
        ("background (Lanczos ×2)", f"{ours['background']:.3f}", "– (in paste)"),
        ("masks + paste + background", f"{ours['masks+paste+background']:.3f}",
         f"{official['masks+paste+background']:.3f}"),
        ("other (input checks, copies, bookkeeping)", f"{ours['other']:.3f}", f"{official['other']:.3f}"),
        ("total", f"{ours['total']:.3f}", f"{official['total']:.3f}"),
    ]
    lines = ["| stage (median s of the timed runs) | ours | official |", "|---|---:|---:|"]
    lines += [f"| {stage} | {a} | {b} |" for stage, a, b in rows]
    return "\n".join(lines)


def environment(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    """``bench_forward``'s environment record, without its forward-only fields, plus this benchmark's."""
    info = bf.environment(SimpleNamespace(batches=None, warmup=args.warmup, repeats=args.repeats, seed=args.seed,
                                          noise_strength=args.noise_strength, spandrel_call=None), device)
    for key in ("batches", "spandrel_call", "spandrel"):
        info.pop(key, None)
    from importlib.metadata import version

    for package in ("facexlib", "opencv-python", "opencv-python-headless"):
        try:
            info[package] = version(package)
        except Exception:  # noqa: BLE001 - informational only
            pass
    info.update({"opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads()})
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each pipeline (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each pipeline (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--noise-strength", type=float, default=0.1,
                        help="StyleGAN2 noise strengths of the weights (0 in a fresh model)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--mask", choices=("parsing", "box"), default="parsing",
                        help="paste masks of both pipelines: parsing (ParseNet, what GFPGANer uses; default) or box")
    parser.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16", "fp16"), default=None,
                        help="our pipeline in these dtypes (default: fp32 bf16 on CPU, fp32 fp16 on CUDA)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default: {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be ≥ 1, --warmup ≥ 0")
    if args.dtypes is None:
        args.dtypes = ["fp32", "fp16"] if args.device.startswith("cuda") else ["fp32", "bf16"]
    if "fp32" not in args.dtypes:
        args.dtypes.insert(0, "fp32")  # the reference row of the stage table and the output comparison
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = bf.setup_torch(args)

    started = time.perf_counter()
    run = run_benchmark(args, device)
    results: list[Result] = run["results"]
    wall = time.perf_counter() - started
    env = environment(args, device)
    diffs = run["differences"]

    print()
    print(f"GFPGAN whole photo, {PHOTO_SIZE}×{PHOTO_SIZE} RGB with {NUM_FACES} faces (insightface t1.jpg), "
          f"upscale {UPSCALE}, {args.mask} masks on {env.get('gpu', env['cpu'])} ({device}, {env['torch_threads']} "
          f"threads), torch {env['torch']}; same seeded v1.4-format weights and landmarks, detection excluded; "
          f"median of {args.repeats} after {args.warmup} warm-up; 'vs official' = median / official median; "
          f"'other CPU load' = largest share of the CPUs that other processes used during a timed run.")
    print()
    print(markdown_table(results))
    print()
    print(stage_table(results, run["ours_batch_size"]))
    print()
    print(f"Sanity (8-bit levels, not expected to be 0: the official forward draws fresh noise and pastes "
          f"half an output pixel off): {diffs['output_shape'][1]}×{diffs['output_shape'][0]} outputs differ by "
          f"{diffs['image_mean_abs']:.2f} on average (max {diffs['image_max_abs']:.0f}); aligned crops by "
          f"{diffs['crops_mean_abs']:.3f} (max {diffs['crops_max_abs']:.0f}); restored faces by "
          f"{diffs['restored_faces_mean_abs']:.2f}.")
    print()
    for key, check in run["restored_crop_checks"].items():
        verdict = "equal within 1/255" if check["max"] <= 1 else "NOT within 1/255"
        print(f"Restored crops, {key} vs the official model on the same crops with fixed noise: max "
              f"{check['max']:.0f}, mean {check['mean']:.4f} 8-bit levels, {check['share_differing']:.3%} of values "
              f"differ — {verdict}.")
    busy = [r for r in results if (bf.max_other_cpu(r.other_cpu) or 0.0) > bf.CONTENTION_WARNING]
    if busy:
        print(f"\nWARNING: other processes kept more than {bf.CONTENTION_WARNING:.0%} of the CPUs busy during "
              f"timed runs of {', '.join(r.impl for r in busy)}; the timings are inflated — rerun on an idle "
              f"machine.")
    print(f"\nwall time {wall:.0f} s")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"environment": env, "wall_s": wall, "photo": run["photo"], "ours_batch_size": run["ours_batch_size"],
               "differences": diffs, "restored_crop_checks": run["restored_crop_checks"], "mask": args.mask,
               "results": [asdict(r) for r in results]}
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
