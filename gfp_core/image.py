"""The one image-conversion helper: files ↔ RGB arrays ↔ model tensors.

Public images are RGB ``H×W×3`` arrays (uint8, or float32 in [0, 1]). The model sees NCHW tensors
in [-1, 1]. Conversions round the way the official code does, so outputs match it pixel for pixel.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .errors import ImageTooLargeError, InvalidImageError


DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: larger photos are refused before they are decoded
#: the largest result a restore may make. The default input limit at the default upscale (2) gives
#: 400 MP; its result is 1.2 GB as 8-bit RGB, and the float32 work buffers of 16-bit or grey sources
#: (12 bytes a pixel) add up to 4.8 GB, so about 6 GB at the peak: what a 16 GB machine can spare.
DEFAULT_MAX_OUTPUT_PIXELS = 400_000_000
#: the only decoders a file is given to (Pillow format names), whatever its name says: no PostScript,
#: EPS or PDF ever reaches Ghostscript, no rarely used plugin sees untrusted bytes
SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
SUPPORTED_FORMAT_NAMES = ("PNG", "JPEG", "WebP", "TIFF", "BMP", "GIF")


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
    other modes converted to RGB(A). Only :data:`SUPPORTED_FORMATS` are opened, whatever the file's
    name says. Refuses images over ``max_pixels`` before decoding them; each file is decoded once."""
    from PIL import Image

    path = Path(path)
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive number of pixels, got {max_pixels}")
    if not path.is_file():
        raise InvalidImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InvalidImageError(f"{path}: empty file")
    try:
        with pillow_pixel_limit(max_pixels), _open_supported(path, max_pixels) as img:
            if _is_16bit_colour(img):
                deep = _read_16bit(path)
                if deep is not None:
                    return deep
            return _from_pil(img)
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as exc:  # over twice our own limit: Pillow refused in its header check
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{megapixels(int(found.group(1)))} megapixels" if found else "too large"
        raise ImageTooLargeError(f"{path}: {size}, over the limit of {megapixels(max_pixels)}",
                                 setting="max_pixels") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{path}: not a readable image ({exc})") from exc


def megapixels(pixels: int) -> str:
    """``200024449`` → ``'200'``, ``2400000`` → ``'2'``, ``300000`` → ``'0.3'``: for messages (whole
    megapixels, and small limits not shown as 0)."""
    return f"{pixels / 1e6:.0f}" if pixels >= 1_000_000 else f"{pixels / 1e6:.2g}"


@contextmanager
def _open_supported(path: Path, max_pixels: int) -> Iterator[Any]:
    """The file opened (header only) by one of our decoders; refused if it is over ``max_pixels``."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        # Pillow warns of images over its limit; ours is checked just below, with a better message.
        # (catch_warnings is process-wide: a filter another thread adds in this instant is undone.)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(path, formats=SUPPORTED_FORMATS)
        except UnidentifiedImageError:
            raise InvalidImageError(_unsupported_message(path)) from None
    with img:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{path}: {width}x{height} is {megapixels(width * height)} megapixels, over the limit of "
                f"{megapixels(max_pixels)}", setting="max_pixels")
        yield img


def _unsupported_message(path: Path) -> str:
    """Why a file is refused: a known but unsupported format is named (from its first bytes only)."""
    from PIL import Image

    Image.init()
    with open(path, "rb") as f:
        prefix = f.read(16)
    names = ", ".join(SUPPORTED_FORMAT_NAMES)
    for name, (_factory, accept) in Image.OPEN.items():
        if name in SUPPORTED_FORMATS or accept is None:
            continue
        try:
            found = accept(prefix)  # a byte comparison; nothing is decoded
        except Exception:  # some checks fail on very short files
            continue
        if found and not isinstance(found, str):  # a str is Pillow's warning, not a match
            return f"{path}: not a supported image format (it is {name}; use {names})"
    return f"{path}: not a readable image (damaged, or not a supported image format: {names})"


def _is_16bit_colour(img: Any) -> bool:
    """A 16-bit RGB(A) PNG/TIFF, which PIL would cut to 8 bits, told from the header before decoding."""
    if img.format not in ("PNG", "TIFF") or img.mode not in ("RGB", "RGBA") or not img.tile:
        return False
    args = img.tile[0].args
    rawmode = args[0] if isinstance(args, tuple) else args
    return isinstance(rawmode, str) and ";16" in rawmode


def _read_16bit(path: Path) -> Picture | None:
    """A 16-bit colour PNG/TIFF decoded by OpenCV; None if OpenCV reads something else."""
    import cv2

    data = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None or data.dtype != np.uint16 or data.ndim != 3:
        return None
    rgb = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA if data.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return to_picture(rgb)


def _from_pil(img: Any) -> Picture:
    """A PIL image (decoded here, once) as a :class:`Picture`."""
    from PIL import ImageOps

    img.load()
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


_limit_lock = threading.Lock()
_active_limits: list[int] = []
_pillow_default: int | None = None


@contextmanager
def pillow_pixel_limit(max_pixels: int) -> Iterator[None]:
    """Let Pillow open images up to ``max_pixels`` while the block runs (its own decompression-bomb
    limit is about 89 MP, and it refuses twice that). Our callers check the size themselves before
    decoding. The limit is only ever raised, never lowered, and goes back to what it was when the
    last reader leaves, so other code in the process keeps Pillow's protection."""
    from PIL import Image

    global _pillow_default
    with _limit_lock:
        if not _active_limits:
            _pillow_default = Image.MAX_IMAGE_PIXELS
        _active_limits.append(max_pixels)
        _apply_pillow_limit()
    try:
        yield
    finally:
        with _limit_lock:
            _active_limits.remove(max_pixels)
            _apply_pillow_limit()


def _apply_pillow_limit() -> None:
    from PIL import Image

    if _pillow_default is None:  # someone switched Pillow's check off: leave it so
        Image.MAX_IMAGE_PIXELS = None
    else:
        Image.MAX_IMAGE_PIXELS = max([_pillow_default, *_active_limits])


def write_image(path: str | Path, image: np.ndarray, quality: int = 95) -> Path:
    """Write grey/RGB/RGBA, 8 or 16 bits. Formats that cannot hold alpha or 16 bits (JPEG) get
    the image flattened to 8-bit RGB/grey.

    Atomic: the image is written to a temporary file in the same folder and renamed over ``path``,
    so a failed write (disk full, killed process) never leaves a half-written ``path`` behind and
    an existing file stays as it was. Raises OSError when the folder or file cannot be written."""
    path = Path(path)
    _make_folder(path.parent)
    arr = _writable_array(image, path.suffix.lower() in (".jpg", ".jpeg"))
    # same folder (so the rename is atomic) and same suffix (the encoders choose the format by it)
    partial = path.with_name(f".{path.stem[:100]}.{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        _encode(partial, arr, quality)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def _make_folder(folder: Path) -> None:
    """Create ``folder``; a clear error when a file sits where it or one of its parents should be."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{parent} is a file, not a folder")
            break
    folder.mkdir(parents=True, exist_ok=True)


def _writable_array(image: np.ndarray, is_jpeg: bool) -> np.ndarray:
    arr = np.asarray(image)
    if np.issubdtype(arr.dtype, np.floating):
        arr = as_uint8(arr)
    if is_jpeg:
        if arr.ndim == 3 and arr.shape[2] in (2, 4):
            arr = arr[..., :-1] if arr.shape[2] == 4 else arr[..., 0]
        if arr.dtype == np.uint16:
            arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return arr


def _encode(path: Path, arr: np.ndarray, quality: int) -> None:
    import cv2
    from PIL import Image

    is_jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    if arr.dtype == np.uint16 and arr.ndim == 3:  # PIL cannot write 16-bit colour
        if path.suffix.lower() not in (".png", ".tif", ".tiff"):
            raise InvalidImageError(f"{path}: cannot write a 16-bit image in this format; use .png or .tif")
        code = cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR
        if not cv2.imwrite(str(path), cv2.cvtColor(arr, code)):
            raise OSError(errno.EIO, "OpenCV could not write the file (disk full?)")
        return
    pil = Image.fromarray(arr.astype(np.uint16) if arr.dtype == np.uint16 else arr)
    pil.save(path, **({"quality": quality} if is_jpeg else {}))


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
