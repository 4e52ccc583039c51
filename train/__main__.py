"""Command line of the trainer.

    python -m train --config RECIPE [key.path=value ...] [--resume [CHECKPOINT]]
    torchrun --nproc_per_node N -m train --config RECIPE ...
    python -m train export RUN_OR_CHECKPOINT OUTPUT.safetensors
    python -m train prepare PHOTOS... --output FOLDER [--size 512]
    python -m train testset HQ_PHOTOS OUT [--seed 0] [--aligned] [--wild]
    python -m train evaluate TESTSET --model v1.4 [--model OTHER ...] [--output DIR]
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gfp_core.errors import GFPError


def _train(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description="Train or fine-tune GFPGAN.")
    parser.add_argument("--config", "-c", required=True,
                        help="recipe YAML file, or a bundled recipe: gfpgan_v1, finetune, tiny_cpu")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value",
                        help="settings that replace the recipe's, e.g. data.train=faces/ train.iterations=1000")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                        help="continue the run in the output folder (latest checkpoint) or from CHECKPOINT")
    args = parser.parse_args(argv)
    from .config import load_config
    from .trainer import run

    cfg = load_config(args.config, args.overrides)
    summary = run(cfg, args.resume)
    if summary.get("stopped"):
        print(f"stopped at iteration {summary['iteration']}")
    return 0


def _export(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m train export",
                                     description="Export a trained generator for gfp_core (.safetensors).")
    parser.add_argument("source", help="a run folder (its latest checkpoint) or a checkpoint file")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--network", default="g_ema", choices=("g_ema", "g"),
                        help="the EMA generator (default, what the official releases hold) or the raw one")
    args = parser.parse_args(argv)
    from .export import export_checkpoint

    print(export_checkpoint(args.source, args.output, args.network))
    return 0


def _prepare(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m train prepare",
                                     description="Detect, align and crop the faces of photos for training.")
    parser.add_argument("sources", nargs="+", help="photos or folders of photos")
    parser.add_argument("--output", "-o", required=True, help="folder for the aligned face crops")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--detector", default="embedded",
                        help="embedded (default, needs no download), retinaface_resnet50, retinaface_mobile0.25")
    parser.add_argument("--min-eye-distance", type=float, default=0.0,
                        help="skip faces whose eyes are closer than this many pixels (too small to learn from)")
    parser.add_argument("--jitter", type=int, default=0, metavar="N",
                        help="also write N crops per face with the landmarks moved slightly (tiny data sets)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --jitter moves")
    args = parser.parse_args(argv)
    from .prepare import prepare_faces

    written = prepare_faces(args.sources, args.output, args.size, args.detector, args.min_eye_distance,
                            jitter=args.jitter, seed=args.seed)
    print(f"{len(written)} face(s) written to {args.output}")
    return 0


def _testset(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train testset",
        description="A test set from your own high-quality faces: aligned, degraded as in the paper (blur, "
                    "down-sampling, noise, JPEG) with a fixed seed, written as pairs with a manifest.")
    parser.add_argument("source", help="a folder of high-quality photos (or a list file)")
    parser.add_argument("output", help="a new folder for gt/, lq/ and manifest.json")
    parser.add_argument("--seed", type=int, default=0, help="the same folder and seed give the same test set")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--aligned", action="store_true", help="the photos are aligned face crops already")
    parser.add_argument("--wild", action="store_true",
                        help="degraded photos without ground truth: their faces are aligned into lq/ only")
    parser.add_argument("--detector", default="embedded",
                        help="embedded (default, needs no download), retinaface_resnet50, retinaface_mobile0.25")
    args = parser.parse_args(argv)
    from .testset import build_testset

    manifest = build_testset([args.source], args.output, seed=args.seed, size=args.size, aligned=args.aligned,
                             wild=args.wild, detector=args.detector)
    n = len(manifest["pairs"])
    kind = f"degraded face{'s' * (n != 1)} (no ground truth)" if args.wild else f"pair{'s' * (n != 1)} (seed {args.seed})"
    print(f"{n} {kind} written to {args.output}")
    return 0


def _evaluate(argv: Sequence[str]) -> int:
    from .measures import MEASURES

    parser = argparse.ArgumentParser(
        prog="python -m train evaluate",
        description="Restore a test set with one or more models and print the paper's measures for each.")
    parser.add_argument("testset", help="a folder made by python -m train testset")
    parser.add_argument("--model", "-m", action="append", required=True,
                        help="a registry name (v1.4, v1.3, ...) or a weights file; repeat to compare models")
    parser.add_argument("--output", "-o", help="write results.json, results.csv, results.md (and sheets) here")
    parser.add_argument("--measures", nargs="+", default=list(MEASURES), choices=MEASURES)
    parser.add_argument("--sheet-every", type=int, default=0, metavar="N",
                        help="with --output: a contact sheet (input | each model | ground truth) per N faces")
    parser.add_argument("--fidelity", type=float, default=1.0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--backend", default=None, help="auto, torch or openvino (default: auto)")
    parser.add_argument("--identity-weights", default="arcface_resnet18",
                        help="ArcFace ResNet-18 weights for the identity measure (registry name or file)")
    parser.add_argument("--lpips-weights", default="alexnet_imagenet",
                        help="torchvision's AlexNet weights for LPIPS (registry name or file)")
    parser.add_argument("--niqe-params", default="niqe_pris_params",
                        help="NIQE's pristine model, niqe_pris_params.npz (registry name or file)")
    parser.add_argument("--fid-weights", default="inception_fid",
                        help="the FID Inception weights, pytorch-fid's pt_inception-2015-12-05 (registry name or file)")
    parser.add_argument("--fid-stats", default=None, metavar="NPZ",
                        help="FID against these statistics (mu, sigma: pytorch-fid's --save-stats file, e.g. of "
                             "FFHQ) instead of the set's ground truth; gives wild sets an FID")
    parser.add_argument("--with-inputs", action="store_true",
                        help="add a row for the degraded inputs as they are (the paper's 'Input' row)")
    parser.add_argument("--allow-unverified", action="store_true", help="accept weights whose SHA-256 does not match")
    args = parser.parse_args(argv)
    if args.sheet_every and not args.output:
        parser.error("--sheet-every needs --output")
    from .evaluate import evaluate, markdown_table

    report = evaluate(args.testset, args.model, measures=args.measures, device=args.device, backend=args.backend,
                      fidelity=args.fidelity, allow_unverified=args.allow_unverified or None,
                      identity_weights=args.identity_weights, lpips_weights=args.lpips_weights,
                      niqe_params=args.niqe_params, fid_weights=args.fid_weights, fid_stats=args.fid_stats,
                      with_inputs=args.with_inputs, output=args.output, sheet_every=args.sheet_every)
    print(markdown_table(report), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"export": _export, "prepare": _prepare, "testset": _testset, "evaluate": _evaluate}
    try:
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return _train(argv)
    except GFPError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
