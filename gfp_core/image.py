"""The one image-conversion helper: files ↔ RGB arrays ↔ model tensors.

Public images are RGB ``H×W×3`` arrays (uint8, or float32 in [0, 1]). The model sees NCHW tensors
in [-1, 1]. Conversions round the way the official code does, so outputs match it pixel for pixel.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import InvalidImageError


DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: larger photos are refused before they are decoded
_16BIT_SUFFIXES = (".png", ".tif", ".tiff")


@dataclass
class Picture:
    """An image split into what the pipeline works on and what it must give back unchanged.

    ``rgb``: ``H×W×3`` uint8 (8-bit sources) or uint16 (16-bit sources); ``alpha``: ``H×W`` of the
    same dtype or None; ``grey``: the source had one colour channel.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    grey: bool = False

    @property
    def max_value(self) -> int:
        return 65535 if self.rgb.dtype == np.uint16 else 255

    @property
    def rgb8(self) -> np.ndarray:
        """8-bit RGB for detection and the model."""
        if self.rgb.dtype == np.uint8:
            return self.rgb
        return ((self.rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)

    def as_float(self) -> np.ndarray:
        """Colour as float32 in [0, 1] at full precision (exact for 8 and 16 bits)."""
        return self.rgb.astype(np.float32) / self.max_value

    def rebuild(self, rgb: np.ndarray) -> np.ndarray:
        """Put a processed colour image (uint8, or float32 in [0, 1]) back in this picture's layout:
        grey stays grey, alpha is resized to match and re-attached, 16 bits stay 16 bits."""
        if np.issubdtype(rgb.dtype, np.floating):
            out = np.clip(rgb * self.max_value + 0.5, 0, self.max_value).astype(self.rgb.dtype)
        elif rgb.dtype == self.rgb.dtype:
            out = rgb
        else:
            out = (rgb.astype(np.uint32) * 257).astype(np.uint16)
        if self.grey:
            out = out[..., :1] if _is_grey_rgb(out) else _luminance(out)[..., None]
        if self.alpha is not None:
            alpha = self.alpha
            if alpha.shape != out.shape[:2]:
                import cv2

                alpha = cv2.resize(alpha, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_LINEAR)
            out = np.concatenate([out, alpha[..., None]], axis=2)
        return out[..., 0] if out.shape[2] == 1 else out


def _is_grey_rgb(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(y + 0.5, 0, np.iinfo(rgb.dtype).max).astype(rgb.dtype)


def to_picture(image: np.ndarray) -> Picture:
    """An in-memory image — ``H×W`` grey, ``H×W×3`` RGB or ``H×W×4`` RGBA; uint8, uint16 or float
    in [0, 1] — as a :class:`Picture`."""
    arr = np.asarray(image)
    if np.issubdtype(arr.dtype, np.floating):
        arr = as_uint8(arr)
    if arr.dtype not in (np.uint8, np.uint16):
        raise InvalidImageError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    if arr.ndim == 2:
        return Picture(np.repeat(arr[..., None], 3, axis=2), grey=True)
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InvalidImageError(f"expected an H×W, H×W×3 or H×W×4 image, got shape {list(arr.shape)}")
    if arr.shape[2] in (1, 2):
        alpha = arr[..., 1] if arr.shape[2] == 2 else None
        return Picture(np.repeat(arr[..., :1], 3, axis=2), alpha=alpha, grey=True)
    return Picture(np.ascontiguousarray(arr[..., :3]), alpha=arr[..., 3] if arr.shape[2] == 4 else None)


def read_picture(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Read an image file: EXIF orientation applied; grey, alpha and 16 bits kept; CMYK, palette and
    other modes converted to RGB(A). Refuses images over ``max_pixels`` before decoding them."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InvalidImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InvalidImageError(f"{path}: empty file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise InvalidImageError(
                    f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit of "
                    f"{max_pixels / 1e6:.0f}; raise it (--max-pixels) if you have the memory")
            img.load()
            if img.format in ("PNG", "TIFF") and path.suffix.lower() in _16BIT_SUFFIXES:
                deep = _read_16bit(path, img)
                if deep is not None:
                    return deep
            img = ImageOps.exif_transpose(img)
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                grey16 = np.clip(np.asarray(img, dtype=np.int64), 0, 65535).astype(np.uint16)
                return to_picture(grey16)
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif mode == "1":
                img = img.convert("L")
            elif mode not in ("L", "LA", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in mode else "RGB")  # CMYK, YCbCr, LAB, HSV, PA, …
            return to_picture(np.asarray(img).copy())
    except InvalidImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"{path}: not a readable image ({exc})") from exc


def _read_16bit(path: Path, img) -> Picture | None:
    """16-bit colour PNG/TIFF, which PIL would truncate to 8 bits; None if the file is not one."""
    import cv2

    data = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None or data.dtype != np.uint16 or data.ndim != 3:
        return None
    rgb = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA if data.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return to_picture(rgb)


def write_image(path: str | Path, image: np.ndarray, quality: int = 95) -> Path:
    """Write grey/RGB/RGBA, 8 or 16 bits. Formats that cannot hold alpha or 16 bits (JPEG) get
    the image flattened to 8-bit RGB/grey."""
    import cv2
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(image)
    if np.issubdtype(arr.dtype, np.floating):
        arr = as_uint8(arr)
    is_jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    if is_jpeg:
        if arr.ndim == 3 and arr.shape[2] in (2, 4):
            arr = arr[..., :-1] if arr.shape[2] == 4 else arr[..., 0]
        if arr.dtype == np.uint16:
            arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if arr.dtype == np.uint16 and arr.ndim == 3:  # PIL cannot write 16-bit colour
        code = cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR
        if not cv2.imwrite(str(path), cv2.cvtColor(arr, code)):
            raise InvalidImageError(f"{path}: cannot write a 16-bit image in this format; use .png or .tif")
        return path
    pil = Image.fromarray(arr.astype(np.uint16) if arr.dtype == np.uint16 else arr)
    pil.save(path, **({"quality": quality} if is_jpeg else {}))
    return path


def load_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as 8-bit RGB (EXIF orientation applied)."""
    return read_picture(path, max_pixels).rgb8


def save_rgb(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB (or grey/RGBA) array; the format follows the file extension."""
    return write_image(path, image)


def as_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 stays; float in [0, 1] is scaled and rounded."""
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    raise InvalidImageError(f"unsupported image dtype {image.dtype}; use uint8 or float in [0, 1]")


def faces_to_tensor(faces: np.ndarray, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RGB face crops ``[N,H,W,3]`` or ``[H,W,3]`` (uint8 or float [0,1]) → ``[N,3,H,W]`` in [-1, 1]."""
    arr = np.asarray(faces)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise InvalidImageError(f"expected RGB faces of shape [N, H, W, 3], got {list(arr.shape)}")
    if arr.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    else:
        raise InvalidImageError(f"unsupported face dtype {arr.dtype}; use uint8 or float in [0, 1]")
    t = t.permute(0, 3, 1, 2).contiguous().to(device=device)
    return ((t - 0.5) / 0.5).to(dtype)


def tensor_to_faces(t: torch.Tensor) -> np.ndarray:
    """``[N,3,H,W]`` in [-1, 1] → RGB uint8 ``[N,H,W,3]``, rounded like the official code."""
    t = (t.detach().float().clamp(-1, 1) + 1) / 2
    return (t * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def batch_to_uint8(batch: torch.Tensor) -> np.ndarray:
    """``[B, H, W, C]`` float in [0, 1] (ComfyUI's IMAGE layout) → uint8 ``[B, H, W, 3]`` RGB."""
    if batch.ndim != 4 or batch.shape[-1] not in (1, 3, 4):
        raise InvalidImageError(f"expected an image batch [B, H, W, C] with C = 1, 3 or 4, got {list(batch.shape)}")
    arr = batch.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    if arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def uint8_to_batch(images: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """uint8 (or float [0, 1]) RGB images of one size → ``[B, H, W, 3]`` float32 in [0, 1]."""
    arr = np.stack(list(images)) if isinstance(images, list) else np.asarray(images)
    if arr.dtype == np.uint8:
        return torch.from_numpy(arr.astype(np.float32) / 255.0)
    return torch.from_numpy(np.clip(arr, 0, 1).astype(np.float32))
