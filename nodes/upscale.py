"""Background upscaling with ComfyUI's own upscale models.

:class:`ComfyBackground` gives the engine the interface of :class:`gfp_core.background.BackgroundUpsampler`
(``upsample(image, outscale)``) around an ``UPSCALE_MODEL`` (a spandrel ``ImageModelDescriptor``
from core's *Load Upscale Model*) or a registry Real-ESRGAN network, and runs it the way core's
*Upscale Image (using Model)* does (comfy_extras/nodes_upscale_model.py): overlapping 512 px tiles
with ``comfy.utils.tiled_scale``, halving the tile on out-of-memory. Its weights are handed to
ComfyUI's model management for the run (:class:`nodes.memory.Managed`, loaded with core's memory
estimate; the node unloads them when it is done). Outside ComfyUI the network runs on the whole image
at once.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from gfp_core.background import output_size

from . import memory

TILE = 512
OVERLAP = 32
MIN_TILE = 128


class _Padded:
    """A bare network whose input sides must divide ``multiple`` (RRDBNet ×2 unshuffles its input),
    callable on any NCHW tile: mirror-padded at the bottom/right, the padding cropped off the result."""

    def __init__(self, model: torch.nn.Module, scale: int, multiple: int) -> None:
        self.model, self.scale, self.multiple = model, scale, multiple

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        return self.model(x)[:, :, :h * self.scale, :w * self.scale]


class ComfyBackground:
    """``upsample(image, outscale)``: ``image`` (``H×W×3`` float in [0, 1] or uint8) through the
    network, then resized with Lanczos to exactly ``round(H·outscale) × round(W·outscale)``, as
    :class:`gfp_core.background.BackgroundUpsampler` does; the dtype is kept."""

    def __init__(self, network: Any, module: torch.nn.Module, scale: int, name: str = "") -> None:
        self.network = network    # callable on NCHW [0, 1] tensors
        self.weights: torch.nn.Module = getattr(module, "model", module)  # the nn.Module itself
        self.managed = memory.Managed(network, self.weights)  # for this run only (the node unloads it)
        self.scale = int(scale)
        self.name = name

    @classmethod
    def from_upscale_model(cls, descriptor: Any) -> "ComfyBackground":
        """ComfyUI's UPSCALE_MODEL (spandrel ``ImageModelDescriptor``: pads to its size requirements)."""
        scale = getattr(descriptor, "scale", None)
        if scale is None or not callable(descriptor):
            raise TypeError(f"expected an UPSCALE_MODEL from Load Upscale Model, got {type(descriptor).__name__}")
        return cls(descriptor, descriptor, int(scale), name=str(getattr(getattr(descriptor, "architecture", None), "name", "")))

    @classmethod
    def from_registry(cls, name: str) -> "ComfyBackground":
        """A registry background network (``realesrgan_x2plus``, ``realesr_general_x4v3``), loaded for
        ComfyUI's device."""
        from gfp_core.background import load_background_upsampler

        from . import host

        up = load_background_upsampler(name, device=host.device("auto"), progress=False)
        return cls(_Padded(up.model, up.scale, up.multiple), up.model, up.scale, name=name)

    # -- what the engine calls --------------------------------------------------------------------
    def upsample(self, image: np.ndarray, outscale: float) -> np.ndarray:
        import cv2

        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"expected an RGB image of shape [H, W, 3], got {list(arr.shape)}")
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float()
        if arr.dtype == np.uint8:
            x = x / 255.0
        out = self.run(x)[0].permute(1, 2, 0).numpy()
        height, width = output_size(arr.shape, outscale)
        if out.shape[:2] != (height, width):
            out = np.clip(cv2.resize(out, (width, height), interpolation=cv2.INTER_LANCZOS4), 0.0, 1.0)
        if arr.dtype == np.uint8:
            return np.rint(out * 255.0).astype(np.uint8)
        return np.ascontiguousarray(out, np.float32)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """``[1, 3, H, W]`` float in [0, 1] → ``[1, 3, H·scale, W·scale]`` float32 on the CPU, clamped."""
        try:
            import comfy.model_management as mm
            import comfy.utils
        except ImportError:
            with torch.inference_mode():
                param = next(self.weights.parameters(), None)
                y = self.network(x.to(param.device if param is not None else "cpu",
                                      param.dtype if param is not None else torch.float32))
            return y.float().cpu().clamp(0, 1)

        needed = (512 * 512 * 3) * x.element_size() * max(self.scale, 1.0) * 384.0  # core's estimate
        needed += x.nelement() * x.element_size()
        memory.load([self.managed], needed)
        param = next(self.weights.parameters())
        tile = TILE
        while True:
            try:
                steps = comfy.utils.get_tiled_scale_steps(x.shape[3], x.shape[2], tile_x=tile, tile_y=tile,
                                                          overlap=OVERLAP)
                bar = comfy.utils.ProgressBar(steps)
                with torch.inference_mode():
                    y = comfy.utils.tiled_scale(x.to(param.device, param.dtype), lambda t: self.network(t),
                                                tile_x=tile, tile_y=tile, overlap=OVERLAP, upscale_amount=self.scale,
                                                pbar=bar)
                break
            except mm.OOM_EXCEPTION:
                mm.throw_exception_if_processing_interrupted()
                tile //= 2
                if tile < MIN_TILE:
                    raise
        return y.float().cpu().clamp(0, 1)
