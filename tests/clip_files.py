"""Video files for tests and benchmarks: frames (e.g. a :mod:`clips` clip of a real face) encoded
with PyAV directly, not with the code under test, H.264 with an AAC tone as long as the video.

    write_clip(tmp_path / "clip.mp4", make_clip("moving", 16).frames, fps=15)
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import av
import numpy as np

AUDIO_RATE = 48000


def write_clip(path: Path, frames: Iterable[np.ndarray], *, fps: int = 15, audio: bool = True, crf: int = 12,
               faststart: bool = False) -> Path:
    """``frames`` (``H×W×3`` uint8 RGB, even sizes) as an H.264 file at ``fps``, with a 440 Hz mono
    AAC tone as long as the video when ``audio``; ``faststart``: the index before the data (as
    files made for streaming), so a file cut short still opens."""
    options = {"movflags": "+faststart"} if faststart else {}
    count = 0
    with av.open(str(path), "w", options=options) as out:
        video = None
        for image in frames:
            if video is None:
                video = out.add_stream("libx264", rate=fps, options={"crf": str(crf)})
                video.height, video.width = image.shape[:2]
                video.pix_fmt = "yuv420p"
                sound = out.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = count
            out.mux(video.encode(frame))
            count += 1
        out.mux(video.encode())
        if sound is not None:
            samples = round(AUDIO_RATE * count / fps)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / AUDIO_RATE)).astype(np.float32)
            for start in range(0, samples, 960):  # the encoder regroups them into its own frame size
                chunk = np.ascontiguousarray(tone[None, start:start + 960])
                piece = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                piece.sample_rate, piece.pts = AUDIO_RATE, start
                out.mux(sound.encode(piece))
            out.mux(sound.encode())
    return path


def audio_packets(path: Path) -> list[tuple[int, bytes]]:
    """(pts, payload) of every audio packet: equal lists mean the audio was copied untouched."""
    with av.open(str(path)) as box:
        return [(p.pts, bytes(p)) for p in box.demux(*box.streams.audio) if p.size]
