"""The demo's limits on an uploaded clip, checked from the file's size and its headers
(:func:`gfp_core.video.probe_video`) before a single frame is decoded."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gfp_core.errors import InvalidVideoError
from gfp_core.video import VideoInfo, probe_video


class VideoLimitError(InvalidVideoError):
    """A clip over one of the demo's limits; ``setting`` names the limit (``max_video_seconds``, …)."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self):  # ZeroGPU sends errors back pickled: the setting travels too
        return type(self), (self.args[0], self.setting)


@dataclass(frozen=True)
class VideoLimits:
    """``seconds``: the longest clip; ``frames``: the most frames; ``pixels``: the largest frame (as
    displayed); ``file_bytes``: the largest upload."""

    seconds: float = 20.0
    frames: int = 600
    pixels: int = 1920 * 1080
    file_bytes: int = 25 * 2**20

    def check(self, path: str | Path) -> VideoInfo:
        """``path``'s headers if the clip is within every limit; else one message that names the limit
        it is over (the first of: file size, duration, frames, frame size). A file that is no video
        raises :class:`InvalidVideoError` from :func:`probe_video`."""
        path = Path(path)
        size = path.stat().st_size
        if size > self.file_bytes:  # before FFmpeg reads a byte
            raise VideoLimitError(f"{path} is {megabytes(size)} MB, over this demo's limit of "
                                  f"{megabytes(self.file_bytes)} MB per file; upload a shorter or more compressed clip",
                                  "max_file_size")
        info = probe_video(path)
        if info.duration > self.seconds:
            raise VideoLimitError(f"{path} is {info.duration:.1f} s long, over this demo's limit of "
                                  f"{self.seconds:g} s; trim it to {self.seconds:g} s or less", "max_video_seconds")
        if info.frame_count > self.frames:
            raise VideoLimitError(f"{path} has {info.frame_count} frames ({float(info.fps):.3g} per second), over this "
                                  f"demo's limit of {self.frames}; upload a shorter clip or one with fewer frames per "
                                  f"second", "max_video_frames")
        if info.pixels > self.pixels:
            raise VideoLimitError(f"{path} is {info.width}x{info.height} per frame, over this demo's limit of "
                                  f"{self.pixels:,} pixels per frame ({frame_size(self.pixels)}); "
                                  f"upload a smaller video", "max_video_pixels")
        return info


def megabytes(size: int) -> str:
    """Bytes in MB as Gradio's ``max_file_size`` counts them (1 MB = 2²⁰ bytes), for messages."""
    return f"{size / 2**20:.0f}" if size >= 2**20 else f"{size / 2**20:.2g}"


def frame_size(pixels: int) -> str:
    """A limit in pixels by the familiar 16:9 frame it allows ('1920x1080' for 2,073,600)."""
    height = int((pixels * 9 / 16) ** 0.5)
    width = int(pixels / height) if height else 0
    return f"about {width}x{height}" if width * height != pixels else f"{width}x{height}"
