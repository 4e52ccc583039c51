"""Forward-pass benchmark of GFPGAN on 512×512 aligned faces: ours vs the official code vs spandrel.

Compared in the same process, on the same seeded random weights and the same input:

* clean architecture (GFPGANv1.2 / v1.3 / v1.4): ``gfp_core`` ``GFPGANv1Clean``, the official
  ``gfpgan`` ``GFPGANv1Clean`` and spandrel's GFPGAN (a copy of the official clean arch);
* original architecture (GFPGANv1): ``gfp_core`` ``GFPGANv1`` and the official ``GFPGANv1``.

The official model of each architecture is built from a seed (``tests/official.py``) and its
``state_dict`` is loaded, strictly, into the other implementations. After warm-up runs the
implementations are timed round-robin (the starting implementation rotates every round), so
slow drifts of the machine (thermal state, background load) affect all of them alike. Reported
per implementation and batch size: median and minimum seconds per forward, median seconds per
face and the median relative to the official implementation of the same architecture. A sanity
column gives the largest absolute difference of each output from the official one, and a
contention column the largest share of the CPUs that other processes used during a timed forward
(from ``/proc/stat``; a warning is printed when it exceeds 5 %).

``--memory`` additionally runs every implementation once in a fresh subprocess and reports the
peak memory that the forward pass adds on top of the loaded model: peak RSS on CPU
(``resource.getrusage``, with the kernel's high-water mark reset just before the forward where
``/proc/self/clear_refs`` allows it), ``torch.cuda.max_memory_allocated`` on CUDA.

Example::

    python bench/bench_forward.py                      # CPU, batch 1 and 4
    python bench/bench_forward.py --device cuda --repeats 20 --memory --json bench/results/forward_cuda.json
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from gfp_core.archs import GFPGANv1, GFPGANv1Clean  # noqa: E402
from gfp_core.device import resolve_dtype  # noqa: E402
from official import official_gfpgan  # noqa: E402  (tests/official.py: imports and patches gfpgan/basicsr)

Forward = Callable[[torch.Tensor], torch.Tensor]

FACE_SIZE = 512
#: share of the machine's CPUs busy with other processes above which a timing is flagged
CONTENTION_WARNING = 0.05
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "forward_cpu.json"


@dataclass(frozen=True)
class Impl:
    """One implementation under test."""

    key: str  # command-line name
    arch: str  # "clean" or "original" (the argument of official_gfpgan)
    label: str  # shown in the table
    dtype: str = "fp32"  # ours only: fp32, bf16, fp16 (OpenVINO: its inference precision)
    exact: bool = False  # ours only: reference kernels (bit-identical with the official code)
    runtime: str = "torch"  # or "onnxruntime" / "openvino" (our exported graph) / "backend" (load_model's)

    @property
    def is_official(self) -> bool:
        return self.key.startswith("official")

    @property
    def is_ours(self) -> bool:
        return self.key.startswith("ours")


IMPLS: tuple[Impl, ...] = (
    Impl("ours-clean", "clean", "ours GFPGANv1Clean"),
    Impl("ours-clean-exact", "clean", "ours GFPGANv1Clean, exact=True", exact=True),
    Impl("ours-clean-bf16", "clean", "ours GFPGANv1Clean bf16", dtype="bf16"),
    Impl("ours-clean-fp16", "clean", "ours GFPGANv1Clean fp16", dtype="fp16"),
    Impl("onnxruntime-clean", "clean", "ours exported, onnxruntime CPU", exact=True, runtime="onnxruntime"),
    Impl("openvino-clean", "clean", "ours exported, OpenVINO CPU", exact=True, runtime="openvino"),
    Impl("openvino-clean-bf16", "clean", "ours exported, OpenVINO CPU bf16", dtype="bf16", exact=True,
         runtime="openvino"),
    Impl("ours-clean-openvino", "clean", "ours, backend='openvino' (3 graphs: bf16, fp32 coarse prior, bf16)",
         runtime="backend"),
    Impl("official-clean", "clean", "official GFPGANv1Clean"),
    Impl("spandrel-clean", "clean", "spandrel GFPGAN"),
    Impl("ours-original", "original", "ours GFPGANv1"),
    Impl("official-original", "original", "official GFPGANv1"),
)
#: what runs without --impls (spandrel's arch is a copy of the official one: --impls adds it)
DEFAULT_IMPLS = {
    "cpu": ("ours-clean", "ours-clean-exact", "ours-clean-bf16", "onnxruntime-clean", "ours-clean-openvino",
            "official-clean", "ours-original", "official-original"),
    "cuda": ("ours-clean", "ours-clean-fp16", "ours-clean-bf16", "official-clean", "ours-original",
             "official-original"),
}
IMPLS_BY_KEY = {impl.key: impl for impl in IMPLS}


@dataclass
class Loaded:
    """A built model with the call used for timing and the deterministic call used for checking."""

    impl: Impl
    module: nn.Module
    timed: Forward
    checked: Forward
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    impl: str
    arch: str
    label: str
    batch: int
    times_s: list[float]
    median_s: float
    min_s: float
    median_per_face_s: float
    ratio_vs_official: float | None = None
    other_cpu: list[float | None] = field(default_factory=list)
    max_abs_diff_vs_official: float | None = None
    mean_abs_diff_vs_official: float | None = None
    memory: dict[str, float | str] | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# building the models


def _official_upfirdn2d_fallback(device: torch.device) -> list[str]:
    """Route the official FIR resampling to its PyTorch path on CUDA when its extension is absent.

    basicsr only has a compiled CUDA kernel for ``upfirdn2d`` on GPUs; without it the official
    original architecture cannot run there. Returns the notes to attach to its results.
    """
    if device.type != "cuda":
        return []
    import basicsr.archs.stylegan2_arch as stylegan2_arch
    import basicsr.ops.upfirdn2d.upfirdn2d as upfirdn2d_mod

    if hasattr(upfirdn2d_mod, "upfirdn2d_ext"):
        return []

    def upfirdn2d_native(input: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
                         pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
        return upfirdn2d_mod.upfirdn2d_native(input, kernel, up, up, down, down, pad[0], pad[1], pad[0], pad[1])

    stylegan2_arch.upfirdn2d = upfirdn2d_native
    return ["official upfirdn2d: PyTorch fallback (basicsr CUDA extension not built)"]


def official_source(arch: str, seed: int, noise_strength: float, device: torch.device) -> nn.Module:
    """The seeded official model whose weights every implementation of ``arch`` loads."""
    return official_gfpgan(arch, seed, noise_strength).to(device)


def kernel_note(model: nn.Module) -> str:
    channels_last = getattr(model, "memory_format", None) == torch.channels_last
    if getattr(model, "fast_kernels", False):
        return "channels-last, wide 3×3 layers in float32 Winograd" if channels_last else "Winograd 3×3 (NNPACK), NCHW"
    return "channels-last" if channels_last else "reference"


def graphed(forward: Forward) -> Forward:
    """``forward`` replayed from a CUDA graph captured per input shape (static input/output buffers)."""
    graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def run(x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in graphs:
            static_x = x.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up outside the graph, as capture requires
                    forward(static_x)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = forward(static_x)
            graphs[key] = (graph, static_x, static_out)
        graph, static_x, static_out = graphs[key]
        static_x.copy_(x)
        graph.replay()
        return static_out

    return run


def _exported(model: nn.Module, open_graph: Callable[[Path], Callable[[np.ndarray], np.ndarray]]) -> Forward:
    """A forward through our model exported with :func:`gfp_core.export_onnx.export_onnx` (one graph
    per batch size, made on first use, i.e. in the warm-up) and run by ``open_graph(path)``."""
    import tempfile

    from gfp_core.export_onnx import export_onnx

    folder = Path(tempfile.mkdtemp(prefix="gfp_onnx_"))
    graphs: dict[int, Callable[[np.ndarray], np.ndarray]] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        if batch not in graphs:
            graphs[batch] = open_graph(export_onnx(model, folder / f"gfpgan_b{batch}.onnx", batch_size=batch,
                                                   overwrite=True))
        return torch.from_numpy(np.asarray(graphs[batch](x.float().cpu().numpy())))

    return forward


def build_onnxruntime(impl: Impl, model: nn.Module) -> Loaded:
    """The exported graph run by onnxruntime's CPU provider with the torch thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1

    def open_graph(path: Path) -> Callable[[np.ndarray], np.ndarray]:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda faces: session.run(None, {"faces": faces})[0]

    forward = _exported(model, open_graph)
    return Loaded(impl, model, forward, forward, [f"onnxruntime {ort.__version__}, exported with fixed noise"])


def build_openvino(impl: Impl, model: nn.Module) -> Loaded:
    """The exported graph compiled by OpenVINO's CPU plugin (it runs on AMD and Intel CPUs alike)
    for latency, with the torch thread count, in ``impl.dtype`` (fp32 unless asked: its own default
    on CPUs with bf16 units is bf16)."""
    import openvino as ov

    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": torch.get_num_threads(),
              "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[impl.dtype]}

    def open_graph(path: Path) -> Callable[[np.ndarray], np.ndarray]:
        compiled = core.compile_model(str(path), "CPU", config)
        return lambda faces: compiled(faces)[0]

    forward = _exported(model, open_graph)
    return Loaded(impl, model, forward, forward,
                  [f"OpenVINO {ov.__version__.split('-')[0]}, exported with fixed noise, {impl.dtype}"])


def build_backend(impl: Impl, model: nn.Module) -> Loaded:
    """What ``load_model(..., backend='openvino')`` runs (:mod:`gfp_core.backends.openvino`): exported
    and checked when built (a cache under ``$GFP_HOME``, which :func:`main` points at a temporary
    folder shared with the memory workers), so the timings hold no export."""
    from gfp_core.backends.openvino import accelerate

    restorer = accelerate(model)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return restorer(x.float(), return_rgb=False)[0]

    record = restorer.record
    return Loaded(impl, restorer, forward, forward,
                  [f"OpenVINO {record.openvino}; first-use check: max difference {record.max_abs_diff} by fidelity"])


def build(impl: Impl, source: nn.Module, device: torch.device, spandrel_call: str,
          cuda_graphs: bool = False) -> Loaded:
    """Build ``impl`` on ``device`` with the weights of ``source`` (the official model of its arch)."""
    if impl.is_official:
        notes = ["fused LeakyReLU: pure-PyTorch patch from tests/official.py"] if impl.arch == "original" else []
        if impl.arch == "original":
            notes += _official_upfirdn2d_fallback(device)

        def official_forward(x: torch.Tensor) -> torch.Tensor:
            return source(x, return_rgb=False, randomize_noise=False)[0]

        return Loaded(impl, source, official_forward, official_forward, notes)

    state_dict = source.state_dict()
    if impl.is_ours or impl.runtime != "torch":
        model: nn.Module = (GFPGANv1Clean() if impl.arch == "clean" else GFPGANv1())
        model.load_state_dict(state_dict, strict=True)
        dtype = resolve_dtype(impl.dtype if impl.runtime == "torch" else "fp32", device)
        model = model.eval().requires_grad_(False).to(device=device, dtype=dtype)
        if not impl.exact:  # what load_model does unless exact=True
            model.optimize_for_inference()
        if impl.runtime == "onnxruntime":
            return build_onnxruntime(impl, model)
        if impl.runtime == "openvino":
            return build_openvino(impl, model)
        if impl.runtime == "backend":
            return build_backend(impl, model)

        def ours_forward(x: torch.Tensor) -> torch.Tensor:
            return model(x.to(dtype), return_rgb=False)[0].float()

        notes = [] if impl.exact else [f"kernels: {kernel_note(model)}"]
        if cuda_graphs and device.type == "cuda":
            return Loaded(impl, model, graphed(ours_forward), ours_forward, notes + ["CUDA graph"])
        return Loaded(impl, model, ours_forward, ours_forward, notes)

    import spandrel

    descriptor = spandrel.ModelLoader(device=device).load_from_state_dict(state_dict)
    model = descriptor.model.eval()

    def spandrel_matched(x: torch.Tensor) -> torch.Tensor:
        return model(x, return_rgb=False, randomize_noise=False)[0]

    def spandrel_descriptor(x: torch.Tensor) -> torch.Tensor:
        # what spandrel's GFPGAN descriptor runs: call_fn=lambda model, image: model(image)[0]
        # (its defaults return_rgb=True, randomize_noise=True), without the descriptor's clamp/pad
        return model(x)[0]

    if spandrel_call == "descriptor":
        notes = ["timed as spandrel's descriptor calls it: model(x)[0] (return_rgb=True, randomize_noise=True)"]
        return Loaded(impl, model, spandrel_descriptor, spandrel_matched, notes)
    return Loaded(impl, model, spandrel_matched, spandrel_matched,
                  ["timed as model(x, return_rgb=False, randomize_noise=False)[0]"])


def build_all(impls: list[Impl], seed: int, noise_strength: float, device: torch.device,
              spandrel_call: str, cuda_graphs: bool = False) -> dict[str, Loaded]:
    loaded: dict[str, Loaded] = {}
    for arch in ("clean", "original"):
        members = [impl for impl in impls if impl.arch == arch]
        if not members:
            continue
        source = official_source(arch, seed, noise_strength, device)
        for impl in members:
            loaded[impl.key] = build(impl, source, device, spandrel_call, cuda_graphs)
        del source
    return loaded


def make_input(batch: int, seed: int, device: torch.device) -> torch.Tensor:
    """Seeded faces in [-1, 1] (the networks' input range), ``[batch, 3, 512, 512]`` fp32."""
    generator = torch.Generator().manual_seed(seed + 1000 + batch)
    return (torch.rand(batch, 3, FACE_SIZE, FACE_SIZE, generator=generator) * 2 - 1).to(device)


# --------------------------------------------------------------------------------------------
# timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _system_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy (incl. hypervisor steal), from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user … steal, without guest time


def _self_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Timing:
    """One timed forward: wall seconds, and the share of the machine's CPUs busy with other work."""

    seconds: float
    other_cpu: float | None


def time_once(forward: Forward, x: torch.Tensor, device: torch.device) -> Timing:
    synchronize(device)
    busy_start, self_start = _system_busy_s(), _self_cpu_s()
    start = time.perf_counter()
    forward(x)
    synchronize(device)
    seconds = time.perf_counter() - start
    busy_end, self_end = _system_busy_s(), _self_cpu_s()
    other = None
    if busy_start is not None and busy_end is not None:
        foreign = (busy_end - busy_start) - (self_end - self_start)
        other = min(1.0, max(0.0, foreign / (seconds * (os.cpu_count() or 1))))
    return Timing(seconds, other)


@torch.inference_mode()
def max_abs_diffs(loaded: dict[str, Loaded], x: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Largest and mean absolute output difference of every implementation from the official one of its arch."""
    outputs = {key: item.checked(x).float().cpu() for key, item in loaded.items()}
    diffs: dict[str, tuple[float, float]] = {}
    for key, item in loaded.items():
        reference = f"official-{item.impl.arch}"
        if reference in outputs:
            diff = (outputs[key] - outputs[reference]).abs()
            diffs[key] = (diff.max().item(), diff.mean().item())
    return diffs


@torch.inference_mode()
def time_round_robin(loaded: dict[str, Loaded], x: torch.Tensor, warmup: int, repeats: int,
                     device: torch.device) -> dict[str, list[Timing]]:
    """Warm every implementation up, then time them in rotating round-robin order."""
    keys = list(loaded)
    for _ in range(warmup):
        for key in keys:
            loaded[key].timed(x)
    synchronize(device)
    timings: dict[str, list[Timing]] = {key: [] for key in keys}
    for round_idx in range(repeats):
        shift = round_idx % len(keys)
        for key in keys[shift:] + keys[:shift]:
            timings[key].append(time_once(loaded[key].timed, x, device))
    return timings


# --------------------------------------------------------------------------------------------
# memory (one fresh subprocess per implementation and batch size)


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_kib() -> float:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 1024 if sys.platform == "darwin" else float(maxrss)  # bytes on macOS, KiB on Linux


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap memory back to the OS (glibc), so RSS is a clean baseline."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM, Linux ≥ 4.0) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def measure_memory_here(impl: Impl, batch: int, seed: int, noise_strength: float, device: torch.device,
                        spandrel_call: str) -> dict[str, float | str]:
    """Peak memory added by one (first) forward of ``impl``, measured in this process."""
    loaded = build_all([impl], seed, noise_strength, device, spandrel_call)[impl.key]
    weights = sum(t.numel() * t.element_size() for t in loaded.module.state_dict().values())
    x = make_input(batch, seed, device)
    _release_free_memory()
    mib = 1024 ** 2
    with torch.inference_mode():
        if device.type == "cuda":
            synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            loaded.timed(x)
            synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
            return {"method": "torch.cuda.max_memory_allocated", "weights_mib": weights / mib,
                    "peak_delta_mib": (peak - before) / mib, "peak_total_mib": peak / mib}
        reset = _reset_peak_rss()
        rss_before = _status_kib("VmRSS")
        maxrss_before = _maxrss_kib()
        loaded.timed(x)
        hwm_after = _status_kib("VmHWM")
        maxrss_after = _maxrss_kib()
    if reset and rss_before is not None and hwm_after is not None:
        # per-process high-water mark, reset just before the forward (ru_maxrss can keep a stale
        # maximum: the kernel folds it into the process totals whenever a thread exits)
        method, baseline, peak = "VmHWM after resetting the high-water mark", float(rss_before), float(hwm_after)
    else:
        method, baseline, peak = "ru_maxrss delta (lower bound)", maxrss_before, maxrss_after
    return {"method": method, "weights_mib": weights / mib, "rss_before_mib": baseline / 1024,
            "peak_delta_mib": max(0.0, peak - baseline) / 1024, "peak_total_mib": peak / 1024}


def measure_memory(impl: Impl, batch: int, args: argparse.Namespace) -> dict[str, float | str]:
    """Run :func:`measure_memory_here` in a fresh interpreter and return what it reports."""
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", impl.key,
               "--batches", str(batch), "--device", args.device, "--seed", str(args.seed),
               "--noise-strength", str(args.noise_strength), "--spandrel-call", args.spandrel_call]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"method": "failed", "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# reporting


def environment(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, object] = {
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "device": str(device), "dtype": "fp32 unless the implementation says", "face_size": FACE_SIZE,
        "batches": args.batches,
        "warmup": args.warmup, "repeats": args.repeats, "seed": args.seed,
        "noise_strength": args.noise_strength, "spandrel_call": args.spandrel_call,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    for package in ("gfpgan", "basicsr", "spandrel"):
        try:
            from importlib.metadata import version

            info[package] = version(package)
        except Exception:  # noqa: BLE001 - informational only
            info[package] = None
    return info


def max_other_cpu(shares: Iterable[float | None]) -> float | None:
    """The largest share of the CPUs other processes took over some timed runs (None: unknown)."""
    return max((share for share in shares if share is not None), default=None)


def markdown_table(results: list[Result]) -> str:
    lines = ["| arch | implementation | batch | median s/forward | min s/forward | ms/face | faces/s "
             "| speed-up vs official | max / mean abs diff | other CPU load |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        speedup = f"{1 / r.ratio_vs_official:.2f}×" if r.ratio_vs_official else "–"
        diff = "–"
        if r.max_abs_diff_vs_official is not None:
            diff = f"{r.max_abs_diff_vs_official:.1e} / {r.mean_abs_diff_vs_official:.1e}"
        load = max_other_cpu(r.other_cpu)
        load_text = f"{load:.0%}" if load is not None else "–"
        lines.append(f"| {r.arch} | {r.label} | {r.batch} | {r.median_s:.3f} | {r.min_s:.3f} "
                     f"| {1000 * r.median_per_face_s:.0f} | {1 / r.median_per_face_s:.2f} | {speedup} | {diff} "
                     f"| {load_text} |")
    return "\n".join(lines)


def memory_table(results: list[Result]) -> str:
    lines = ["| arch | implementation | batch | weights MiB | forward peak Δ MiB | process peak MiB |",
             "|---|---|---:|---:|---:|---:|"]
    for r in results:
        m = r.memory or {}
        if "peak_delta_mib" not in m:
            lines.append(f"| {r.arch} | {r.label} | {r.batch} | – | failed: {m.get('error', '')} | – |")
            continue
        lines.append(f"| {r.arch} | {r.label} | {r.batch} | {m['weights_mib']:.0f} | {m['peak_delta_mib']:.0f} "
                     f"| {m['peak_total_mib']:.0f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="batch sizes (default: 1 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per implementation and batch")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards per implementation and batch")
    parser.add_argument("--impls", nargs="+", choices=list(IMPLS_BY_KEY), default=None,
                        help="implementations to run (default: " + "; ".join(
                            f"{device}: {' '.join(keys)}" for device, keys in DEFAULT_IMPLS.items()) + ")")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="CUDA only: replay our fp16/bf16/fp32 forward from a captured CUDA graph")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    parser.add_argument("--noise-strength", type=float, default=0.1,
                        help="StyleGAN2 noise strengths (0 in a fresh model; nonzero in real checkpoints)")
    parser.add_argument("--spandrel-call", choices=("descriptor", "matched"), default="descriptor",
                        help="descriptor: time spandrel as its descriptor calls it, model(x)[0]; matched: "
                             "with return_rgb=False, randomize_noise=False like the others")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory, one subprocess each")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default: {DEFAULT_JSON})")
    parser.add_argument("--memory-worker", choices=list(IMPLS_BY_KEY), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or min(args.batches) < 1:
        parser.error("--repeats and --batches must be ≥ 1, --warmup ≥ 0")
    if args.impls is None:
        args.impls = list(DEFAULT_IMPLS["cuda" if args.device.startswith("cuda") else "cpu"])
        from gfp_core.backends.openvino import available

        if not available():  # an optional backend: its row is left out where it is not installed
            args.impls = [key for key in args.impls if IMPLS_BY_KEY[key].runtime != "backend"]
    if not args.device.startswith("cuda"):
        args.impls = [key for key in args.impls if IMPLS_BY_KEY[key].dtype != "fp16"]  # no fp16 kernels on CPUs
    if any(IMPLS_BY_KEY[key].runtime == "onnxruntime" for key in args.impls) and args.warmup < 1:
        parser.error("the onnxruntime implementation exports its graph in the warm-up: use --warmup ≥ 1")
    return args


def setup_torch(args: argparse.Namespace) -> torch.device:
    """Apply --threads and check that the requested --device exists."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    return device


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = setup_torch(args)

    if args.memory_worker:
        impl = IMPLS_BY_KEY[args.memory_worker]
        print(json.dumps(measure_memory_here(impl, args.batches[0], args.seed, args.noise_strength, device,
                                             args.spandrel_call)))
        return

    started = time.perf_counter()
    impls = [IMPLS_BY_KEY[key] for key in IMPLS_BY_KEY if key in args.impls]
    if any(impl.runtime == "backend" for impl in impls) and "GFP_BENCH_KEEP_HOME" not in os.environ:
        import tempfile  # a fresh export cache, inherited by the memory workers

        os.environ["GFP_HOME"] = tempfile.mkdtemp(prefix="gfp_bench_home_")
    print(f"building {len(impls)} models on {device} …", flush=True)
    loaded = build_all(impls, args.seed, args.noise_strength, device, args.spandrel_call, args.cuda_graphs)

    results: list[Result] = []
    for batch in args.batches:
        x = make_input(batch, args.seed, device)
        diffs = max_abs_diffs(loaded, x) if batch == args.batches[0] else {}
        print(f"batch {batch}: {args.warmup} warm-up + {args.repeats} timed forwards each …", flush=True)
        timings = time_round_robin(loaded, x, args.warmup, args.repeats, device)
        seconds = {key: [t.seconds for t in values] for key, values in timings.items()}
        medians = {key: statistics.median(values) for key, values in seconds.items()}
        for impl in impls:
            median = medians[impl.key]
            official_median = medians.get(f"official-{impl.arch}")
            results.append(Result(
                impl=impl.key, arch=impl.arch, label=impl.label, batch=batch, times_s=seconds[impl.key],
                median_s=median, min_s=min(seconds[impl.key]), median_per_face_s=median / batch,
                ratio_vs_official=median / official_median if official_median else None,
                other_cpu=[t.other_cpu for t in timings[impl.key]],
                max_abs_diff_vs_official=diffs[impl.key][0] if impl.key in diffs else None,
                mean_abs_diff_vs_official=diffs[impl.key][1] if impl.key in diffs else None,
                notes=loaded[impl.key].notes,
            ))
    del loaded
    gc.collect()

    if args.memory:
        for result in results:
            runtime = IMPLS_BY_KEY[result.impl].runtime
            if runtime not in ("torch", "backend"):  # the backend's export is cached: its worker only compiles
                result.memory = {"method": "failed", "error": f"not measured ({runtime})"}
                continue
            print(f"memory: {result.impl} batch {result.batch} …", flush=True)
            result.memory = measure_memory(IMPLS_BY_KEY[result.impl], result.batch, args)

    wall = time.perf_counter() - started
    env = environment(args, device)
    print()
    print(f"GFPGAN forward, {FACE_SIZE}×{FACE_SIZE} on {env.get('gpu', env['cpu'])} ({device}, "
          f"{env['torch_threads']} threads), torch {env['torch']}; median of {args.repeats} after "
          f"{args.warmup} warm-up; 'vs official' = median / official median of the same arch; "
          f"max abs diff vs official at batch {args.batches[0]}; 'other CPU load' = largest share of "
          f"the CPUs that other processes used during a timed forward.")
    print()
    print(markdown_table(results))
    if args.memory:
        print()
        print(memory_table(results))
    busy = [r for r in results if (max_other_cpu(r.other_cpu) or 0.0) > CONTENTION_WARNING]
    if busy:
        print(f"\nWARNING: other processes kept more than {CONTENTION_WARNING:.0%} of the CPUs busy during "
              f"{len(busy)} of {len(results)} rows; their timings are inflated — rerun on an idle machine.")
    notes = sorted({f"{r.label}: {note}" for r in results for note in r.notes})
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    print(f"\nwall time {wall:.0f} s")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"environment": env, "wall_s": wall, "results": [asdict(r) for r in results]}
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
