"""Video files in and out through PyAV (FFmpeg inside its wheels), one frame at a time.

==============  =====================================================================
probe_video     what a file holds (size as displayed, rate, frames, length, audio), from its headers
read_frames     decoded frames as upright RGB arrays with exact times, streamed
VideoWriter     frames into .mp4/.mov/.mkv (H.264) or .webm (VP9), atomic, audio carried over
VideoInfo       what probe_video returns
VideoFrame      what read_frames yields
==============  =====================================================================
"""
from __future__ import annotations

from .probe import SUPPORTED_CONTAINERS, VideoInfo, probe_video
from .reader import VideoFrame, read_frames
from .writer import CODECS, CONTAINERS, VideoWriter

__all__ = ["CODECS", "CONTAINERS", "SUPPORTED_CONTAINERS", "VideoFrame", "VideoInfo", "VideoWriter",
           "probe_video", "read_frames"]
