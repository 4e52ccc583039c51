"""Parsing masks at lower resolutions: time per face and what the change does to the pasted photo.

The 'parsing' paste mask runs a face-parsing network on each restored crop and blurs the face classes
of its label map (Gaussian 101 / σ 11, twice, in 512-pixel units). This benchmark parses the same
crops at several sides (``--sizes``, 512 = the official size) through ``face_masks``, the engine's
mask stage, and reports:

* **time per face** of the whole mask stage (parse + blur) for ParseNet and BiSeNet, the sizes
  timed alternately in the same rounds, so their ratios hold on a busy machine;
* **pixel differences** of the pasted photo against the one pasted with 512² masks, in 8-bit levels:
  the mean inside the face region (the pasted crops' footprint) and the maximum anywhere.

Faces: the astronaut (``skimage.data.astronaut()``, landmarks placed by eye) and the six faces of
insightface's ``t1.jpg`` (read in place from the installed wheel, never copied; landmarks from our
embedded detector). The 'restored' crop is the aligned crop sharpened and brightened, so the paste
shows where the masks differ; the differences scale with how far a restored face is from the photo.

No trained parsing weights can be downloaded here. Seeded random weights in the official format
give label maps that are a texture, and a random network's texture changes with the input's scale,
so their differences say nothing about a trained parser; they are reported (``random weights``) but
not judged. What the resolution itself does is measured with a **scale-consistent parser**: a module
that answers, at any input size, a fixed 512² label map averaged down to that size (what a parser
that is right at every size returns). Two label maps: a face-shaped one (skin oval, hair cap, eyes,
nose, lips, neck, cloth: the boundaries a trained parser draws) and, as a worst case of fine
boundaries, the random ParseNet's own 512² texture.

Example::

    python bench/bench_parsing.py                       # CPU, 2 timed rounds
    python bench/bench_parsing.py --repeats 3 --threads 2
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import bench_forward as bf  # noqa: E402  (also puts the repository root on sys.path)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from gfp_core.face.align import align_faces, inverse_alignment  # noqa: E402
from gfp_core.face.masks import DEFAULT_PARSE_SIZE, PARSE_LABELS, face_masks, parse_face  # noqa: E402
from gfp_core.face.paste import paste_faces  # noqa: E402
from gfp_core.face.types import Face  # noqa: E402

REPO_ROOT = bf.REPO_ROOT
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "parsing_cpu.json"
#: the astronaut's landmarks, placed by eye on a 4× zoom (eyes, nose tip, mouth corners)
ASTRONAUT_LM = np.array([[201.3, 100.5], [247.0, 103.8], [222.5, 127.5], [203.8, 141.3], [244.3, 141.3]])
#: the goal against 512² masks, 8-bit levels: mean inside the face region, maximum anywhere
GOAL_MEAN, GOAL_MAX = 1.0, 4.0


# --------------------------------------------------------------------------------------------
# photos, faces, parsers


def t1_path() -> Path | None:
    """insightface's sample photo, in the installed package (copyrighted: used in place, never copied)."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "data" / "images" / "t1.jpg"
    return path if path.is_file() else None


def photos(device: torch.device) -> list[tuple[str, np.ndarray, list[Face]]]:
    """(name, RGB photo, faces) for every photo found."""
    from skimage import data

    from gfp_core.face.detection import detect_faces, load_detector

    lm = ASTRONAUT_LM.astype(np.float32)
    box = np.array([lm[:, 0].min() - 30, lm[:, 1].min() - 40, lm[:, 0].max() + 30, lm[:, 1].max() + 40], np.float32)
    found = [("astronaut", data.astronaut(), [Face(box=box, landmarks=lm, score=1.0)])]
    path = t1_path()
    if path is not None:
        t1 = np.asarray(Image.open(path).convert("RGB"))
        found.append(("insightface t1.jpg", t1, detect_faces(load_detector("embedded", device=device), t1)))
    return found


def random_parsers(seed: int, device: torch.device) -> dict[str, torch.nn.Module]:
    """Seeded random ParseNet and BiSeNet in the official formats, loaded as the engine loads them."""
    from gfp_core.synthetic import write_random_checkpoint
    from gfp_core.weights import add_model_dir, load_model

    parsers = {}
    with tempfile.TemporaryDirectory(prefix="gfp_parsing_") as tmp:
        for name in ("parsenet", "bisenet"):
            write_random_checkpoint(name, Path(tmp) / f"parsing_{name}.pth", seed=seed)
        add_model_dir(tmp, kinds=["parsing"])
        for name in ("parsenet", "bisenet"):
            parsers[name] = load_model(name, device=device, allow_unverified=True).eval()
    return parsers


class ScaleConsistentParser(torch.nn.Module):
    """Answers one fixed 512² label map, averaged down to the input's size: a parser right at every size."""

    def __init__(self, labels: np.ndarray):
        super().__init__()
        self.register_buffer("onehot", torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)),
                                                                   len(PARSE_LABELS)).permute(2, 0, 1)[None].float())

    def forward(self, x: torch.Tensor):
        probs = torch.nn.functional.interpolate(self.onehot, size=x.shape[-2:], mode="area")
        return probs.expand(x.shape[0], -1, -1, -1), None


# named as the network it stands in for: parse_face tells parsers apart by their class name
ScaleConsistentParser.__name__ = "ParseNet"


def face_shaped_labels(size: int = 512) -> np.ndarray:
    """Skin oval with eyes, nose and lips under a hair cap, neck and cloth below, on an aligned crop."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    lab = np.full((size, size), PARSE_LABELS.index("background"), np.uint8)
    lab[((xx - 0.5) / 0.36) ** 2 + ((yy - 0.40) / 0.36) ** 2 < 1] = PARSE_LABELS.index("hair")
    lab[(yy > 0.7) & (np.abs(xx - 0.5) < 0.14)] = PARSE_LABELS.index("neck")
    lab[yy > 0.9] = PARSE_LABELS.index("cloth")
    lab[((xx - 0.5) / 0.27) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1] = PARSE_LABELS.index("skin")
    for cx, name in ((0.38, "l_eye"), (0.62, "r_eye")):
        lab[((xx - cx) / 0.05) ** 2 + ((yy - 0.47) / 0.02) ** 2 < 1] = PARSE_LABELS.index(name)
    lab[(np.abs(xx - 0.5) < 0.03) & (yy > 0.5) & (yy < 0.62)] = PARSE_LABELS.index("nose")
    lab[(np.abs(xx - 0.5) < 0.1) & (np.abs(yy - 0.72) < 0.02)] = PARSE_LABELS.index("u_lip")
    return lab


def restored_like(crop: np.ndarray) -> np.ndarray:
    """A plausible 'restored' face: sharper and a little brighter than the crop."""
    blur = cv2.GaussianBlur(crop, (0, 0), 2.0).astype(np.float32)
    return np.clip(np.rint(crop.astype(np.float32) * 1.6 - blur * 0.6 + 8.0), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# pasting and comparing


def masks_for(parser: torch.nn.Module, restored: np.ndarray, size: int) -> np.ndarray:
    """The engine's parsing masks of ``restored`` crops, parsed at ``size``."""
    return face_masks("parsing", [], np.zeros((len(restored), 2, 3)), restored, face_size=restored.shape[1],
                      parser=parser, parse_size=size)


def pasted(photo: np.ndarray, restored: np.ndarray, inverses: np.ndarray, masks: np.ndarray) -> np.ndarray:
    return paste_faces(photo, restored, inverses, masks)


def footprint(photo: np.ndarray, inverses: np.ndarray, face_size: int) -> np.ndarray:
    """Where the pasted crops land in the photo (the face region the mean is taken over)."""
    h, w = photo.shape[:2]
    ones = np.ones((face_size, face_size), np.float32)
    area = sum(cv2.warpAffine(ones, inv, (w, h), flags=cv2.INTER_LINEAR) for inv in inverses)
    return np.asarray(area) > 0


def difference(image: np.ndarray, reference: np.ndarray, region: np.ndarray) -> dict[str, float]:
    diff = np.abs(image.astype(np.int16) - reference.astype(np.int16))
    return {"mean_in_face": float(diff[region].mean()), "max": float(diff.max())}


def compare_sizes(sizes: list[int], pictures: list[dict], parser_of) -> dict[int, dict[str, float]]:
    """Per size, the worst over the photos of the pasted-photo difference against 512² masks, and of
    the masks' own difference × 255 (what a restored face as far as it can be from the photo would
    show). ``parser_of(picture, face_index)``: the parser for one face."""
    worst: dict[int, dict[str, float]] = {}
    for picture in pictures:
        photos, masks = {}, {}
        for size in sizes + [512]:
            masks[size] = np.concatenate([masks_for(parser_of(picture, i), picture["restored"][i:i + 1], size)
                                          for i in range(len(picture["restored"]))])
            photos[size] = pasted(picture["photo"], picture["restored"], picture["inverses"], masks[size])
        for size in sizes:
            d = difference(photos[size], photos[512], picture["region"])
            mask_diff = np.abs(masks[size] - masks[512]) * 255
            d.update(mask_mean=float(mask_diff.mean()), mask_max=float(mask_diff.max()))
            best = worst.setdefault(size, dict.fromkeys(d, 0.0))
            for key in best:
                best[key] = max(best[key], d[key])
    return worst


# --------------------------------------------------------------------------------------------
# timing


def time_sizes(parsers: dict[str, torch.nn.Module], restored: np.ndarray, sizes: list[int],
               repeats: int, warmup: int = 1) -> dict[str, dict[int, list[float]]]:
    """Seconds per face of the mask stage, every (parser, size) once per round, the order rotating."""
    keys = [(name, size) for name in parsers for size in sizes]
    seconds: dict[str, dict[int, list[float]]] = {name: {size: [] for size in sizes} for name in parsers}
    for _ in range(warmup):
        for name, size in keys:
            masks_for(parsers[name], restored[:1], size)
    for round_idx in range(repeats):
        shift = round_idx % len(keys)
        for name, size in keys[shift:] + keys[:shift]:
            start = time.perf_counter()
            masks_for(parsers[name], restored, size)
            seconds[name][size].append((time.perf_counter() - start) / len(restored))
    return seconds


# --------------------------------------------------------------------------------------------


def prepare(device: torch.device) -> list[dict]:
    pictures = []
    for name, photo, faces in photos(device):
        crops, affines = align_faces(photo, faces)
        inverses = np.stack([inverse_alignment(a, 1.0) for a in affines])
        pictures.append({"name": name, "photo": photo, "faces": len(faces), "inverses": inverses,
                         "restored": np.stack([restored_like(c) for c in crops]),
                         "region": footprint(photo, inverses, crops.shape[1])})
    return pictures


def run(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    pictures = prepare(device)
    parsers = random_parsers(args.seed, device)
    sizes = [s for s in args.sizes if s != 512]
    textures = {p["name"]: parse_face(parsers["parsenet"], p["restored"]) for p in pictures}
    face_shape = ScaleConsistentParser(face_shaped_labels())
    differences = {
        "scale-consistent, face-shaped labels": compare_sizes(sizes, pictures, lambda p, i: face_shape),
        "scale-consistent, random ParseNet texture": compare_sizes(
            sizes, pictures, lambda p, i: ScaleConsistentParser(textures[p["name"]][i])),
        "random weights, ParseNet": compare_sizes(sizes, pictures, lambda p, i: parsers["parsenet"]),
        "random weights, BiSeNet": compare_sizes(sizes, pictures, lambda p, i: parsers["bisenet"]),
    }
    timed = np.concatenate([p["restored"] for p in pictures])[:args.faces]
    seconds = time_sizes(parsers, timed, args.sizes, args.repeats, args.warmup)
    return {"photos": [{"name": p["name"], "faces": p["faces"], "shape": list(p["photo"].shape)} for p in pictures],
            "differences": differences, "seconds_per_face": seconds, "timed_faces": len(timed)}


def _size_label(size: int) -> str:
    return f"{size}² (default)" if size == DEFAULT_PARSE_SIZE else f"{size}²"


def timing_table(result: dict[str, object], sizes: list[int]) -> str:
    seconds = result["seconds_per_face"]
    base = statistics.median(seconds["parsenet"][512])
    lines = ["| parse size | ParseNet s/face | speed-up | BiSeNet s/face | speed-up vs ParseNet 512² |",
             "|---|---:|---:|---:|---:|"]
    for size in sizes:
        pn, bs = statistics.median(seconds["parsenet"][size]), statistics.median(seconds["bisenet"][size])
        lines.append(f"| {_size_label(size)} | {pn:.3f} | {base / pn:.2f}× | {bs:.3f} | {base / bs:.2f}× |")
    return "\n".join(lines)


def difference_table(result: dict[str, object], sizes: list[int]) -> str:
    differences = result["differences"]
    lines = ["| parse size | " + " | ".join(differences) + " |", "|---|" + "---:|" * len(differences)]
    for size in sizes:
        if size == 512:
            continue
        cells = [f"{d[size]['mean_in_face']:.2f} / {d[size]['max']:.0f} ({d[size]['mask_mean']:.1f} / "
                 f"{d[size]['mask_max']:.0f})" for d in differences.values()]
        lines.append(f"| {_size_label(size)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 384, 256, 192, 128],
                        help="parse sizes (512, the official one, is always included)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds (default: 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds of one face (default: 1)")
    parser.add_argument("--faces", type=int, default=3, help="faces in each timed call (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default: {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    args.sizes = sorted(set(args.sizes) | {512}, reverse=True)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = bf.setup_torch(args)
    started = time.perf_counter()
    result = run(args, device)
    wall = time.perf_counter() - started
    print(f"\nParsing masks on {device} ({torch.get_num_threads()} threads): seconds per face of the mask stage "
          f"(median of {args.repeats} rounds, {result['timed_faces']} faces per call, sizes interleaved); pasted-photo "
          f"differences against 512² masks in 8-bit levels, worst photo: mean in the face region / max anywhere "
          f"(goal {GOAL_MEAN:g} / {GOAL_MAX:g} for the scale-consistent parser).\n")
    print(timing_table(result, args.sizes))
    print("\nPasted photo against 512² masks: mean in the face region / max (in brackets the masks' own "
          "difference × 255, mean over the crop / max: the bound for any restored face)\n")
    print(difference_table(result, args.sizes))
    print(f"\nwall time {wall:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"environment": {"device": str(device), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                               "opencv": cv2.__version__}, "wall_s": wall, "default_parse_size": DEFAULT_PARSE_SIZE,
               "goal": {"mean_in_face": GOAL_MEAN, "max": GOAL_MAX}, "sizes": args.sizes, **result}
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
