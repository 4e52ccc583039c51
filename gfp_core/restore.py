"""Restoring aligned face crops with a GFPGAN model, in batches."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .errors import InvalidImageError
from .image import faces_to_tensor, tensor_to_faces


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.inference_mode()
def restore_aligned(model: nn.Module, faces: np.ndarray, fidelity: float = 1.0, batch_size: int = 4,
                    randomize_noise: bool = False, on_batch: Callable[[int], None] | None = None,
                    should_stop: Callable[[], None] | None = None) -> np.ndarray:
    """Restore aligned RGB crops ``[N,S,S,3]`` (S = the model's size, 512) → uint8 ``[N,S,S,3]``.

    ``on_batch(n)`` is called after each forward pass of ``n`` faces (progress bars).
    ``should_stop()`` is how a host application interrupts (ComfyUI's interrupt, a cancelled
    request, a time limit): it returns None to go on and raises to stop. It is called before each
    batch and, inside the forward pass, before every U-Net block and StyleGAN2 resolution (22 times
    for a 512-px model), so the work stops within a fraction of one forward; its exception
    propagates to the caller and no later face starts.
    """
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = faces[None]
    size = getattr(model, "out_size", 512)
    if faces.ndim != 4 or faces.shape[1:] != (size, size, 3):
        raise InvalidImageError(f"aligned faces must be {size}x{size} RGB, got shape {list(faces.shape)}")
    param = next(model.parameters())
    out = np.empty((len(faces), size, size, 3), dtype=np.uint8)
    # models without stop checks (any forward without ``check``) still run when nobody can stop them
    stop_checks = {} if should_stop is None else {"check": should_stop}
    for part in _chunks(len(faces), max(1, batch_size)):
        if should_stop is not None:
            should_stop()
        x = faces_to_tensor(faces[part], device=param.device, dtype=param.dtype)
        restored, _ = model(x, return_rgb=False, randomize_noise=randomize_noise, fidelity=fidelity,
                            **stop_checks)
        out[part] = tensor_to_faces(restored)
        if on_batch is not None:
            on_batch(part.stop - part.start)
    return out
