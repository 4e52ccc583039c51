"""Interrupt latency of a restoration: how soon ``restore_aligned`` stops once a stop is requested.

A host application (ComfyUI's interrupt button, a cancelled web request, a time limit) requests a
stop from another thread; ``restore_aligned(..., should_stop=...)`` checks the request before every
U-Net block and StyleGAN2 resolution of the forward pass. Each trial starts one 512×512 face
(seeded random GFPGANv1Clean at the published size, the kernels ``load_model`` gives by default),
sets a ``threading.Event`` after a random delay within one forward, and measures the time from
``Event.set()`` until ``restore_aligned`` has raised. Reported as seconds and as a fraction of one
forward pass, with the cost of the checks themselves (the calls of a ``should_stop`` that never
stops, timed on their own).

    python bench/bench_interrupt.py                          # 12 trials, table + results/interrupt_cpu.json
    python bench/bench_interrupt.py --trials 4 --repeats 1 --json ''   # quick look, nothing written
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gfp_core.archs import GFPGANv1Clean  # noqa: E402
from gfp_core.restore import restore_aligned  # noqa: E402


#: should_stop calls per face: one before the batch, 22 in the forward pass of a 512-px model
CHECKS = 1 + 22


class Interrupted(Exception):
    pass


def build(exact: bool) -> GFPGANv1Clean:
    torch.manual_seed(0)
    model = GFPGANv1Clean().eval()
    return model if exact else model.optimize_for_inference()


def forward_seconds(model, face, repeats: int, should_stop=None) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        restore_aligned(model, face, batch_size=1, should_stop=should_stop)
        times.append(time.perf_counter() - start)
    return times


def trial(model, face, delay: float) -> float | None:
    """Seconds from the stop request to the exception, or None when the face finished first."""
    requested = threading.Event()
    at: list[float] = []

    def request() -> None:
        at.append(time.perf_counter())
        requested.set()

    def should_stop() -> None:
        if requested.is_set():
            raise Interrupted

    timer = threading.Timer(delay, request)
    timer.start()
    try:
        restore_aligned(model, face, batch_size=1, should_stop=should_stop)
    except Interrupted:
        return time.perf_counter() - at[0]
    finally:
        timer.cancel()
        timer.join()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3, help="timed whole forwards (the reference duration)")
    parser.add_argument("--exact", action="store_true", help="reference kernels (exact=True) instead of the fast ones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(REPO_ROOT / "bench" / "results" / "interrupt_cpu.json"),
                        help="where to write the results ('' for nowhere)")
    args = parser.parse_args()

    model = build(args.exact)
    face = np.random.default_rng(args.seed).integers(0, 256, (1, 512, 512, 3), dtype=np.uint8)
    forward_seconds(model, face, 1)  # warm-up

    # whole forwards; the cost of the checks is measured directly (a forward-to-forward comparison on
    # a shared machine only measures its load): one should_stop call, as the trials make it
    plain = forward_seconds(model, face, args.repeats)
    forward = statistics.median(plain)
    never = threading.Event()

    def should_stop() -> None:
        if never.is_set():
            raise Interrupted
    calls = 200_000
    start = time.perf_counter()
    for _ in range(calls):
        should_stop()
    call_s = (time.perf_counter() - start) / calls

    rng = random.Random(args.seed)
    latencies, finished = [], 0
    for _ in range(args.trials):
        latency = trial(model, face, rng.uniform(0.0, forward))
        if latency is None:
            finished += 1
        else:
            latencies.append(latency)

    fractions = sorted(x / forward for x in latencies)
    result = {
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "kernels": "exact" if args.exact else "fast",
        "forward_s": forward,
        "forward_s_all": plain,
        "checks_per_forward": CHECKS,
        "check_call_s": call_s,
        "check_overhead": CHECKS * call_s / forward,
        "trials": args.trials,
        "finished_before_stop": finished,
        "latency_s": sorted(latencies),
        "latency_fraction": fractions,
        "latency_fraction_median": statistics.median(fractions) if fractions else None,
        "latency_fraction_max": max(fractions) if fractions else None,
    }

    print(f"one forward (512 px, batch 1, {result['kernels']} kernels, {result['torch_threads']} threads): "
          f"{forward:.3f} s (median of {len(plain)}); {CHECKS} checks cost {CHECKS * call_s * 1e6:.1f} µs "
          f"({result['check_overhead']:.1e} of a forward)")
    print("| stops | median latency | max latency | median / forward | max / forward |")
    print("|---|---|---|---|---|")
    if latencies:
        print(f"| {len(latencies)} of {args.trials} | {statistics.median(latencies):.3f} s | {max(latencies):.3f} s | "
              f"{result['latency_fraction_median']:.3f} | {result['latency_fraction_max']:.3f} |")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written: {path}")


if __name__ == "__main__":
    main()
