"""The demo's server settings: command-line options, each with an environment variable (for Spaces)."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field


@dataclass
class WebSettings:
    host: str | None = None         # None: Gradio's default (GRADIO_SERVER_NAME, else 127.0.0.1)
    port: int | None = None         # None: Gradio's default (GRADIO_SERVER_PORT, else 7860 or the next free)
    concurrency: int = 1            # restores running at once; more wait in the queue
    queue_size: int = 32            # requests waiting beyond that are turned away with a message
    max_file_size: str = "25mb"     # uploads larger than this are refused by the server
    max_pixels: int = 40_000_000    # input images larger than this are refused before decoding
    max_output_pixels: int = 100_000_000  # input pixels × upscale²
    device: str | None = None       # gfp_core's policy: auto = CUDA > MPS > CPU
    dtype: str | None = None        # fp32 unless asked (bf16 is fast on recent CPUs, fp16 on GPUs)
    model_dirs: list[str] = field(default_factory=list)  # searched before the Hugging Face cache
    share: bool = False


_ENV = {  # option → environment variable
    "host": "GFP_WEB_HOST", "port": "GFP_WEB_PORT", "concurrency": "GFP_WEB_CONCURRENCY",
    "queue_size": "GFP_WEB_QUEUE_SIZE", "max_file_size": "GFP_WEB_MAX_FILE_SIZE", "max_pixels": "GFP_WEB_MAX_PIXELS",
    "max_output_pixels": "GFP_WEB_MAX_OUTPUT_PIXELS", "device": "GFP_DEVICE", "dtype": "GFP_DTYPE",
}


def parse_settings(argv: list[str] | None = None) -> WebSettings:
    defaults = WebSettings()
    parser = argparse.ArgumentParser(prog="python -m web", description="GFPGAN face restoration in the browser.")
    for name, env in _ENV.items():
        default = getattr(defaults, name)
        kind = int if name == "port" else type(default) if default is not None else str
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=os.environ.get(env, default),
                            help=f"(env {env}; default {default})")
    parser.add_argument("--model-dir", action="append", default=[], dest="model_dirs",
                        help="a folder of weights files to use before the Hugging Face cache (repeatable)")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live address")
    args = parser.parse_args(argv)
    # argparse converts string defaults (the environment's values) with each option's type
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return WebSettings(**vars(args))
