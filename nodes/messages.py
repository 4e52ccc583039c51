"""gfp_core's messages in ComfyUI's words.

The library's error messages end with what to do next, sometimes naming a command-line flag of the
CLI (``--device cpu``) or a way of giving a file that the nodes do not offer (a path); inside ComfyUI
those mean nothing. ``comfy_errors`` wraps a node's function so that such hints name the node's inputs,
ComfyUI's model folders (or the environment variable that the ComfyUI process reads) instead. The exception is the library's own, its message rewritten.
"""
from __future__ import annotations

import functools
import re
from typing import Callable

from gfp_core import options
from gfp_core.errors import GFPError

#: the library's option names → this pack's input names (the others are the same word); None: the
#: pack has no such input (the image size limits are the library's defaults)
NODE_WORDS = {"min_face_size": "min_size", "model": "model_name", "max_pixels": None, "max_output_pixels": None}

# (pattern, replacement), applied in order; the last one drops any flag still named
_REWRITES: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), r) for p, r in (
    (r"use --device cpu or auto", "choose device cpu or auto on the loader node"),
    (r"--device ([\w.:]+)", r"device \1 on the loader node"),
    (r"accept it with --allow-unverified \(allow_unverified=True, or GFP_ALLOW_UNVERIFIED=1\)",
     "start ComfyUI with the environment variable GFP_ALLOW_UNVERIFIED=1"),
    # where weights go: ComfyUI's model folders (a node takes names from its list, never a path)
    (r"\(add folders with GFP_MODEL_DIRS\), or pass its path directly\.",
     "(in ComfyUI: models/facerestore_models, and models/facedetection for the face detectors; refresh the page "
     "to list a file just added)."),
    (r"For other models pass a registry name \(python -m gfp_core models\)\.",
     "For a known model, choose its name in model_name instead of a file."),
    (r" \((?:--[\w-]+(?:, )?)+(?:[\w_]+=[\w]*)?\)", ""),   # "(--flag, keyword=)" asides
    (r" ?\(?--[a-z][\w-]*\)?", ""),
))


def for_comfy(message: str) -> str:
    """``message`` without command-line flags."""
    for pattern, replacement in _REWRITES:
        message = pattern.sub(replacement, message)
    return message


def translated(exc: GFPError) -> GFPError:
    """``exc`` itself, its message without flags (class and attributes such as ``setting`` kept)."""
    if exc.args and isinstance(exc.args[0], str):
        exc.args = (for_comfy(exc.args[0]), *exc.args[1:])
    return exc


def comfy_errors(fn: Callable) -> Callable:
    """A node function whose gfp_core errors speak of node inputs, not command-line flags."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with options.speaking(NODE_WORDS):
                return fn(*args, **kwargs)
        except GFPError as exc:
            raise translated(exc)
    return wrapper
