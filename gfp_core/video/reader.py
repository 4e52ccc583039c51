"""A video file's frames, decoded one at a time as upright RGB arrays with their presentation times."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InvalidVideoError
from .probe import VideoInfo, open_video, probe_video, stream_duration, video_stream

_ADVICE = "re-download or re-export it, or convert it with FFmpeg (ffmpeg -i in.ext out.mp4)"


@dataclass(frozen=True)
class VideoFrame:
    """One frame as shown. ``image``: ``H×W×3`` uint8 RGB, upright (the file's rotation applied);
    ``time``: seconds from the start of the file, exact (stored timestamp × time base, less the
    file's start time: audio taken from the same file by :class:`~gfp_core.video.VideoWriter` is
    shifted alike, so it stays in sync); ``duration``: seconds on screen, None when the file does
    not say."""

    image: np.ndarray
    index: int
    time: Fraction
    duration: Fraction | None


def read_frames(path: str | Path, info: VideoInfo | None = None) -> Iterator[VideoFrame]:
    """Decode the first video stream of ``path`` frame by frame (FFmpeg's frame and slice threads),
    holding only the frames the decoder needs, never the clip.

    The file is checked here (``info``: a :func:`probe_video` result already at hand), so a file
    that is not a video raises :class:`InvalidVideoError` before the first frame is asked for. A
    file that turns out damaged while decoding, or that ends well before its stated length (a cut
    download), raises it at that point, saying how many frames were read.
    """
    same = info is not None and info.path == Path(path)
    return _frames(info if same else probe_video(path))


def _frames(info: VideoInfo) -> Iterator[VideoFrame]:
    import av
    from av.video.reformatter import Interpolation

    # exact rounding and full-resolution chroma interpolation: half the error of swscale's fast path
    # (which is off by one level on most pixels) for about 10 ms a 1080p frame
    to_rgb = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    path, count, end = info.path, 0, Fraction(0)
    turns = -info.rotation // 90  # np.rot90 turns counter-clockwise; rotation is clockwise
    with open_video(path) as container:
        stream = video_stream(container, path)
        stream.thread_type = "AUTO"
        tb = Fraction(stream.time_base)
        start = Fraction(container.start_time or 0, 1_000_000)  # AV_TIME_BASE: microseconds
        stream_start = Fraction(stream.start_time or 0) * tb
        length = stream_duration(stream)
        try:
            for frame in container.decode(stream):
                # a frame without a timestamp follows its predecessor by the average frame time
                time = frame.pts * tb - start if frame.pts is not None else end - start
                duration = frame.duration * tb if frame.duration else None
                end = time + start + (duration or 1 / info.fps)
                image = frame.to_ndarray(format="rgb24", interpolation=to_rgb)  # the frame's own matrix and range
                if turns:
                    image = np.ascontiguousarray(np.rot90(image, turns))
                yield VideoFrame(image, count, time, duration)
                count += 1
        except av.FFmpegError as exc:
            raise InvalidVideoError(f"{path}: damaged after {count} frames ({exc.strerror}); {_ADVICE}") from exc
    _check_complete(info, count, end - stream_start, length)


def _check_complete(info: VideoInfo, count: int, covered: Fraction, length: float | None) -> None:
    """Frames that stop more than a frame's time before the video stream's stated length (not the
    file's: audio may run on) mean a file damaged or cut short, which FFmpeg ends quietly. Frames
    dropped inside the clip, or a count that an edit list trims, are no such sign."""
    if count == 0:
        raise InvalidVideoError(f"{info.path}: no frame could be decoded; {_ADVICE}")
    complete = not info.frame_count_estimated and count >= info.frame_count
    if length is not None and not complete and covered < length - 1 / info.fps:
        raise InvalidVideoError(
            f"{info.path}: the video stops after {count} frames, at {float(covered):.2f} of its "
            f"{length:.2f} s: the file is damaged or cut short (an unfinished download or copy?); {_ADVICE}")
