"""Upscaling the background around restored faces: Lanczos, or a Real-ESRGAN network.

Both give the same thing: an ``H×W×3`` RGB image (uint8, or float32 in [0, 1]) resized to exactly
``round(H·outscale) × round(W·outscale)``, in the dtype it came in::

    up = load_background_upsampler("realesrgan_x2plus")      # or None for plain Lanczos
    background = upscale_background(rgb, 2, upsampler=up)

The network runs tile by tile (``tile`` input pixels a side, each tile widened by ``tile_pad``
pixels of context that are then cropped off), so memory stays bounded on the CPU; its ×2/×4 result
is resized with Lanczos when ``outscale`` differs from the network's scale, as the official
``RealESRGANer`` does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .errors import InvalidImageError, UnknownModelError

if TYPE_CHECKING:
    from .weights import ModelInfo


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidImageError(f"expected an RGB image of shape [H, W, 3], got {list(arr.shape)}")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise InvalidImageError(f"unsupported image dtype {arr.dtype}; use uint8 or float in [0, 1]")
    return arr


def output_size(shape: tuple[int, ...], outscale: float) -> tuple[int, int]:
    """``(height, width)`` of an image of ``shape`` upscaled by ``outscale`` (rounded, at least 1)."""
    if not outscale > 0:
        raise ValueError(f"outscale must be positive, got {outscale}")
    h, w = shape[:2]
    return max(1, int(round(h * outscale))), max(1, int(round(w * outscale)))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos to ``(height, width)``; float results are clipped back into [0, 1] (Lanczos overshoots)."""
    if image.shape[:2] == size:
        return image
    out = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4)
    return out if out.dtype == np.uint8 else np.clip(out, 0.0, 1.0, out=out)


def lanczos(image: np.ndarray, outscale: float) -> np.ndarray:
    """The plain background: ``image`` resized by ``outscale`` with Lanczos (a copy at outscale 1)."""
    arr = _check_image(image)
    arr = arr.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) else arr.copy()
    return _resize(arr, output_size(arr.shape, outscale))


def _pad_bottom_right(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Mirror padding at the bottom and right (edge replication where the image is too small to mirror)."""
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < x.shape[2] and pad_w < x.shape[3] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class BackgroundUpsampler:
    """A super-resolution network (``model(x)``: NCHW RGB in [0, 1] → ``scale`` times larger) run tile
    by tile on whole photos.

    ``tile``: input tile side in pixels (0: the whole image at once); ``tile_pad``: context pixels
    added around each tile and cropped off its output; ``pre_pad``: pixels mirrored onto the bottom
    and right edges before the network runs (the official default, against border artefacts).
    The model's device and dtype are used as they are.
    """

    def __init__(self, model: nn.Module, *, scale: int | None = None, tile: int = 400, tile_pad: int = 10,
                 pre_pad: int = 10, info: ModelInfo | None = None):
        if tile < 0 or tile_pad < 0 or pre_pad < 0:
            raise ValueError(f"tile, tile_pad and pre_pad must be >= 0, got {tile}, {tile_pad}, {pre_pad}")
        self.model = model.eval()
        #: where the weights came from, when the registry loaded them
        self.info = info
        self.scale = int(scale if scale is not None else model.scale)
        #: height and width the network needs to divide (RRDBNet ×2/×1 pixel-unshuffle their input)
        self.multiple = int(getattr(model, "unshuffle", 1))
        self.tile = _round_up(tile, self.multiple)
        self.tile_pad = _round_up(tile_pad, self.multiple)
        self.pre_pad = pre_pad

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def upsample(self, image: np.ndarray, outscale: float) -> np.ndarray:
        """``image`` (``H×W×3`` uint8, or float in [0, 1]) upscaled to exactly
        ``round(H·outscale) × round(W·outscale)``; uint8 stays uint8, float comes back float32."""
        arr = _check_image(image)
        size = output_size(arr.shape, outscale)
        return _resize(self.run(arr), size)

    def run(self, image: np.ndarray) -> np.ndarray:
        """The network's own result, ``scale`` times larger: uint8 for uint8 input (rounded), else float32."""
        arr = _check_image(image)
        h, w = arr.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
        x = x.float() / 255.0 if arr.dtype == np.uint8 else x.float()
        x = _pad_bottom_right(x, self.pre_pad, self.pre_pad)
        x = _pad_bottom_right(x, -x.shape[2] % self.multiple, -x.shape[3] % self.multiple)
        s = self.scale
        as_uint8 = arr.dtype == np.uint8
        out = np.empty((h * s, w * s, 3), np.uint8 if as_uint8 else np.float32)
        step = self.tile or max(x.shape[2], x.shape[3])
        with torch.inference_mode():
            for top in range(0, h, step):  # tiles that lie wholly in the padding are not needed
                for left in range(0, w, step):
                    bottom, right = min(h, top + step), min(w, left + step)
                    tile = self._tile(x, top, left, step)[:, :(bottom - top) * s, :(right - left) * s]
                    if as_uint8:
                        tile = (tile * 255.0).round_().to(torch.uint8)
                    out[top * s:bottom * s, left * s:right * s] = tile.permute(1, 2, 0).cpu().numpy()
        return out

    def _tile(self, x: torch.Tensor, top: int, left: int, step: int) -> torch.Tensor:
        """The network's output for ``x[top:top+step, left:left+step]`` (``3×rows×cols`` float32 in
        [0, 1]), computed with ``tile_pad`` pixels of context on each side where the image has them."""
        height, width = x.shape[2:]
        bottom, right = min(height, top + step), min(width, left + step)
        top_p, left_p = max(0, top - self.tile_pad), max(0, left - self.tile_pad)
        bottom_p, right_p = min(height, bottom + self.tile_pad), min(width, right + self.tile_pad)
        y = self.model(x[:, :, top_p:bottom_p, left_p:right_p].to(self.device, self.dtype))
        s = self.scale
        y = y[0, :, (top - top_p) * s:(bottom - top_p) * s, (left - left_p) * s:(right - left_p) * s]
        return y.float().clamp_(0, 1)


def load_background_upsampler(name: str, *, device: str | torch.device | None = None,
                              dtype: str | torch.dtype | None = None, download: bool = True,
                              allow_unverified: bool | None = None, tile: int = 400, tile_pad: int = 10,
                              pre_pad: int = 10, progress: bool = True) -> BackgroundUpsampler:
    """A registry background model (``realesrgan_x2plus``, ``realesr_general_x4v3``) ready to upsample.

    Weights are found like every model's (:func:`gfp_core.weights.load_model`): model folders, the
    Hugging Face cache, then a download unless ``download=False`` or ``HF_HUB_OFFLINE=1``.
    """
    from .weights import load_model_with_info
    from .weights.registry import MODELS, find_spec

    spec = find_spec(str(name))
    if spec is None or spec.kind != "background":
        choices = ", ".join(s.name for s in MODELS if s.kind == "background")
        raise UnknownModelError(f"{name!r} is not a background upsampler; use one of: {choices} (put a downloaded "
                                f"file into a model folder under its release name)")
    model, info = load_model_with_info(spec.name, device=device, dtype=dtype, allow_unverified=allow_unverified,
                                       download=download, progress=progress)
    return BackgroundUpsampler(model, tile=tile, tile_pad=tile_pad, pre_pad=pre_pad, info=info)


def upscale_background(image: np.ndarray, outscale: float,
                       upsampler: BackgroundUpsampler | None = None) -> np.ndarray:
    """The background at ``outscale``: Lanczos without an upsampler, else the network (run even at
    outscale 1, as the official pipeline does, then resized). Same size and dtype rules either way."""
    return lanczos(image, outscale) if upsampler is None else upsampler.upsample(image, outscale)
