"""The benchmark's correctness checks, without the timing (``bash bench/run.sh --quick``; run in CI).

On the benchmark's seeded v1.4-format weights and real photo:

1. one 512×512 forward: ours (default fast kernels) against the official model, max |Δ| ≤ 2e-4
   on the [-1, 1] scale (the exact kernels: 0);
2. the whole pipeline with ParseNet masks: our restored crops against the official model run
   on the same crops with its noise fixed, within 1/255 (at most one 8-bit level);
3. the ONNX export of the full-size restorer in onnxruntime against PyTorch, max |Δ| ≤ 1e-3.

Exits non-zero when a check fails.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import bench_forward as bf  # noqa: E402
import bench_pipeline as bp  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

FORWARD_TOLERANCE = 2e-4  # tests/test_parity.py FAST_ATOL


def main() -> int:
    from gfp_core.export_onnx import ONNX_TOLERANCE, check_onnx, export_onnx
    from gfp_core.pipeline import FaceRestorer
    from gfp_core.synthetic import write_random_checkpoint
    from gfp_core.weights import add_model_dir, load_model

    started = time.perf_counter()
    failures = []
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory(prefix="gfp_quick_") as tmp:
        weights = bp.save_weights(Path(tmp), seed=0, noise_strength=0.1)
        official = bf.official_source("clean", 0, 0.1, device)

        # 1. forward
        x = bf.make_input(1, 0, device)
        ours = load_model(weights, device="cpu")
        exact = load_model(weights, device="cpu", exact=True)
        with torch.inference_mode():
            ref = official(x, return_rgb=False, randomize_noise=False)[0]
            fast_diff = (ours(x, return_rgb=False)[0] - ref).abs().max().item()
            exact_diff = (exact(x, return_rgb=False)[0] - ref).abs().max().item()
        ok = fast_diff <= FORWARD_TOLERANCE and exact_diff == 0
        print(f"forward, 1 face: ours {fast_diff:.1e} (≤ {FORWARD_TOLERANCE:g}), exact=True {exact_diff:.1e} (= 0) "
              f"from the official output — {'ok' if ok else 'FAILED'}")
        failures += [] if ok else ["forward"]

        # 2. pipeline with parsing masks: restored crops within 1/255
        from gfp_core.synthetic import random_state_dict

        write_random_checkpoint("parsenet", Path(tmp) / "parsing_parsenet.pth", seed=0)
        add_model_dir(tmp, kinds=["parsing"])
        photo = bp.make_photo()
        faces = bp.find_faces(photo, device)
        restorer = FaceRestorer(weights, detector="embedded", upscale=bp.UPSCALE, mask="parsing", device="cpu",
                                allow_unverified=True)
        result = restorer.restore(photo, faces=faces)
        official_restorer = bp.official_restorer(weights, device, random_state_dict("parsenet", seed=0))
        check = bp.restored_crop_check(official_restorer, result)
        ok = check["max"] <= 1 and result.image.shape == (2048, 2048, 3)
        print(f"pipeline, {len(faces)} faces, parsing masks: restored crops differ from the official model's by at "
              f"most {check['max']:.0f} 8-bit level(s), {check['share_differing']:.3%} of values — "
              f"{'ok' if ok else 'FAILED'}")
        failures += [] if ok else ["pipeline"]

        # 3. ONNX
        path = export_onnx(exact, Path(tmp) / "gfpgan.onnx")
        onnx = check_onnx(path, exact, faces=x)
        ok = onnx.max_abs_diff <= ONNX_TOLERANCE
        print(f"ONNX export in onnxruntime: max |Δ| {onnx.max_abs_diff:.1e} from PyTorch (≤ {ONNX_TOLERANCE:g}) — "
              f"{'ok' if ok else 'FAILED'}")
        failures += [] if ok else ["onnx"]
    print(f"{'all checks passed' if not failures else 'FAILED: ' + ', '.join(failures)} "
          f"({time.perf_counter() - started:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
