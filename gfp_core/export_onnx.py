"""Export a GFPGAN restorer to ONNX (fixed noise) and check it in onnxruntime.

The graph maps ``faces`` ``[N, 3, S, S]`` float32 in [-1, 1] to ``restored`` of the same shape,
with the model's stored noise maps baked in, so it is deterministic like the PyTorch default.
The batch size is fixed at export time (one face by default): the modulated convolutions take
the weights of each face, so the graph is built for one batch size.

Exported with ``torch.onnx.export(dynamo=True)`` (needs ``onnx`` and ``onnxscript``); the
check runs ``onnxruntime`` on the CPU.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import GFPError

#: what the exported graph must reproduce: largest absolute difference from PyTorch on [-1, 1]
ONNX_TOLERANCE = 1e-3


class _Restorer(nn.Module):
    """The traced function: faces → restored faces, stored noise, no intermediate RGB outputs."""

    def __init__(self, model: nn.Module, fidelity: float):
        super().__init__()
        self.model = model
        self.fidelity = fidelity

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.model(faces, return_rgb=False, randomize_noise=False, fidelity=self.fidelity)[0]


@dataclass
class OnnxCheck:
    """How the exported graph compares with PyTorch on the same input."""

    max_abs_diff: float
    onnxruntime_s: float
    torch_s: float


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise GFPError(f"ONNX export needs the '{module}' package: pip install onnx onnxscript onnxruntime") from exc


def export_onnx(model: str | os.PathLike[str] | nn.Module, output: str | os.PathLike[str], *, batch_size: int = 1,
                fidelity: float = 1.0, opset: int = 18, overwrite: bool = False, allow_unverified: bool | None = None
                ) -> Path:
    """Write ``model`` (a registry name, a weights file or a loaded GFPGAN) as an ONNX file.

    The export always uses the reference kernels (``exact``), whatever the loaded model runs with.
    """
    from .archs.gfpgan import GFPGANBase
    from .weights import load_model

    _require("onnx")
    _require("onnxscript")
    out = Path(output)
    if out.suffix.lower() != ".onnx":
        raise GFPError(f"{out}: the output file must end in .onnx")
    if out.exists() and not overwrite:
        raise GFPError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    if batch_size < 1:
        raise GFPError(f"batch size must be at least 1, got {batch_size}")
    if not isinstance(model, nn.Module):
        model = load_model(model, device="cpu", allow_unverified=allow_unverified, exact=True)
    if not isinstance(model, GFPGANBase):
        raise GFPError(f"only GFPGAN restorers can be exported, not {type(model).__name__}")
    model = model.float().cpu().eval()
    previous = model.fast_kernels
    model.fast_kernels = False  # Winograd (NNPACK) is a PyTorch-only kernel
    try:
        example = torch.zeros(batch_size, 3, model.out_size, model.out_size)
        out.parent.mkdir(parents=True, exist_ok=True)
        with torch.inference_mode(False), torch.no_grad():
            program = torch.onnx.export(_Restorer(model, fidelity).eval(), (example,), dynamo=True, opset_version=opset,
                                        input_names=["faces"], output_names=["restored"], verbose=False)
        program.save(str(out))
    finally:
        model.fast_kernels = previous
    return out


def check_onnx(path: str | os.PathLike[str], model: nn.Module, faces: torch.Tensor | None = None,
               fidelity: float = 1.0) -> OnnxCheck:
    """Run the exported graph in onnxruntime (CPU) and ``model`` in PyTorch on the same faces."""
    _require("onnxruntime")
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    if faces is None:
        generator = torch.Generator().manual_seed(0)
        faces = torch.rand(*shape, generator=generator) * 2 - 1
    feed = {"faces": faces.float().numpy()}
    session.run(None, feed)  # first run: graph optimisation and memory planning
    start = time.perf_counter()
    onnx_out = session.run(None, feed)[0]
    onnx_s = time.perf_counter() - start
    with torch.inference_mode():
        model(faces, return_rgb=False, fidelity=fidelity)
        start = time.perf_counter()
        torch_out = model(faces, return_rgb=False, fidelity=fidelity)[0].float().numpy()
        torch_s = time.perf_counter() - start
    return OnnxCheck(float(np.abs(onnx_out - torch_out).max()), onnx_s, torch_s)
