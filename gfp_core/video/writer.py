"""RGB frames encoded into a video file, written atomically, with another file's audio carried over."""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import InvalidImageError, InvalidVideoError
from ..options import Range
from .audio import AudioCarry

#: file suffix → (FFmpeg muxer, video codec, audio codec for sources whose audio cannot be copied)
CONTAINERS = {
    ".mp4": ("mp4", "libx264", "aac"),
    ".m4v": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "aac"),
    ".webm": ("webm", "libvpx-vp9", "libopus"),  # WebM takes only VP8/VP9/AV1 and Vorbis/Opus
}
#: codec → (pixel format, encoder options). ``crf`` is the quality knob (lower: better, larger).
CODECS = {
    "libx264": ("yuv420p", {"crf": "18", "preset": "medium"}),  # 18: visually lossless, plays anywhere
    "libx264rgb": ("rgb24", {"crf": "18", "preset": "medium"}),  # crf 0: lossless RGB (few players)
    "libvpx-vp9": ("yuv420p", {"crf": "32", "b": "0", "row-mt": "1", "cpu-used": "4"}),
    "ffv1": ("bgr0", {}),  # always lossless RGB, for .mkv: frames come back bit for bit
}
_ALIASES = {"h264": "libx264", "x264": "libx264", "vp9": "libvpx-vp9"}
#: the quality knob's range: x264 takes 0–51, VP9 0–63 (checked the options' way: gfp_core.options)
CRF = Range("crf", 0, 63, whole=True, none_ok=True, what="video quality: lower is better and larger")
CRF_X264 = Range("crf", 0, 51, whole=True, none_ok=True, what=CRF.what)


class VideoWriter:
    """Frames in, a video file out; the container follows ``path``'s suffix (:data:`CONTAINERS`)::

        info = probe_video("in.mp4")
        with VideoWriter("out.mp4", info.fps, time_base=info.time_base, audio_from="in.mp4") as out:
            for frame in read_frames("in.mp4", info):
                out.write(process(frame.image), frame.time, frame.duration)

    Atomic: frames go to a hidden ``.<name>.<random>.partial<suffix>`` beside ``path``, renamed over
    ``path`` only when the block ends without an exception; otherwise it is deleted and ``path`` is
    left as it was.

    ``fps``: the nominal frame rate (frames without a time are ``1/fps`` apart). ``time_base``: the
    tick that times are rounded to; by default a fraction of ``1/fps`` finer than 0.1 ms (as FFmpeg
    chooses), so frames ``1/fps`` apart are exact; give the source's to keep its timing exactly. ``codec``/``crf``/
    ``pix_fmt``: see :data:`CODECS`; YUV is written as BT.709, limited range, and tagged so.
    ``audio_from``: a file whose audio streams are carried over, copied packet for packet when the
    container takes their codec, else re-encoded (AAC; Opus in WebM); ``audio`` says which.

    Frames must all have one size. With a subsampled pixel format (yuv420p) an odd width or height
    is padded to even by repeating the last column or row (no pixel is lost; the video is one pixel
    larger): H.264 cannot store odd 4:2:0 sizes. ``size`` is the size written.
    """

    def __init__(self, path: str | Path, fps: Fraction | int | float | str, *, codec: str | None = None,
                 crf: int | None = None, pix_fmt: str | None = None, time_base: Fraction | None = None,
                 audio_from: str | Path | None = None) -> None:
        import av

        self.path = Path(path)
        self.codec = check_output(self.path, codec, crf)
        muxer, _default, self._audio_fallback = CONTAINERS[self.path.suffix.lower()]
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        pix, options = CODECS.get(self.codec, ("yuv420p", {}))
        self.pix_fmt = pix_fmt or pix
        self._options = {**options, **({"crf": str(crf)} if crf is not None else {})}
        self.time_base = Fraction(time_base) if time_base else _fine_time_base(self.fps)
        self.size: tuple[int, int] | None = None
        self.frame_count = 0
        self.audio: str | None = None
        self._shape: tuple[int, int] | None = None
        self._stream: Any = None
        self._last_pts: int | None = None
        self._durations: dict[int, int] = {}
        self._closed = False
        self._yuv = False
        self._partial = partial_path(self.path)
        self._carry = AudioCarry(Path(audio_from)) if audio_from is not None else None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self._partial), "w", format=muxer,
                                      options=muxer_options(muxer, self.time_base))
        except BaseException:
            self._partial.unlink(missing_ok=True)
            if self._carry is not None:
                self._carry.close()
            raise

    def write(self, image: np.ndarray, time: Fraction | float | None = None,
              duration: Fraction | float | None = None) -> None:
        """Add one frame: ``H×W×3`` RGB (uint8, or float in [0, 1]) shown at ``time`` seconds (None:
        ``1/fps`` after the previous frame) for ``duration`` seconds (None: ``1/fps``; most containers
        store only the last frame's). Times must increase; two that round to one tick are set a tick
        apart."""
        import av

        from av.video.reformatter import Interpolation

        arr = np.asarray(image)
        if np.issubdtype(arr.dtype, np.floating):  # rounded as gfp_core.image.as_uint8 does
            arr = (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise InvalidImageError(f"a video frame must be H×W×3 RGB, uint8 or float in [0, 1]; got "
                                    f"{arr.dtype} {list(arr.shape)}")
        if self._stream is None:
            self._start(arr.shape[1], arr.shape[0])
        elif arr.shape[:2] != self._shape:
            raise InvalidImageError(f"frame {self.frame_count} is {arr.shape[1]}x{arr.shape[0]}, the video is "
                                    f"{self._shape[1]}x{self._shape[0]}; give every frame one size")
        step = round(1 / (self.fps * self.time_base)) or 1
        if time is None:
            pts = 0 if self._last_pts is None else self._last_pts + step
        else:
            pts = round(Fraction(time) / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        self._durations[pts] = max(1, round(Fraction(duration) / self.time_base)) if duration else step
        frame = av.VideoFrame.from_ndarray(self._pad(arr), format="rgb24")
        if self._yuv:  # chroma averaged over each 2×2 block, exactly rounded: the closest 4:2:0 to the RGB
            frame = frame.reformat(format=self.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG",
                                   interpolation=Interpolation.AREA | Interpolation.ACCURATE_RND)
        frame.pts = pts
        with self._ffmpeg_errors():
            self._mux(self._stream.encode(frame))
            if self._carry is not None:
                self._carry.write_until(self._container, Fraction(pts) * self.time_base)
        self.frame_count += 1

    def _start(self, width: int, height: int) -> None:
        import av

        self._shape = (height, width)
        fmt = av.VideoFormat(self.pix_fmt)
        self._yuv = any(c.is_chroma for c in fmt.components)
        subsampled = fmt.chroma_width(4) < 4 or fmt.chroma_height(4) < 4
        self.size = (width + width % 2, height + height % 2) if subsampled else (width, height)
        stream = self._container.add_stream(self.codec, rate=self.fps, options=self._options)
        stream.width, stream.height = self.size
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        if self._yuv:  # tag what write() converts to, so players and read_frames use the same matrix
            ctx = stream.codec_context
            ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = 1, 1, 1, 1  # BT.709, limited
        self._stream = stream
        if self._carry is not None:
            self._carry.attach(self._container, self._audio_fallback)
            self.audio = self._carry.mode

    def _pad(self, arr: np.ndarray) -> np.ndarray:
        extra_h, extra_w = self.size[1] - arr.shape[0], self.size[0] - arr.shape[1]
        return np.pad(arr, ((0, extra_h), (0, extra_w), (0, 0)), mode="edge") if extra_h or extra_w else arr

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:  # the encoder's packets keep their frame's pts; give them its duration
            packet.duration = self._durations.pop(packet.pts, packet.duration)
            self._container.mux(packet)

    def close(self) -> None:
        """Finish the file and move it into place (what leaving the ``with`` block does)."""
        if self._closed:
            return
        try:
            if self._stream is None:
                raise InvalidVideoError(f"{self.path}: no frame was written; a video needs at least one")
            with self._ffmpeg_errors():
                self._mux(self._stream.encode(None))
                if self._carry is not None:
                    self._carry.write_until(self._container, None)
                    self._carry.close()
                self._container.close()
            self._closed = True
            os.replace(self._partial, self.path)
        except BaseException:
            self.abort()
            raise

    @contextmanager
    def _ffmpeg_errors(self) -> Iterator[None]:
        """FFmpeg refusing what it was given (not the disk failing: that stays an OSError)."""
        import av

        try:
            yield
        except av.FFmpegError as exc:
            if isinstance(exc, OSError):
                raise
            raise InvalidVideoError(f"{self.path}: FFmpeg could not write this video ({exc}); try another "
                                    f"container (.mkv takes almost any codec) or codec") from exc

    def abort(self) -> None:
        """Give up: close everything and delete the partial file; ``path`` is left as it was."""
        self._closed = True
        for closer in (self._container.close, *([self._carry.close] if self._carry else [])):
            try:
                closer()
            except Exception:  # already failing: the first error is the one to report
                pass
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def partial_path(path: Path) -> Path:
    """Where a file for ``path`` is written before it is renamed into place: the same folder (so the
    rename is atomic) and suffix, hidden so it is never taken for a result."""
    return path.with_name(f".{path.stem[:100]}.{secrets.token_hex(4)}.partial{path.suffix}")


def muxer_options(muxer: str, time_base: Fraction) -> dict[str, str]:
    """What the muxer is told when a file is opened for writing."""
    if muxer not in ("mp4", "mov"):
        return {}
    # the index first, so the file plays while it loads; edit lists (a clip that starts after
    # 0 s) counted in the frames' own ticks rather than milliseconds, so every time stays exact
    options = {"movflags": "+faststart"}
    if time_base.numerator == 1 and time_base.denominator < 2**31:
        options["movie_timescale"] = str(time_base.denominator)
    return options


def _fine_time_base(fps: Fraction) -> Fraction:
    """``1/(numerator of fps × 2ⁿ)``, the first finer than 0.1 ms (FFmpeg's rule for MP4): 1/15360 s
    at 15 fps, 1/30000 s at 30000/1001. Frames ``1/fps`` apart land on whole ticks, free times within
    0.1 ms."""
    ticks = fps.numerator
    while ticks < 10_000:
        ticks *= 2
    return Fraction(1, ticks)


def check_output(path: Path, codec: str | None = None, crf: int | None = None) -> str:
    """Refuse, before any work, a video ``path`` whose suffix names no container that can be written,
    a codec this FFmpeg lacks or the container cannot hold, or a ``crf`` out of the codec's range.
    Returns the codec that will be used (``codec``'s encoder name, or the container's default)."""
    suffix = path.suffix.lower()
    if suffix not in CONTAINERS:
        raise InvalidVideoError(f"{path}: cannot write a {suffix or 'suffix-less'} video; name it "
                                f"{', '.join(CONTAINERS)}")
    muxer, default_codec, _audio = CONTAINERS[suffix]
    codec = _ALIASES.get(codec or "", codec) or default_codec
    (CRF_X264 if codec.startswith("libx264") else CRF).check(crf)
    _check_codec(path, codec, muxer)
    return codec


def _check_codec(path: Path, codec: str, muxer: str) -> None:
    """Refuse, before any frame is encoded, a codec this FFmpeg lacks or the container cannot hold."""
    import av

    try:
        found = av.Codec(codec, "w").type == "video"
    except Exception:
        found = False
    if not found:
        raise InvalidVideoError(f"{path}: this FFmpeg build has no video encoder named {codec!r}; use one of "
                                f"{', '.join(CODECS)}")
    if not _takes(muxer, codec):
        allowed = [s for s, (m, _v, _a) in CONTAINERS.items() if m != muxer and _takes(m, codec)]
        raise InvalidVideoError(f"{path}: a {path.suffix} file cannot hold {codec} video; name it "
                                f"{' or '.join(allowed) or 'differently'}, or choose another codec")


def _takes(muxer: str, codec: str) -> bool:
    import av

    with av.open(os.devnull, "w", format=muxer) as probe:
        try:
            probe.add_stream(codec)
        except ValueError:
            return False
    return True
