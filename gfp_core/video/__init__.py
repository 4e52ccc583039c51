"""Video files in and out through PyAV (FFmpeg inside its wheels), one frame at a time.

==============  =====================================================================
probe_video     what a file holds (size as displayed, rate, frames, length, audio), from its headers
read_frames     decoded frames as upright RGB arrays with exact times, streamed
VideoWriter     frames into .mp4/.mov/.mkv (H.264) or .webm (VP9), atomic, audio carried over
join_videos     pieces of one clip joined packet for packet (no re-encoding), atomic, audio carried over
restore_video   the faces of a video file restored by an Engine: two passes, bounded memory, resumable
VideoOutcome    what restore_video did
VideoInfo       what probe_video returns
VideoFrame      what read_frames yields
==============  =====================================================================
"""
from __future__ import annotations

from typing import Any

from .join import join_videos
from .probe import SUPPORTED_CONTAINERS, VIDEO_SUFFIXES, VideoInfo, probe_video
from .reader import VideoFrame, read_frames
from .writer import CODECS, CONTAINERS, VideoWriter, check_output


def __getattr__(name: str) -> Any:  # restoring needs the engine (torch): imported on first use
    if name in ("restore_video", "VideoOutcome"):
        from . import restore

        return getattr(restore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CODECS", "CONTAINERS", "SUPPORTED_CONTAINERS", "VIDEO_SUFFIXES", "VideoFrame", "VideoInfo",
           "VideoOutcome", "VideoWriter", "check_output", "join_videos", "probe_video", "read_frames",
           "restore_video"]
