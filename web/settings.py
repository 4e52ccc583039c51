"""The demo's server settings: command-line options, each with an environment variable (for Spaces)."""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field

from gfp_core import options
from gfp_core.errors import InvalidOptionError

#: option names (gfp_core.options', and the demo's own video limits below) → these settings' flags
SETTINGS_FLAGS = {"face_limit": "--max-faces", "max_pixels": "--max-pixels",
                  "max_output_pixels": "--max-output-pixels", "device": "--device", "dtype": "--dtype",
                  "backend": "--backend",
                  "max_video_seconds": "--max-video-seconds", "max_video_frames": "--max-video-frames",
                  "max_video_pixels": "--max-video-pixels"}
#: the demo's own limits on clips (the library has none: a long clip is only slow), checked the options' way
MAX_VIDEO_SECONDS = options.Range("max_video_seconds", 0, low_open=True, rule="must be a positive number of seconds",
                                  what="clips longer than this are refused before decoding")
MAX_VIDEO_FRAMES = options.Range("max_video_frames", 1, whole=True, rule="must be a positive number of frames",
                                 what="clips with more frames than this are refused before decoding")
MAX_VIDEO_PIXELS = options.Range("max_video_pixels", 1, whole=True, rule="must be a positive number of pixels",
                                 what="clips whose frames are larger than this are refused before decoding")


@dataclass
class WebSettings:
    host: str | None = None         # None: Gradio's default (GRADIO_SERVER_NAME, else 127.0.0.1)
    port: int | None = None         # None: Gradio's default (GRADIO_SERVER_PORT, else 7860 or the next free)
    concurrency: int = 1            # restores running at once; more wait in the queue
    queue_size: int = 32            # requests waiting beyond that are turned away with a message
    max_file_size: str = "25mb"     # uploads (and pasted data: URLs) larger than this are refused
    max_pixels: int = 40_000_000    # input images larger than this are refused before decoding
    max_output_pixels: int = 100_000_000  # input pixels × upscale²
    max_faces: int = 20             # the largest faces of a photo that one request restores
    max_video_seconds: float = 20.0  # clips longer than this are refused before decoding
    max_video_frames: int = 600     # … or with more frames (20 s at 30 fps)
    max_video_pixels: int = 1920 * 1080  # … or with larger frames (full HD; a frame is restored whole)
    time_limit: float = 300         # seconds one request may work before it is stopped
    keep_results: float = 3600      # seconds a result file stays on the server
    device: str | None = None       # gfp_core's policy: auto = CUDA > MPS > CPU
    dtype: str | None = None        # fp32 unless asked (bf16 is fast on recent CPUs, fp16 on GPUs)
    backend: str | None = None      # what runs GFPGAN: None = gfp_core's default (GFP_BACKEND, else auto)
    model_dirs: list[str] = field(default_factory=list)  # searched before the Hugging Face cache
    allow_unverified: bool = False  # use weights whose SHA-256 differs from the registry's (the page says so)
    share: bool = False


_ENV = {  # option → environment variable
    "host": "GFP_WEB_HOST", "port": "GFP_WEB_PORT", "concurrency": "GFP_WEB_CONCURRENCY",
    "queue_size": "GFP_WEB_QUEUE_SIZE", "max_file_size": "GFP_WEB_MAX_FILE_SIZE", "max_pixels": "GFP_WEB_MAX_PIXELS",
    "max_output_pixels": "GFP_WEB_MAX_OUTPUT_PIXELS", "max_faces": "GFP_WEB_MAX_FACES",
    "max_video_seconds": "GFP_WEB_MAX_VIDEO_SECONDS", "max_video_frames": "GFP_WEB_MAX_VIDEO_FRAMES",
    "max_video_pixels": "GFP_WEB_MAX_VIDEO_PIXELS",
    "time_limit": "GFP_WEB_TIME_LIMIT", "keep_results": "GFP_WEB_KEEP_RESULTS", "device": "GFP_DEVICE",
    "dtype": "GFP_DTYPE", "backend": "GFP_BACKEND",
}
#: what the generic "(env …; default …)" help does not say
_HELP = {"backend": f"{options.BACKENDS.what}: {', '.join(options.BACKENDS.names)} "}
_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3}  # as Gradio counts max_file_size


def file_size_bytes(text: str) -> int:
    """'25mb' → bytes, with the units Gradio's ``max_file_size`` takes (1 kb = 1024 bytes)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a file size (e.g. 25mb): {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def parse_settings(argv: list[str] | None = None) -> WebSettings:
    defaults = WebSettings()
    parser = argparse.ArgumentParser(prog="python -m web", description="GFPGAN face restoration in the browser.")
    for name, env in _ENV.items():
        default = getattr(defaults, name)
        kind = int if name == "port" else type(default) if default is not None else str
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=os.environ.get(env, default),
                            help=f"{_HELP.get(name, '')}(env {env}; default {default})")
    parser.add_argument("--model-dir", action="append", default=[], dest="model_dirs",
                        help="a folder of weights files to use before the Hugging Face cache (repeatable)")
    parser.add_argument("--allow-unverified", action="store_true",
                        default=_truthy(os.environ.get("GFP_ALLOW_UNVERIFIED")),
                        help="use weights whose SHA-256 does not match the registry's; the page then says so "
                             "(env GFP_ALLOW_UNVERIFIED=1)")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live address")
    args = parser.parse_args(argv)
    # argparse converts string defaults (the environment's values) with each option's type
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    try:  # the library's checks (gfp_core.options), in these flags' words
        with options.speaking(SETTINGS_FLAGS):
            options.FACE_LIMIT.check(args.max_faces)
            options.MAX_PIXELS.check(args.max_pixels)
            options.MAX_OUTPUT_PIXELS.check(args.max_output_pixels)
            MAX_VIDEO_SECONDS.check(args.max_video_seconds)
            MAX_VIDEO_FRAMES.check(args.max_video_frames)
            MAX_VIDEO_PIXELS.check(args.max_video_pixels)
            if args.device is not None:
                args.device = options.check_device(args.device)
            if args.dtype is not None:
                args.dtype = options.check_dtype(args.dtype)
            if args.backend is not None:  # refused at start-up, not on a visitor's first restore
                args.backend = options.check_backend(args.backend)
    except InvalidOptionError as exc:
        parser.error(str(exc))
    if args.time_limit <= 0:
        parser.error("--time-limit must be a positive number of seconds")
    try:
        file_size_bytes(args.max_file_size)
    except ValueError as exc:
        parser.error(f"--max-file-size: {exc}")
    return WebSettings(**vars(args))
