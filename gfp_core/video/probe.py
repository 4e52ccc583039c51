"""What a video file holds, read from its headers: size, rate, length, codecs. Nothing is decoded, so
front ends can refuse a clip (too long, too many pixels) before any work is done."""
from __future__ import annotations

import math
import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ..errors import InvalidVideoError

#: the only demuxers a file is given to (FFmpeg names → what users call them). Anything else that
#: FFmpeg recognises (a picture, a playlist, a raw stream) is refused with its name.
SUPPORTED_CONTAINERS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4/MOV",
    "matroska,webm": "MKV/WebM",
    "avi": "AVI",
    "mpegts": "MPEG-TS",
    "mpeg": "MPEG-PS",
    "flv": "FLV",
    "asf": "WMV",
}
#: file suffixes taken for videos when a folder is listed (the containers above)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".3gp", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg",
                  ".mpeg", ".vob", ".flv", ".wmv", ".asf")
_ADVICE = "check that the file is complete, or convert it with FFmpeg (ffmpeg -i in.ext out.mp4)"


@dataclass(frozen=True)
class VideoInfo:
    """A video file's first video stream, as a viewer sees it.

    ``width``/``height`` are as displayed: ``rotation`` (clockwise, 0/90/180/270) is the turn that
    MP4/MOV track headers ask for (phones filmed upright), and :func:`~gfp_core.video.read_frames`
    applies it; other containers are taken as stored. ``fps`` is the average frame rate.
    ``frame_count`` is the container's count, or ``duration × fps`` rounded when the container does
    not store one (MKV/WebM, MPEG-TS): then ``frame_count_estimated`` is True. ``duration`` is in
    seconds (0 when the file does not say). ``time_base`` is the tick of the stored timestamps: give
    it to :class:`~gfp_core.video.VideoWriter` to keep a variable frame rate exactly.
    """

    path: Path
    container: str
    codec: str
    pix_fmt: str | None
    width: int
    height: int
    rotation: int
    fps: Fraction
    time_base: Fraction
    frame_count: int
    frame_count_estimated: bool
    duration: float
    has_audio: bool
    audio_codecs: tuple[str, ...]
    file_size: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def probe_video(path: str | Path) -> VideoInfo:
    """Read ``path``'s headers. Raises :class:`InvalidVideoError` for a file that is not a video in a
    supported container, is damaged or cut short before its index, or has no video stream."""
    path = Path(path)
    with open_video(path) as container:
        stream = video_stream(container, path)
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise InvalidVideoError(f"{path}: the video stream has no picture size; {_ADVICE}")
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise InvalidVideoError(f"{path}: the video stream has no frame rate; {_ADVICE}")
        duration = _duration(container, stream)
        estimated = stream.frames <= 0
        count = round(duration * fps) if estimated else stream.frames
        if not duration:
            duration = float(count / fps)
        rotation = _mp4_rotation(path) if container.format.name.startswith("mov,") else 0
        width, height = (ctx.height, ctx.width) if rotation in (90, 270) else (ctx.width, ctx.height)
        audio = tuple(s.codec_context.name if s.codec_context else s.name or "unknown"
                      for s in container.streams.audio)
        return VideoInfo(
            path=path, container=container.format.name, codec=ctx.name,
            pix_fmt=ctx.format.name if ctx.format else None, width=width, height=height,
            rotation=rotation, fps=Fraction(fps), time_base=Fraction(stream.time_base),
            frame_count=count, frame_count_estimated=estimated, duration=duration,
            has_audio=bool(audio), audio_codecs=audio, file_size=path.stat().st_size)


@contextmanager
def open_video(path: Path) -> Iterator[Any]:
    """``path`` opened by PyAV for reading, refused unless one of :data:`SUPPORTED_CONTAINERS`
    recognises it; FFmpeg's errors become :class:`InvalidVideoError` naming the file."""
    import av

    if not path.is_file():
        raise InvalidVideoError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InvalidVideoError(f"{path}: empty file")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        if isinstance(exc, OSError):  # the file could not be read at all (permissions, I/O): not its content
            raise
        raise InvalidVideoError(f"{path}: not a readable video (damaged, cut short, or not a video: "
                                f"{exc.strerror}); {_ADVICE}") from exc
    with container:
        name = container.format.name
        if name not in SUPPORTED_CONTAINERS:
            kinds = ", ".join(SUPPORTED_CONTAINERS.values())
            what = "a picture: restore it as an image" if _is_picture(name) else f"use {kinds}"
            raise InvalidVideoError(f"{path}: not a supported video container (FFmpeg reads it as "
                                    f"{name!r}; {what})")
        yield container


def _is_picture(format_name: str) -> bool:
    return format_name.endswith("_pipe") or format_name in ("image2", "gif", "webp")


def video_stream(container: Any, path: Path) -> Any:
    """The first real video stream (cover art in music files is a one-picture 'video' stream: skipped)."""
    from av.stream import Disposition

    for stream in container.streams.video:
        if stream.disposition & Disposition.attached_pic:
            continue
        if stream.codec_context is None:
            raise InvalidVideoError(f"{path}: its video codec {stream.name or '?'} cannot be decoded "
                                    f"by this FFmpeg build; convert it with FFmpeg (ffmpeg -i in.ext out.mp4)")
        return stream
    raise InvalidVideoError(f"{path}: no video stream (an audio file?); give a video file")


def stream_duration(stream: Any) -> float | None:
    """The video stream's own length in seconds: from its header, or the ``DURATION`` tag that
    FFmpeg writes per track in MKV/WebM; None when neither says."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    found = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", stream.metadata.get("DURATION", "").strip())
    if found:
        hours, minutes, seconds = found.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None


def _duration(container: Any, stream: Any) -> float:
    own = stream_duration(stream)
    if own is not None:
        return own
    if container.duration:  # the longest stream's: audio may run on past the video
        return container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    return 0.0


def _mp4_rotation(path: Path) -> int:
    """The clockwise turn of the first video track, from its ``tkhd`` matrix. PyAV gives the display
    matrix only on decoded frames, so the header is read here; FFmpeg's sign convention
    (``av_display_rotation_get`` = -atan2(b, a)) is followed. Mirrored matrices count only their turn."""
    with open(path, "rb") as f:
        end = f.seek(0, 2)
        for moov in _boxes(f, 0, end, b"moov"):
            for trak in _boxes(f, *moov, b"trak"):
                if _handler(f, trak) == b"vide":
                    return _turn(f, trak)
    return 0


def _handler(f: BinaryIO, trak: tuple[int, int]) -> bytes:
    for mdia in _boxes(f, *trak, b"mdia"):
        for start, _end in _boxes(f, *mdia, b"hdlr"):
            f.seek(start + 8)  # version, flags, pre_defined
            return f.read(4)
    return b""


def _turn(f: BinaryIO, trak: tuple[int, int]) -> int:
    for start, end in _boxes(f, *trak, b"tkhd"):
        f.seek(start)
        version = f.read(1)
        f.seek(start + (52 if version == b"\x01" else 40))  # past the times, ids, layer and volume
        raw = f.read(8)
        if len(raw) < 8:
            return 0
        a, b = struct.unpack(">ii", raw)
        if a == b == 0:
            return 0
        degrees = math.degrees(math.atan2(b, a))
        turn = round(degrees / 90) * 90
        return turn % 360 if abs(degrees - turn) < 1 else 0
    return 0


def _boxes(f: BinaryIO, start: int, end: int, kind: bytes) -> Iterator[tuple[int, int]]:
    """The ``(payload start, end)`` of each ``kind`` box directly inside ``[start, end)``."""
    pos, seen = start, 0
    while pos + 8 <= end and seen < 10_000:  # a bound against malformed files, far above real ones
        f.seek(pos)
        size, name = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            large = f.read(8)
            if len(large) < 8:
                return
            size, header = struct.unpack(">Q", large)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        if name == kind:
            yield pos + header, pos + size
        pos, seen = pos + size, seen + 1
