"""ComfyUI's model management for the pack's networks.

A loaded restorer, detector, parser or background network travels between nodes as a
:class:`Managed`: the gfp_core object itself (``value``) and, inside ComfyUI, a
``comfy.model_patcher.ModelPatcher`` around its torch weights. Before a node computes, :func:`on_device`
hands the patchers to ``comfy.model_management.load_models_gpu`` with an estimate of the memory the
work needs: ComfyUI frees that much (offloading other models), moves the weights to the device it
picked and counts them in its list of loaded models, where they stay until memory is needed or the
user frees it (``/free``). gfp_core then runs on that device; it never imports ComfyUI.

Outside ComfyUI (tests, scripts) nothing is managed: the objects stay where they were loaded.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch

from gfp_core.engine import FACE_FORWARD_MIB, EngineOptions

log = logging.getLogger("gfpgan.nodes")

MIB = 1024 * 1024
#: activation memory of one 512 px face through GFPGAN in fp32 (the engine's own estimate)
FACE_FORWARD_BYTES = FACE_FORWARD_MIB * MIB
#: activation memory per input pixel of RetinaFace ResNet-50 (about 1 GB for a 1280 px square)
DETECT_BYTES_PER_PIXEL = 600
#: the side detection works at (the engine's detect_max_side default)
DETECT_MAX_SIDE = EngineOptions.detect_max_side
#: activation memory of the face parser on a batch of eight 512 px crops (gfp_core.face.masks)
PARSE_BYTES = 8 * 512 * 512 * 600

T = TypeVar("T")


def _comfy():
    """ComfyUI's model management and ModelPatcher, or None outside ComfyUI."""
    try:
        import comfy.model_management as mm
        from comfy.model_patcher import ModelPatcher
    except ImportError:
        return None
    return mm, ModelPatcher


class Managed:
    """What a loader node outputs: ``value`` for gfp_core, ``patcher`` (None outside ComfyUI or for a
    network without torch weights, such as the embedded OpenCV detector) for ComfyUI. ``on_unload``
    runs when model management unloads the weights (a cache that must not keep them)."""

    def __init__(self, value: Any, module: torch.nn.Module | None, load_device: torch.device | str | None = None,
                 on_unload: Callable[[], None] | None = None) -> None:
        self.value = value
        self.patcher = None
        comfy = _comfy() if isinstance(module, torch.nn.Module) else None
        if comfy is None:
            return
        mm, ModelPatcher = comfy
        load = torch.device(load_device) if load_device is not None else mm.get_torch_device()
        offload = torch.device("cpu") if load.type == "cpu" else mm.unet_offload_device()
        module.to(offload)  # loaded where it will run (its kernels chosen for that device), kept here until used
        self.patcher = ModelPatcher(module, load_device=load, offload_device=offload)
        if on_unload is not None:
            self.patcher.add_callback("on_detach_after", lambda patcher, unpatch_all: on_unload())

    @property
    def device(self) -> torch.device | None:
        return self.patcher.load_device if self.patcher is not None else None

    def __repr__(self) -> str:
        return f"Managed({type(self.value).__name__})"


def value(item: Managed | T | None) -> T | Any:
    """The gfp_core object of a socket's value (a value that is no :class:`Managed` is its own)."""
    return item.value if isinstance(item, Managed) else item


def load(items: Iterable[Managed | Any], memory_required: float = 0) -> None:
    """Have ComfyUI load the managed ``items`` onto its device, after freeing ``memory_required``
    bytes for the work itself (other models are offloaded if need be)."""
    patchers = [i.patcher for i in items if isinstance(i, Managed) and i.patcher is not None]
    comfy = _comfy()
    if comfy is None or not patchers:
        return
    comfy[0].load_models_gpu(patchers, memory_required=memory_required, force_full_load=True)


@contextlib.contextmanager
def on_device(items: Iterable[Managed | Any], memory_required: float = 0) -> Iterator[None]:
    """The managed ``items`` on ComfyUI's device for the work inside the block (they stay loaded,
    and counted, after it: ComfyUI offloads them when it needs the memory)."""
    load(items, memory_required)
    yield


def unload(item: Managed) -> None:
    """Take ``item``'s weights out of ComfyUI's loaded models (back to its offload device)."""
    comfy = _comfy()
    if comfy is None or item.patcher is None:
        return
    mm, _ = comfy
    for i, loaded in enumerate(mm.current_loaded_models):
        if loaded.model is item.patcher:
            if loaded.model_unload():
                mm.current_loaded_models.pop(i)
            return


# ------------------------------------------------------------------------------------------ estimates
def restore_memory(model: torch.nn.Module, faces: int) -> float:
    """Bytes one forward pass of ``faces`` faces needs beside the weights."""
    param = next(model.parameters(), None)
    size = getattr(model, "out_size", 512)
    per_face = FACE_FORWARD_BYTES * (size / 512) ** 2 * (param.element_size() / 4 if param is not None else 1)
    return per_face * max(faces, 1)


def detect_memory(frame_size: tuple[int, int]) -> float:
    """Bytes one detection pass on a frame of ``(height, width)`` needs beside the weights."""
    height, width = frame_size
    scale = min(1.0, DETECT_MAX_SIDE / max(height, width, 1))
    return height * width * scale * scale * DETECT_BYTES_PER_PIXEL


def faces_budget_mb(device: torch.device | None) -> int | None:
    """The engine's memory budget for one forward pass: what ComfyUI says is free on an accelerator,
    at most gfp_core's own 4 GiB; None on a CPU (one face at a time is fastest there)."""
    comfy = _comfy()
    if comfy is None or device is None or device.type == "cpu":
        return None
    mm, _ = comfy
    free = mm.get_free_memory(device) / MIB
    return int(max(FACE_FORWARD_BYTES / MIB, min(4096, free * 0.8)))


# --------------------------------------------------------------------------------------- out of memory
def out_of_memory_errors() -> tuple[type[BaseException], ...]:
    comfy = _comfy()
    return (comfy[0].OOM_EXCEPTION,) if comfy is not None else (torch.cuda.OutOfMemoryError,)


def in_halves(run: Callable[[np.ndarray, int], np.ndarray], items: np.ndarray, batch_size: int) -> np.ndarray:
    """``run(part, batch_size)`` over ``items`` ``batch_size`` at a time; when the device runs out of
    memory the failed part is retried with half the batch size (down to one), as ComfyUI's upscale
    node halves its tile."""
    oom = out_of_memory_errors()
    done: list[np.ndarray] = []
    start, size = 0, max(1, batch_size)
    while start < len(items):
        part = items[start:start + size]
        try:
            done.append(run(part, size))
        except oom:
            if size == 1:
                raise
            size = max(1, size // 2)
            log.warning("GFPGAN: out of memory, retrying %d faces at a time", size)
            _empty_cache()
            continue
        start += len(part)
    return np.concatenate(done) if done else run(items, size)


def _empty_cache() -> None:
    comfy = _comfy()
    if comfy is not None:
        comfy[0].soft_empty_cache()
