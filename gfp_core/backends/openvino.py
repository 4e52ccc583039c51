"""GFPGAN on OpenVINO's CPU runtime: exported once per weights, cached on disk, checked on first use.

Why OpenVINO: on CPUs with bf16 dot products (AVX-512 BF16, AMX) its bf16 convolutions run GFPGAN
in about 1.2 s per 512² face on two cores, against 1.9 s for PyTorch fp32 with Winograd kernels and
3.1 s for the official code (``bench/bench_forward.py``); PyTorch's own bf16 path gains little
there. The network is cut into three graphs (:mod:`gfp_core.backends.graphs`) so that the prior's
coarse levels stay in fp32 and the output stays within :data:`TOLERANCE` of fp32.

First use of a set of weights: the three graphs are traced (about 20 s), saved as OpenVINO IR under
``$GFP_HOME/openvino/<key>/`` and compared with the PyTorch model on a seeded face; the comparison
(largest difference, seconds per face for each) is saved beside them as ``check.json``. Later loads
read the IR and the record (compiling takes under a second). The key hashes the weights, the
OpenVINO version and the export layout, so changed weights or a new OpenVINO export afresh.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..archs.sft import check_fidelity, keep_going
from ..errors import GFPError
from .graphs import FP32_PRIOR_LEVELS, Encoder, PriorEnd, PriorStart

log = logging.getLogger(__name__)

#: the largest difference from the PyTorch fp32 model allowed on [-1, 1] (checked on first use)
TOLERANCE = 0.05
#: the fidelities checked on first use: bf16 rounding grows as fidelity falls (the prior then runs
#: on its latent code alone), so each is checked and lower ones run on PyTorch if they miss
CHECKED_FIDELITIES = (1.0, 0.5, 0.0)
#: changes whenever the exported graphs change, so that older caches are not read
EXPORT_FORMAT = 3
#: how often a running graph looks whether the caller wants to stop (milliseconds)
POLL_MS = 20
_PARTS = (("encoder", "bf16"), ("prior_start", "f32"), ("prior_end", "bf16"))


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    if not available():
        raise GFPError("the OpenVINO backend needs the 'openvino' package: pip install openvino")


@dataclass(frozen=True)
class CheckRecord:
    """How the exported graphs compared with PyTorch on their first use (``check.json``)."""

    max_abs_diff: dict[str, float]  # fidelity → largest difference from PyTorch fp32, output clamped to [-1, 1]
    openvino_s: float    # seconds per face, OpenVINO
    torch_s: float       # seconds per face, the PyTorch model as loaded
    openvino: str        # OpenVINO version
    tolerance: float = TOLERANCE

    @property
    def lowest_fidelity(self) -> float | None:
        """The lowest fidelity down to which every checked one is within tolerance (None: not even 1)."""
        lowest = None
        for fidelity, difference in sorted(self.max_abs_diff.items(), key=lambda item: -float(item[0])):
            if difference > self.tolerance:
                break
            lowest = float(fidelity)
        return lowest

    @property
    def passed(self) -> bool:
        return self.lowest_fidelity is not None

    def covers(self, fidelity: float) -> bool:
        lowest = self.lowest_fidelity
        return lowest is not None and fidelity >= lowest

    @property
    def faster(self) -> bool:
        return self.openvino_s < self.torch_s


def cache_root() -> Path:
    from ..weights.resolve import home_dir

    return home_dir() / "openvino"


def weights_key(model: nn.Module) -> str:
    """What the cached graphs depend on: every tensor of the model, its class and size, the export
    layout and the OpenVINO version."""
    import openvino as ov

    digest = hashlib.sha256(f"{type(model).__name__} {model.out_size} format {EXPORT_FORMAT} "
                            f"fp32 levels {FP32_PRIOR_LEVELS} openvino {ov.__version__}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy() if tensor.numel() else b"")
    return digest.hexdigest()[:32]


def _check_input(size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(20210611)  # the paper's arXiv date: any fixed seed
    return torch.rand(1, 3, size, size, generator=generator) * 2 - 1


def _fp32_copy(model: nn.Module) -> nn.Module:
    param = next(model.parameters())
    if param.dtype == torch.float32 and param.device.type == "cpu":
        return model
    return copy.deepcopy(model).float().cpu()


def export(model: nn.Module, folder: Path, fp32_levels: int = FP32_PRIOR_LEVELS) -> None:
    """Trace the three graphs of ``model`` (fp32, CPU) and save them as OpenVINO IR in ``folder``;
    the prior's first ``fp32_levels`` levels go to the fp32 graph."""
    import openvino as ov

    size = model.out_size
    fidelity = torch.tensor(1.0)
    faces = torch.zeros(1, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        # tracing notes every shape test it freezes; the graphs are built for one face of this size on purpose
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        encoder = Encoder(model).eval()
        encoded = encoder(faces)
        start = PriorStart(model, fp32_levels).eval()
        started = start(fidelity, *encoded)
        end = PriorEnd(model, fp32_levels).eval()
        graphs = {"encoder": (encoder, (faces,)),
                  "prior_start": (start, (fidelity, *encoded)),
                  "prior_end": (end, (fidelity, *started, *encoded[1:]))}
        for name, (part, inputs) in graphs.items():
            converted = ov.convert_model(part, example_input=inputs, input=[list(t.shape) for t in inputs])
            ov.save_model(converted, str(folder / f"{name}.xml"), compress_to_fp16=False)


class GraphChain:
    """The three compiled graphs, their inputs bound once to the outputs before them (no copies),
    run for one face at a time; a running graph can be stopped between polls."""

    def __init__(self, folder: Path, threads: int | None = None):
        import openvino as ov

        core = ov.Core()
        threads = threads or torch.get_num_threads()
        self.requests = []
        for name, precision in _PARTS:
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                      "INFERENCE_PRECISION_HINT": precision}
            self.requests.append(core.compile_model(str(folder / f"{name}.xml"), "CPU", config).create_infer_request())
        encoder, start, end = self.requests
        shape = tuple(encoder.get_input_tensor(0).shape)
        self.faces = np.zeros(shape, np.float32)
        self.fidelity = np.ones((), np.float32)
        encoder.set_input_tensor(0, ov.Tensor(self.faces, shared_memory=True))
        fidelity = ov.Tensor(self.fidelity, shared_memory=True)
        start.set_input_tensor(0, fidelity)
        end.set_input_tensor(0, fidelity)
        n_encoded = len(encoder.model_outputs)
        for j in range(n_encoded):  # style and conditions → the prior's start
            start.set_input_tensor(1 + j, encoder.get_output_tensor(j))
        for j in range(3):  # latent, features, rgb → the prior's end
            end.set_input_tensor(1 + j, start.get_output_tensor(j))
        for j in range(1, n_encoded):  # the conditions → the prior's end
            end.set_input_tensor(3 + j, encoder.get_output_tensor(j))
        self._lock = threading.Lock()

    def run(self, face: np.ndarray, fidelity: float, check: Callable[[], None] = keep_going) -> np.ndarray:
        """One face ``[1, 3, S, S]`` float32 in [-1, 1] → the restored face, same shape."""
        with self._lock:
            np.copyto(self.faces, face)
            self.fidelity[...] = fidelity
            for request in self.requests:
                check()
                _run_stoppable(request, check)
            return self.requests[-1].get_output_tensor(0).data.copy()


def _run_stoppable(request, check: Callable[[], None]) -> None:
    request.start_async()
    try:
        while not request.wait_for(POLL_MS):
            check()
    except BaseException:
        request.cancel()
        try:
            request.wait()
        except RuntimeError:  # "canceled": what waiting on a cancelled request reports
            pass
        raise


class OpenVINORestorer(nn.Module):
    """A GFPGAN whose deterministic forward passes run on OpenVINO. ``model`` (the PyTorch module it
    was exported from) still answers everything else: intermediate RGB images, fresh noise, a move
    to another device, attributes."""

    def __init__(self, model: nn.Module, chain: GraphChain, record: CheckRecord):
        super().__init__()
        self.model = model
        self.chain = chain
        self.record = record

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)

    def forward(self, x: torch.Tensor, return_rgb: bool = True, randomize_noise: bool = False,
                fidelity: float = 1.0, check: Callable[[], None] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fidelity = check_fidelity(fidelity)
        # what the graphs do not compute, or did not match PyTorch closely enough for, PyTorch does
        if return_rgb or randomize_noise or x.device.type != "cpu" or not self.record.covers(fidelity) \
                or next(self.model.parameters()).device.type != "cpu":
            return self.model(x, return_rgb=return_rgb, randomize_noise=randomize_noise, fidelity=fidelity,
                              check=check)
        size = self.model.out_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            raise ValueError(f"expected faces of shape [B, 3, {size}, {size}], got {list(x.shape)}")
        faces = x.detach().float().numpy()
        out = np.empty(faces.shape, np.float32)
        for i in range(len(faces)):
            out[i] = self.chain.run(faces[i:i + 1], fidelity, check or keep_going)[0]
        return torch.from_numpy(out), []


def _time_face(forward: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    forward()  # first call: kernels chosen, weights packed
    start = time.perf_counter()
    result = forward()
    return time.perf_counter() - start, result


def first_use_check(model: nn.Module, reference: nn.Module, chain: GraphChain) -> CheckRecord:
    """Run the graphs and PyTorch on one seeded face at each of :data:`CHECKED_FIDELITIES`: largest
    difference from ``reference`` (fp32) once both are clamped to [-1, 1] as pictures are, and seconds
    per face of each (``model``: PyTorch as the user loaded it)."""
    import openvino as ov

    faces = _check_input(model.out_size)
    param = next(model.parameters())
    with torch.inference_mode():
        torch_s, _ = _time_face(lambda: model(faces.to(param.device, param.dtype), return_rgb=False)[0])
    openvino_s, _ = _time_face(lambda: chain.run(faces.numpy(), 1.0))
    differences = {}
    for fidelity in CHECKED_FIDELITIES:
        with torch.inference_mode():
            truth = reference(faces, return_rgb=False, fidelity=fidelity)[0].float().clamp(-1, 1).numpy()
        ours = np.clip(chain.run(faces.numpy(), fidelity), -1, 1)
        differences[f"{fidelity:g}"] = round(float(np.abs(ours - truth).max()), 5)
    return CheckRecord(max_abs_diff=differences, openvino_s=round(openvino_s, 3), torch_s=round(torch_s, 3),
                       openvino=ov.__version__.split("-")[0])


def cached_record(folder: Path) -> CheckRecord | None:
    """The first-use check saved in ``folder``, if there is a readable one."""
    try:
        return CheckRecord(**json.loads((folder / "check.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def accelerate(model: nn.Module, wanted: Callable[[CheckRecord], bool] = lambda record: True
               ) -> OpenVINORestorer | CheckRecord:
    """``model`` (a loaded GFPGAN) running on OpenVINO: graphs read from the cache or exported and
    checked now. When the check's record is not ``wanted`` (too far from PyTorch, or slower), the
    record alone is returned and nothing is compiled. Raises :class:`GFPError` when OpenVINO is
    missing or cannot take the model."""
    require()
    folder = cache_root() / weights_key(model)
    record = cached_record(folder)
    if record is not None:
        if not wanted(record):
            return record
        try:
            return OpenVINORestorer(model, GraphChain(folder), record)
        except (OSError, ValueError, TypeError, RuntimeError) as exc:  # damaged cache: export again
            log.warning("the cached OpenVINO graphs in %s cannot be used (%s); exporting them again", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)

    log.warning("preparing GFPGAN for OpenVINO (once for these weights, about half a minute)")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    except OSError as exc:
        raise GFPError(f"the OpenVINO graphs cannot be saved in {folder.parent} ({exc.strerror or exc}); "
                       "set GFP_HOME to a writable folder") from exc
    try:
        reference = _fp32_copy(model)
        try:
            export(reference, partial)
            chain = GraphChain(partial)
        except Exception as exc:  # the converter's errors have no common base class
            raise GFPError(f"OpenVINO could not take this model ({type(exc).__name__}: "
                           f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else ''})") from exc
        record = first_use_check(model, reference, chain)
        (partial / "check.json").write_text(json.dumps(asdict(record), indent=1))
        del reference, chain
        try:
            os.replace(partial, folder)
        except OSError:  # another process finished first: its copy is as good
            pass
        return OpenVINORestorer(model, GraphChain(folder), record) if wanted(record) else record
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
