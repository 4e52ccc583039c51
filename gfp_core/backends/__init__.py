"""What runs a GFPGAN forward pass: PyTorch, or OpenVINO's CPU runtime (:mod:`.openvino`).

``backend`` is one of :data:`gfp_core.options.BACKENDS`: 'torch'; 'openvino' (refused with a clear
message where it cannot run); 'auto' (the default; ``GFP_BACKEND`` changes it): OpenVINO when it is
installed, the model is a GFPGAN v1.2–v1.4 on the CPU without ``exact``, and its first-use check found it
within tolerance and faster than PyTorch on this machine; PyTorch otherwise.
"""
from __future__ import annotations

import logging
import os

from torch import nn

from ..errors import GFPError, InvalidOptionError
from ..options import BACKENDS, check_backend, shown

log = logging.getLogger(__name__)


def default_backend() -> str:
    """``GFP_BACKEND`` if set (a deployment pins its backend), else 'auto'."""
    value = os.environ.get("GFP_BACKEND", "").strip() or "auto"
    try:
        return check_backend(value)
    except InvalidOptionError:  # named as the environment variable: no flag or input was given
        raise InvalidOptionError(f"the environment variable GFP_BACKEND must be one of {', '.join(BACKENDS.names)}, "
                                 f"got {shown(value)}", setting="backend", value=value,
                                 allowed=BACKENDS.names) from None


def _why_not_openvino(model: nn.Module, exact: bool) -> str | None:
    from ..archs.gfpgan import GFPGANv1Clean
    from . import openvino

    # the original v1's first-use check misses by 0.43 (its fused activations and blur kernels): not offered
    if not isinstance(model, GFPGANv1Clean):
        return f"it runs GFPGAN models only, v1.2 to v1.4 (the clean architecture), not {type(model).__name__}"
    device = next(model.parameters()).device
    if device.type != "cpu":
        return f"it runs on the CPU, and the model is on {device}"
    if exact:
        return "exact asks for the published PyTorch kernels"
    if not openvino.available():
        return "the 'openvino' package is not installed (pip install openvino)"
    return None


def select_backend(model: nn.Module, backend: str | None = None, *, exact: bool = False) -> tuple[nn.Module, str]:
    """``model`` as the backend runs it, and the backend's name ('torch' or 'openvino')."""
    name = check_backend(backend) if backend is not None else default_backend()
    if name == "torch":
        return model, "torch"
    why_not = _why_not_openvino(model, exact)
    if why_not is not None:
        if name == "openvino":
            raise InvalidOptionError("{setting} openvino cannot be used: " + why_not, setting="backend",
                                     value=backend, allowed=BACKENDS.names)
        return model, "torch"

    from .openvino import OpenVINORestorer, accelerate

    try:
        restorer = accelerate(model, wanted=lambda record: record.passed and (name == "openvino" or record.faster))
    except GFPError as exc:
        if name == "openvino":
            raise
        log.warning("%s; running on PyTorch", exc)
        return model, "torch"
    if isinstance(restorer, OpenVINORestorer):
        return restorer, "openvino"
    record = restorer
    if not record.passed:
        message = (f"OpenVINO's output differs from PyTorch's by {record.max_abs_diff['1']:.3f} on [-1, 1] on this "
                   f"machine (allowed: {record.tolerance})")
        if name == "openvino":
            raise GFPError(message + "; use backend torch")
        log.warning("%s; running on PyTorch", message)
    return model, "torch"  # auto: measured slower than PyTorch here


__all__ = ["default_backend", "select_backend"]
