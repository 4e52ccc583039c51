"""Command line: ``python -m gfp_core`` (or ``gfp-core``) models | download | convert | restore | export-onnx |
random-weights."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from . import options
from .errors import GFPError, WeightsNotFoundError
from .image import DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_PIXELS, SUPPORTED_FORMAT_NAMES

#: canonical option names (gfp_core.options) → this command line's flags: messages name the flag
CLI_WORDS = {
    "threshold": "--threshold", "fidelity": "--fidelity", "visibility": "--visibility", "upscale": "--upscale",
    "mask": "--mask", "parser": "--parser", "select": "--select", "indices": "--indices",
    "max_faces": "--max-faces", "detector": "--detector", "detect_max_side": "--detect-max-side",
    "min_face_size": "--min-face-size", "background": "--bg-upsampler", "background_tile": "--bg-tile",
    "device": "--device", "dtype": "--dtype", "model": "--model", "max_pixels": "--max-pixels",
    "max_output_pixels": "--max-output-pixels", "batch_size": "--batch-size", "smoothing": "--smoothing",
    "steady": "--steady", "crf": "--crf", "backend": "--backend",
}


def _cmd_models(args: argparse.Namespace) -> int:
    from .weights.registry import MODELS
    from .weights.resolve import find_local, model_dirs

    rows = []
    for spec in MODELS:
        local = find_local(spec)
        where = None if local is None else f"{local[0]}" + (" (Hugging Face cache)" if local[1] == "hf-cache" else "")
        rows.append({"name": spec.name, "aliases": list(spec.aliases), "kind": spec.kind, "arch": spec.arch,
                     "file": spec.filename, "found": where, "sha256": spec.sha256, "size": spec.size,
                     "sha256_source": spec.sha256_source, "url": spec.url,
                     "hub": [str(h) for h in spec.hub_sources()], "license": spec.license,
                     "description": spec.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        aliases = f" ({', '.join(r['aliases'])})" if r["aliases"] else ""
        status = f"found: {r['found']}" if r["found"] else "not downloaded"
        check = f"sha256 {r['sha256'][:16]}… ({r['sha256_source']})" if r["sha256"] else "[no published SHA-256]"
        print(f"{r['name']:<{width}}  {r['kind']:<11} {r['file']}{aliases}\n{'':<{width}}  {status}\n"
              f"{'':<{width}}  {check}")
    print("\nmodel folders searched: " + ", ".join(str(d) for d in model_dirs()))
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from .weights.registry import known_names
    from .weights.resolve import resolve_weights

    names = known_names() if args.all else args.names
    if not names:
        raise GFPError("name at least one model (python -m gfp_core models lists them) or pass --all")
    for name in names:
        resolved = resolve_weights(name, allow_unverified=args.allow_unverified, progress=not args.quiet)
        if resolved.verified:
            check = "verified"
        elif resolved.spec is not None and resolved.spec.sha256:
            check = "NOT verified: its size or SHA-256 differs, accepted because unverified files are allowed"
        else:
            check = "not verified (no published SHA-256)"
        print(f"{resolved.spec.name if resolved.spec else name}: {resolved.path} [{resolved.source}, {check}]")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .weights.convert import convert_checkpoint

    out = convert_checkpoint(args.input, args.output, overwrite=args.overwrite)
    print(f"wrote {out} (round trip verified bit for bit)")
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from .export_onnx import ONNX_TOLERANCE, check_onnx, export_onnx
    from .weights import load_model

    model = load_model(args.model, device="cpu", allow_unverified=args.allow_unverified, exact=True)
    out = export_onnx(model, args.output, batch_size=args.batch_size, fidelity=args.fidelity,
                      overwrite=args.overwrite)
    print(f"wrote {out} (input 'faces' [{args.batch_size}, 3, {model.out_size}, {model.out_size}] in [-1, 1], "
          f"output 'restored'; stored noise)")
    if args.no_check:
        return 0
    check = check_onnx(out, model, fidelity=args.fidelity)
    ok = check.max_abs_diff <= ONNX_TOLERANCE
    print(f"onnxruntime vs PyTorch: max abs difference {check.max_abs_diff:.2e} "
          f"({'within' if ok else 'ABOVE'} {ONNX_TOLERANCE:g}); one forward: onnxruntime {check.onnxruntime_s:.2f} s, "
          f"PyTorch {check.torch_s:.2f} s (reference kernels)")
    return 0 if ok else 1


def _cmd_random_weights(args: argparse.Namespace) -> int:
    from .synthetic import write_random_checkpoint

    out = write_random_checkpoint(args.name, args.output, seed=args.seed)
    print(f"wrote seeded random weights for {args.name} to {out} (for smoke runs: output is not a restored face)")
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def is_video(path: Path) -> bool:
    """Restored as a video (by its suffix; pictures are recognised by content)."""
    from .video import VIDEO_SUFFIXES

    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Inputs:
    """The images and videos a restore run works on: each file once, in the order given."""

    files: list[Path]
    #: paths that named a file already in ``files`` (a second name, a link, a glob through a symlink loop)
    duplicates: list[tuple[Path, Path]] = field(default_factory=list)


def collect_inputs(specs: Sequence[str]) -> Inputs:
    """Files as given, folders as their images and videos (sorted), anything else as a glob pattern (``**``
    recurses, without following symlinked folders). A file reached twice, by any path, counts once."""
    first: dict[str, Path] = {}
    duplicates: list[tuple[Path, Path]] = []
    for path in _candidates(specs):
        key = os.path.realpath(path)
        if key in first:
            duplicates.append((path, first[key]))
        else:
            first[key] = path
    return Inputs(list(first.values()), duplicates)


def _candidates(specs: Sequence[str]) -> list[Path]:
    import glob

    from .video import VIDEO_SUFFIXES

    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        elif path.exists() or not glob.has_magic(spec):
            found.append(path)  # a missing plain path is reported as a failed input
        else:
            found += _glob(spec)
    return found


def _glob(spec: str) -> list[Path]:
    """Files matching a glob pattern. pathlib's ``**`` does not descend into symlinked folders, so a
    link loop cannot list a file dozens of times (or, with two links, for ever) as glob.glob does."""
    import glob

    parts = Path(spec).parts
    first_magic = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:first_magic]) if first_magic else Path(".")
    pattern = str(Path(*parts[first_magic:]))
    return sorted(p for p in base.glob(pattern) if p.is_file())


def name_clashes(files: Sequence[Path]) -> list[list[Path]]:
    """Groups of distinct inputs that would write the same output files. Outputs are named after the
    input's name without its suffix (face crops always end in .png), so ``a/x.jpg`` and ``b/x.jpg``
    clash, and so do ``x.png`` and ``x.jpg``; names that differ only in case clash too (they do on
    Windows and macOS). A photo and a video of one name do not: their results go to different
    folders. Missing files are left out: they fail on their own."""
    groups: dict[tuple[bool, str], list[Path]] = defaultdict(list)
    for path in files:
        if path.exists():
            groups[is_video(path), path.stem.casefold()].append(path)
    return [group for group in groups.values() if len(group) > 1]


def check_output_folder(folder: Path) -> None:
    """Raise GFPError unless ``folder`` can be created and written. A test file is written and removed,
    and so are the folders made for it, so a run refused later leaves nothing behind."""
    import tempfile

    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise GFPError(f"cannot use the output folder {folder}: {parent} is a file, not a folder; "
                               f"choose another with -o")
            break
    created: list[Path] = []
    try:
        for parent in reversed((folder, *folder.parents)):
            if not parent.exists():
                parent.mkdir()
                created.append(parent)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".gfp-write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise GFPError(f"cannot write to the output folder {folder}: {exc.strerror or exc}; "
                       f"choose another with -o") from exc
    finally:
        for made in reversed(created):
            try:
                made.rmdir()
            except OSError:
                pass


def _cmd_restore(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .image import read_picture

    if args.ray is not None:  # the same restore, run as a Ray Data pipeline (gfp_core.scale)
        from .scale import restore_on_ray

        return restore_on_ray(args)
    if not args.inputs:
        raise GFPError("name at least one image, video, folder or glob pattern to restore"
                       + (" (--input-list is read with --ray)" if args.input_list else ""))
    inputs = collect_inputs(args.inputs)
    if not inputs.files:
        raise GFPError(f"no images or videos found in {' '.join(args.inputs)}")
    clashes = name_clashes(inputs.files)
    if clashes:
        listed = "\n".join(f"  {', '.join(str(p) for p in group)} -> {group[0].stem}.*" for group in clashes)
        raise GFPError("these inputs would write the same output files; restore them in separate runs with "
                       f"different --output folders, or rename them:\n{listed}")
    out = args.output
    check_output_folder(out)
    _check_video_settings(inputs.files, args)
    restorer = restorer_from_args(args)
    info = restorer.model_info
    detector = "none (aligned faces)" if args.aligned else restorer.detector.name
    runtime = "OpenVINO" if info.backend == "openvino" else "PyTorch"
    print(f"model: {info.name or info.arch} from {info.path}, on {runtime}; detector: {detector}", file=sys.stderr)
    if info.synthetic:
        print("!! these are seeded random weights: the results show the pipeline at work, not restored faces",
              file=sys.stderr)
    elif not info.verified and info.name:
        print(f"!! the {info.name} weights are not verified (their size or SHA-256 differs from the published "
              f"one, or none is published)", file=sys.stderr)

    counts = {"restored": 0, "skipped": 0, "failed": 0, "no face": 0, "faces": 0}
    videos = {"inputs": sum(map(is_video, inputs.files)), "restored": 0, "frames": 0, "faces": 0, "no face": 0}
    failures: list[str] = []
    for path in tqdm(inputs.files, desc="restoring", unit="file", disable=args.quiet or len(inputs.files) < 2):
        if is_video(path):
            target = _video_target(path, args)
        else:
            target = image_target(path, args)
        if target.exists() and not args.overwrite:
            counts["skipped"] += 1
            continue
        try:
            if is_video(path):
                outcome = _restore_video(restorer, path, target, args)
                videos["restored"] += 1
                videos["frames"] += outcome.frames
                videos["faces"] += outcome.faces
                videos["no face"] += outcome.frames_without_faces
                continue
            picture = read_picture(path, args.max_pixels)
            result = restorer.restore(picture, aligned=args.aligned)
        except GFPError as exc:
            counts["failed"] += 1
            options.in_words(exc, CLI_WORDS)
            failures.append(str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            continue
        except Exception as exc:  # keep going: one bad file must not stop a batch
            counts["failed"] += 1
            failures.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        problems = _write_results(out, path, target, result, args.suffix)
        if problems:
            counts["failed"] += 1
            failures.append(f"{path}: {problems}")
            continue
        counts["restored"] += 1
        counts["faces"] += result.num_restored
        if result.num_detected == 0:
            counts["no face"] += 1
            print(f"{path}: no face found; written unchanged{' (upscaled)' if args.upscale != 1 else ''}",
                  file=sys.stderr)

    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    if inputs.duplicates:
        again, first = inputs.duplicates[0]
        print(f"{len(inputs.duplicates)} inputs named a file already listed and were restored once "
              f"(e.g. {again} is {first})", file=sys.stderr)
    done = []
    if videos["inputs"] < len(inputs.files) or not videos["inputs"]:
        done.append(f"{counts['restored']} images restored ({counts['faces']} faces, "
                    f"{counts['no face']} without a face)")
    if videos["inputs"]:
        done.append(f"{videos['restored']} video{'' if videos['restored'] == 1 else 's'} restored ({videos['frames']} "
                    f"frames, {videos['faces']} faces, {videos['no face']} frames without a face)")
    print(f"{', '.join(done)}, {counts['skipped']} skipped (output exists; --overwrite), {counts['failed']} failed; "
          f"results in {out}", file=sys.stderr)
    return 1 if counts["failed"] else 0


def restorer_from_args(args: argparse.Namespace):
    """The FaceRestorer that ``restore``'s options describe (the local loop and each Ray worker build it so)."""
    from .face.select import parse_indices
    from .pipeline import FaceRestorer

    return FaceRestorer(
        args.model, detector=args.detector, device=args.device, dtype=args.dtype, upscale=args.upscale,
        fidelity=args.fidelity, visibility=args.visibility, mask=args.mask, parser=args.parser,
        colour_match=args.colour_match, score_threshold=args.threshold, detect_max_side=args.detect_max_side,
        min_face_size=args.min_face_size, select=args.select,
        indices=parse_indices(args.indices) if args.indices else None, max_faces=args.max_faces,
        smoothing=args.smoothing, steady=args.steady, background=args.bg_upsampler, background_tile=args.bg_tile,
        max_pixels=args.max_pixels, max_output_pixels=args.max_output_pixels, allow_unverified=args.allow_unverified,
        exact=args.exact, backend=args.backend)


def image_target(path: Path, args: argparse.Namespace) -> Path:
    """Where a photo's restored image goes: OUTPUT/restored_imgs/NAME[SUFFIX].EXT."""
    ext = path.suffix.lstrip(".").lower() if args.ext == "auto" else args.ext
    return args.output / "restored_imgs" / f"{path.stem}{args.suffix}.{ext or 'png'}"


def _video_target(path: Path, args: argparse.Namespace) -> Path:
    """Where a video's result goes: it keeps its container where one can be written, else becomes an .mp4."""
    from .video import CONTAINERS

    suffix = path.suffix.lower() if path.suffix.lower() in CONTAINERS else ".mp4"
    return args.output / "restored_videos" / f"{path.stem}{args.suffix}{suffix}"


def _check_video_settings(files: Sequence[Path], args: argparse.Namespace) -> None:
    """--codec and --crf checked against each kind of video to be written, before any model is loaded."""
    from .video import check_output

    targets = {}
    for path in filter(is_video, files):
        target = _video_target(path, args)
        targets.setdefault(target.suffix, target)
    for target in targets.values():
        check_output(target, args.codec, args.crf)


def _restore_video(restorer, path: Path, target: Path, args: argparse.Namespace):
    """One video restored to ``target`` with progress bars; a line says what was done. Interrupted,
    it says how to resume (the finished work is kept beside ``target``)."""
    from .errors import ImageTooLargeError, InvalidVideoError
    from .image import megapixels
    from .video import probe_video
    from .video.restore import restore_video

    if args.aligned:
        raise InvalidVideoError(f"{path}: --aligned is for photos of aligned face crops; restore videos without it")
    info = probe_video(path)
    if info.pixels > args.max_pixels:
        raise ImageTooLargeError(f"{path}: its frames are {info.width}x{info.height}, {megapixels(info.pixels)} "
                                 f"megapixels, over the limit of {megapixels(args.max_pixels)}", setting="max_pixels")
    frames_dir = args.output / "restored_frames" / target.stem if args.frames else None
    bars = FrameBars(path.name, disable=args.quiet)
    try:
        outcome = restore_video(restorer.engine, path, target, frames_dir=frames_dir, codec=args.codec, crf=args.crf,
                                on_progress=bars)
    except KeyboardInterrupt:
        bars.close()
        print(f"{path}: interrupted; the work done is kept: run the same command again to resume", file=sys.stderr)
        raise
    finally:
        bars.close()
    audio = {None: "no audio", "copy": "audio copied"}.get(outcome.audio, f"audio re-encoded to {outcome.audio}")
    resumed = f", {outcome.resumed_frames} kept from an earlier run" if outcome.resumed_frames else ""
    print(f"{path}: {outcome.frames} frames ({outcome.frames_without_faces} without a face{resumed}), "
          f"{outcome.faces} faces restored, {audio}, {outcome.size[0]}x{outcome.size[1]}, {outcome.seconds:.1f} s",
          file=sys.stderr)
    return outcome


class FrameBars:
    """``on_progress`` for :func:`gfp_core.video.restore_video`: a progress bar in frames for each
    pass, with frames per second and the time left."""

    LABELS = {"detect": "finding faces", "restore": "restoring"}

    def __init__(self, name: str, disable: bool = False) -> None:
        self.name, self.disable = name, disable
        self.stage: str | None = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            # frames done by an earlier run start the bar, so the rate and time left are this run's
            self.bar = tqdm(total=total, initial=done, desc=f"{self.LABELS.get(stage, stage)} {self.name}",
                            unit="frame", disable=self.disable, dynamic_ncols=True)
            return
        if total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _write_results(out: Path, path: Path, target: Path, result, suffix: str, target_last: bool = False) -> str:
    """Write one image's files: the restored photo first (the product; a face file that cannot be written
    must not cost it), then each face's crop, restored crop and comparison. Each write is atomic.
    ``target_last``: the restored photo last instead, so that its presence means every file of the image
    is in place (how a resumed Ray run tells finished work from work cut short).
    Returns what went wrong ('' when nothing did); later files are still tried after a failure."""
    import numpy as np

    from .image import write_image

    jobs: list[tuple[Path, Callable[[], np.ndarray]]] = [(target, lambda: result.image)]
    for i in range(result.num_restored):
        crop, restored = result.cropped_faces[i], result.restored_faces[i]
        jobs += [(out / "cropped_faces" / f"{path.stem}_{i:02d}.png", lambda c=crop: c),
                 (out / "restored_faces" / f"{path.stem}_{i:02d}{suffix}.png", lambda r=restored: r),
                 (out / "cmp" / f"{path.stem}_{i:02d}.png", lambda c=crop, r=restored: np.concatenate([c, r], axis=1))]
    if target_last:
        jobs.append(jobs.pop(0))
    problems: list[str] = []
    for file, image in jobs:
        try:
            write_image(file, image())
        except Exception as exc:  # disk full, a file where a folder should be, an unknown --ext, …
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(f"cannot write {file}: {reason}")
    if not problems:
        return ""
    more = f" (and {len(problems) - 1} more files)" if len(problems) > 1 else ""
    kept = "" if any(p.startswith(f"cannot write {target}:") for p in problems) else f"; {target} was written"
    return f"{problems[0]}{more}{kept}"


def _span(r: options.Range) -> str:
    """'between 0 and 1' from a range's rule ('must be between 0 and 1')."""
    return r.describe_rule().removeprefix("must be ")


def _add_ray_options(p: argparse.ArgumentParser) -> None:
    """``restore --ray``: the same restore as a Ray Data pipeline (gfp_core.scale; needs Ray Data:
    ``pip install "ray[data]"``)."""
    g = p.add_argument_group(
        "archive scale (--ray)",
        "Run the restore as a resumable Ray Data pipeline: models load once per worker, a manifest in "
        "OUTPUT/.gfp-scale records each input's outcome, and running the same command again skips what is done.")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray: alone, a local Ray instance on this machine; with a cluster's ADDRESS "
                        "(host:port, ray://host:10001 or auto), on that cluster. Put it after the inputs, or "
                        "write --ray=ADDRESS")
    g.add_argument("--workers", type=int, metavar="N",
                   help="Ray workers, each with its own copy of the models (default: one per GPU on a cluster "
                        "with GPUs, else one per --worker-cpus CPUs)")
    g.add_argument("--worker-cpus", type=float, default=1, metavar="N",
                   help="CPUs (and torch threads) per worker (default 1)")
    g.add_argument("--ray-batch", type=int, default=4, metavar="N", help="inputs per call to a worker (default 4)")
    g.add_argument("--retries", type=int, default=2, metavar="N",
                   help="tries after the first before an input is listed as failed (default 2)")
    g.add_argument("--input-list", action="append", default=[], metavar="FILE",
                   help="a text file of inputs, one path, folder, glob or URL a line (can be repeated)")
    g.add_argument("--object-store-mb", type=int, default=512, metavar="MIB",
                   help="a local Ray instance's object store, in MiB (default 512)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gfp-core", description="GFPGAN face restoration toolkit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is loaded and from where")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list known models and where each is found locally")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("download", help="fetch model weights (Hugging Face Hub, then the official release)")
    p.add_argument("names", nargs="*", help="model names or aliases, e.g. v1.4")
    p.add_argument("--all", action="store_true", help="every known model")
    p.add_argument("--allow-unverified", action="store_true", help="accept a file whose SHA-256 does not match")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("convert", help="convert weights between .pth and .safetensors (verified bit for bit)")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help="format follows the suffix: .safetensors or .pth")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_convert)

    from .face.steady import DEFAULT_STRENGTH as DEFAULT_STEADY
    from .face.track import DEFAULT_STRENGTH
    from .video import VIDEO_SUFFIXES

    p = sub.add_parser(
        "restore", help="restore the faces in photos and videos (files, folders, globs)",
        description="Restore the faces in photos and videos. Results go to OUTPUT/restored_imgs/NAME.EXT, face "
                    "files to OUTPUT/cropped_faces, restored_faces and cmp, named after each input without its "
                    "suffix. Videos (" + " ".join(VIDEO_SUFFIXES) + ") go to OUTPUT/restored_videos/NAME.EXT "
                    "(.mp4 where their container cannot be written) with the same frames, frame rate, timing and "
                    "audio; an interrupted video resumes where it stopped when the same command is run again. "
                    f"Images are read as {', '.join(SUPPORTED_FORMAT_NAMES)} (by content, whatever the file's "
                    "name says). A file listed more than once (also through links or overlapping globs) is "
                    "restored once. Distinct inputs that would write the same output names (a/x.jpg and "
                    "b/x.jpg, or x.png and x.jpg) are refused before any work, naming them: restore them in "
                    "separate runs with different --output folders, or rename them. Outputs that exist are "
                    "skipped (--overwrite); every file is written to a temporary name first and renamed, so "
                    "an interrupted or failed write never leaves a half-written result. Exit status: 0 all "
                    "restored, 1 some images failed (each named with the reason), 2 a usage error (nothing "
                    "done), 3 model weights missing.")
    p.add_argument("inputs", nargs="*", help="image or video files, folders or glob patterns (with --ray also "
                                             "fsspec URLs such as s3://bucket/photos/)")
    p.add_argument("-o", "--output", type=Path, default=Path("results"), help="output folder (default: results)")
    p.add_argument("-m", "--model", default="v1.4",
                   help=f"model: {', '.join(options.MODELS.names)} (v1.4 is the default), another registry name "
                        "or a weights file")
    p.add_argument("-s", "--upscale", type=float, default=2,
                   help=f"output size factor, {_span(options.UPSCALE)} (default 2, as official)")
    p.add_argument("--fidelity", type=float, default=1.0,
                   help=f"{options.FIDELITY.what}; {_span(options.FIDELITY)} (default 1)")
    p.add_argument("--visibility", type=float, default=1.0,
                   help=f"{options.VISIBILITY.what}, 1 = restored; {_span(options.VISIBILITY)} (default 1)")
    p.add_argument("--detector", default="retinaface_resnet50", choices=options.DETECTORS.names,
                   help=options.DETECTORS.help())
    p.add_argument("--threshold", type=float, default=None,
                   help=f"detection score threshold: {options.THRESHOLD.what}, {_span(options.THRESHOLD)} "
                        "(default: 0.97 for ResNet-50, 0.9 for MobileNet)")
    p.add_argument("--detect-max-side", type=int, default=1280,
                   help="detect on a copy whose longest side is at most this (default 1280; 0 = full size)")
    p.add_argument("--min-face-size", type=float, default=0, help="ignore faces smaller than this (pixels)")
    p.add_argument("--select", default="all", choices=options.SELECTS.names,
                   help=f"{options.SELECTS.what}: {options.SELECTS.help()} (see --indices)")
    p.add_argument("--indices", help="face indices in reading order (left to right), e.g. 0,2")
    p.add_argument("--max-faces", type=int, help="restore at most this many faces per image")
    p.add_argument("--mask", default="box", choices=options.MASKS.names,
                   help=f"{options.MASKS.what}: {options.MASKS.help()}")
    p.add_argument("--parser", default="parsenet", choices=options.PARSERS.names,
                   help=f"for --mask parsing: {options.PARSERS.help()}")
    p.add_argument("--colour-match", action="store_true", help="match the restored face's colours to the original")
    p.add_argument("--bg-upsampler", default="lanczos", choices=options.BACKGROUNDS.names,
                   help=f"{options.BACKGROUNDS.what}: {options.BACKGROUNDS.help()} (Real-ESRGAN runs in tiles, "
                        "also on CPU)")
    p.add_argument("--bg-tile", type=int, default=400, help="Real-ESRGAN tile size in pixels (0 = whole image)")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned face crops: no detection")
    p.add_argument("--smoothing", type=float, default=DEFAULT_STRENGTH,
                   help=f"videos: {options.SMOOTHING.what}, 1 = most; {_span(options.SMOOTHING)} "
                        f"(default {DEFAULT_STRENGTH:g})")
    p.add_argument("--steady", type=float, default=DEFAULT_STEADY,
                   help=f"videos: {options.STEADY.what}, 1 = most; {_span(options.STEADY)} "
                        f"(default {DEFAULT_STEADY:g})")
    p.add_argument("--frames", action="store_true",
                   help="videos: also write every restored frame as PNG to OUTPUT/restored_frames/NAME/")
    p.add_argument("--codec", help="videos: encoder, libx264 (H.264: the default, .webm excepted), libvpx-vp9 "
                                   "(.webm), libx264rgb or ffv1 (lossless, .mkv)")
    p.add_argument("--crf", type=int, help="videos: quality, lower is better and larger (default 18 for H.264, "
                                           "visually lossless; 32 for VP9)")
    p.add_argument("--device", default="auto",
                   help=f"{options.DEVICES.what}: {', '.join(options.DEVICE_FORMS)} ({options.DEVICES.help()})")
    p.add_argument("--dtype", default="fp32", choices=options.DTYPES.names, help=options.DTYPES.help())
    p.add_argument("--backend", choices=options.BACKENDS.names,
                   help=f"{options.BACKENDS.what} (default auto, or $GFP_BACKEND): {options.BACKENDS.help()}")
    p.add_argument("--exact", action="store_true",
                   help="reference kernels: the official numerics bit for bit (default: faster kernels, "
                        "same result within float rounding)")
    p.add_argument("--ext", default="auto", help="image output format: auto (as the input), png, jpg, webp, tif")
    p.add_argument("--suffix", default="", help="added to restored file names")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger input images (and video frames) before decoding them "
                        f"(default {DEFAULT_MAX_PIXELS / 1e6:.0f} MP)")
    p.add_argument("--max-output-pixels", type=int, default=DEFAULT_MAX_OUTPUT_PIXELS,
                   help="refuse, before any work, images whose result (input pixels x upscale^2) would be "
                        f"larger (default {DEFAULT_MAX_OUTPUT_PIXELS / 1e6:.0f} MP, about 6 GB of memory at "
                        "the peak)")
    p.add_argument("--allow-unverified", action="store_true", help="accept weights whose SHA-256 does not match")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_ray_options(p)
    p.set_defaults(func=_cmd_restore)

    p = sub.add_parser("export-onnx", help="export a GFPGAN model to ONNX (stored noise) and check it in onnxruntime")
    p.add_argument("model", help="model name (v1.4, …) or weights file")
    p.add_argument("output", type=Path, help="the .onnx file to write")
    p.add_argument("--batch-size", type=int, default=1, help="faces per call, fixed in the graph (default 1)")
    p.add_argument("--fidelity", type=float, default=1.0, help="CS-SFT strength baked into the graph (default 1)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--allow-unverified", action="store_true", help="accept weights whose SHA-256 does not match")
    p.set_defaults(func=_cmd_export_onnx)

    p = sub.add_parser("random-weights", help="write seeded random weights in the official format (smoke runs)")
    p.add_argument("name", help="model name, e.g. v1.4")
    p.add_argument("output", type=Path, help=".pth (official layout) or .safetensors")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_random_weights)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    # library warnings (e.g. a detector fallback) read like the rest: one line, no source excerpt
    logging.captureWarnings(True)
    warnings.formatwarning = lambda message, *_args, **_kwargs: str(message)
    try:
        return args.func(args)
    except WeightsNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3  # distinct, so scripts can tell "weights missing" from other failures
    except GFPError as exc:  # bad option values name their flag (InvalidOptionError: gfp_core.options)
        options.in_words(exc, CLI_WORDS)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a value refused outside the option policy
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder named on the command line that cannot be read or written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: one line, the traceback with -v
        if args.verbose:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with -v to see where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
