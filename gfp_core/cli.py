"""Command line: ``python -m gfp_core`` (or ``gfp-core``) models | download | convert | restore | random-weights."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from .device import DTYPE_NAMES
from .errors import GFPError, WeightsNotFoundError


def _cmd_models(args: argparse.Namespace) -> int:
    from .weights.registry import MODELS
    from .weights.resolve import find_local, model_dirs

    rows = []
    for spec in MODELS:
        local = find_local(spec)
        where = None if local is None else f"{local[0]}" + (" (Hugging Face cache)" if local[1] == "hf-cache" else "")
        rows.append({"name": spec.name, "aliases": list(spec.aliases), "kind": spec.kind, "arch": spec.arch,
                     "file": spec.filename, "found": where, "sha256": spec.sha256, "url": spec.url,
                     "hub": [str(h) for h in spec.hub_sources()], "license": spec.license,
                     "description": spec.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        aliases = f" ({', '.join(r['aliases'])})" if r["aliases"] else ""
        status = f"found: {r['found']}" if r["found"] else "not downloaded"
        print(f"{r['name']:<{width}}  {r['kind']:<11} {r['file']}{aliases}\n{'':<{width}}  {status}"
              f"{'' if r['sha256'] else '  [no published SHA-256]'}")
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
        check = "verified" if resolved.verified else "not verified (no published SHA-256)"
        print(f"{resolved.spec.name if resolved.spec else name}: {resolved.path} [{resolved.source}, {check}]")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .weights.convert import convert_checkpoint

    out = convert_checkpoint(args.input, args.output, overwrite=args.overwrite)
    print(f"wrote {out} (round trip verified bit for bit)")
    return 0


def _cmd_random_weights(args: argparse.Namespace) -> int:
    from .synthetic import write_random_checkpoint

    out = write_random_checkpoint(args.name, args.output, seed=args.seed)
    print(f"wrote seeded random weights for {args.name} to {out} (for smoke runs: output is not a restored face)")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    import numpy as np

    from .archs.sft import check_fidelity
    from .image import load_rgb, save_rgb
    from .restore import restore_aligned
    from .weights.loader import load_model

    check_fidelity(args.fidelity)  # option errors before any work
    model = load_model(args.model, device=args.device, dtype=args.dtype, allow_unverified=args.allow_unverified)
    info = model.gfp_info
    print(f"model: {info['name'] or info['arch']} from {info['path']} ({info['source']})", file=sys.stderr)
    args.output.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in args.inputs:
        try:
            face = load_rgb(path)
            size = model.out_size
            if face.shape[:2] != (size, size):
                raise GFPError(f"{path}: aligned face images must be {size}x{size}, got "
                               f"{face.shape[1]}x{face.shape[0]} (whole photos come with the face pipeline)")
            restored = restore_aligned(model, face[None], fidelity=args.fidelity)[0]
            out = save_rgb(args.output / f"{Path(path).stem}{args.suffix}.png", restored)
            save_rgb(args.output / f"{Path(path).stem}_compare.png", np.concatenate([face, restored], axis=1))
            print(f"{path} -> {out}")
        except GFPError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
    print(f"{len(args.inputs) - failed} restored, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


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

    p = sub.add_parser("restore", help="restore aligned 512x512 face images")
    p.add_argument("inputs", nargs="+", type=Path, help="aligned face images")
    p.add_argument("-o", "--output", type=Path, default=Path("results"), help="output folder (default: results)")
    p.add_argument("-m", "--model", default="v1.4", help="model name (v1, v1.2, v1.3, v1.4) or weights file")
    p.add_argument("--fidelity", type=float, default=1.0,
                   help="CS-SFT strength: 1 = published model, 0 = generative prior only (default 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="fp32", choices=DTYPE_NAMES)
    p.add_argument("--suffix", default="_restored", help="added to output file names")
    p.add_argument("--allow-unverified", action="store_true", help="accept weights whose SHA-256 does not match")
    p.set_defaults(func=_cmd_restore)

    p = sub.add_parser("random-weights", help="write seeded random weights in the official format (smoke runs)")
    p.add_argument("name", help="model name, e.g. v1.4")
    p.add_argument("output", type=Path, help=".pth (official layout) or .safetensors")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_random_weights)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except WeightsNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3  # distinct, so scripts can tell "weights missing" from other failures
    except GFPError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad option values (device, dtype, fidelity)
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
