"""What arrives: the file behind a photo or clip payload (the page's upload, paste or webcam, or an API
call), read only when Gradio itself stored it."""
from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

from gfp_core.errors import InvalidImageError

NAME_CHARS = 60  # an uploaded file's name as messages repeat it

#: the one answer for a file reference that is not a file this server received: it must not tell
#: whether some other path on the server exists
UPLOAD_LOST = "The photo did not arrive; upload it again."
VIDEO_LOST = "The video did not arrive; upload it again."


class UploadError(InvalidImageError):
    """A payload that does not name a file this server received."""


def uploaded_path(image: Any, cache_dir: Path, scratch: Path, max_bytes: int) -> tuple[Path, str]:
    """The file behind a raw image payload (the page's upload, paste or webcam, or an API call), and
    the name the person knows it by.

    Only files that Gradio stored in its upload folder ``cache_dir`` are read (after resolving
    symbolic links and ``..``), and pasted ``data:`` URLs of at most ``max_bytes``; anything else is
    refused with one message, whether or not the path exists."""
    if image is None:
        raise UploadError("Add a photo first: upload one, paste one, or take one with the webcam.")
    data = _payload(image, UPLOAD_LOST)
    url = data.get("url")
    if isinstance(url, str) and url.startswith("data:"):
        return _pasted(url, scratch, max_bytes), "pasted image"
    return _stored(data, cache_dir, UPLOAD_LOST)


def uploaded_video(clip: Any, cache_dir: Path) -> tuple[Path, str]:
    """The file behind a raw video payload and the name the person knows it by: as
    :func:`uploaded_path`, but only uploads (a clip cannot be pasted)."""
    if clip is None:
        raise UploadError("Add a video first: upload a short clip.")
    return _stored(_payload(clip, VIDEO_LOST), cache_dir, VIDEO_LOST)


def _payload(value: Any, lost: str) -> dict:
    """A payload as a FileData dict: a path string, a dict, or a FileData model."""
    if isinstance(value, str):
        return {"path": value}
    if isinstance(value, dict):
        return value
    if hasattr(value, "model_dump"):  # a FileData model
        return value.model_dump()
    raise UploadError(lost)


def _stored(data: dict, cache_dir: Path, lost: str) -> tuple[Path, str]:
    path = data.get("path")
    if not isinstance(path, str) or not path:
        raise UploadError(lost)
    file = _stored_file(path, cache_dir, lost)
    name = data.get("orig_name") if isinstance(data.get("orig_name"), str) else None
    return file, _short_name(name or file.name)


def _stored_file(path: str, cache_dir: Path, lost: str = UPLOAD_LOST) -> Path:
    """``path`` if it is a regular file inside ``cache_dir`` once links and ``..`` are resolved."""
    try:
        file = Path(os.path.realpath(path))
        inside = file.is_relative_to(Path(os.path.realpath(cache_dir)))
        if inside and file.is_file():
            return file
    except (OSError, ValueError):  # odd bytes in the name, too long, …
        pass
    raise UploadError(lost)


def _pasted(url: str, scratch: Path, max_bytes: int) -> Path:
    """A pasted image's data URL as a file, its size checked before anything is decoded."""
    header, _, encoded = url.partition(",")
    if len(encoded) > 4 * (max_bytes // 3 + 1) + 4:  # base64: 4 characters for every 3 bytes
        raise UploadError(f"The pasted image is larger than this demo's limit of {max_bytes / 2**20:.0f} MB; "
                          f"save it to a smaller file and upload that.")
    try:
        if ";base64" not in header:
            raise ValueError("not base64")
        payload = base64.b64decode(encoded, validate=False)
    except (ValueError, binascii.Error):
        raise UploadError("The pasted image could not be read; save it to a file and upload that.") from None
    file = scratch / "pasted.png"
    file.write_bytes(payload)
    return file


def _short_name(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"
