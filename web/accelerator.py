"""ZeroGPU Spaces lend a GPU only inside functions wrapped by ``spaces.GPU``; elsewhere (a CPU Space,
a local machine) the ``spaces`` package is absent or its wrapper does nothing.

ZeroGPU runs the wrapped function in a GPU worker and pickles its arguments and its result, so the
wrapped functions here, :func:`restore_job` and :func:`video_job`, take only a path string and options
(no callbacks: progress goes through tqdm, which ``gr.Progress(track_tqdm=True)`` follows). The
models live in the engine, loaded when the server starts (:meth:`RestoreEngine.preload`), as
ZeroGPU asks: workers share them instead of loading their own.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .engine import ClipOutcome, RestoreEngine, RestoreOptions, RestoreOutcome, VideoOptions

F = TypeVar("F", bound=Callable)

GPU_SECONDS = 120  # the longest a restore may hold a ZeroGPU slice (a large photo with Real-ESRGAN)
VIDEO_GPU_SECONDS = 300  # a clip: the demo's default time limit (a request is stopped there anyway)

_engine: RestoreEngine | None = None


def use_engine(engine: RestoreEngine) -> None:
    """The engine (and its loaded models) that :func:`restore_job` runs on."""
    global _engine
    _engine = engine


def restore_job(image_path: str, options: RestoreOptions) -> RestoreOutcome:
    """One restore: what runs on the accelerator. Arguments and result pickle."""
    if _engine is None:
        raise RuntimeError("web.accelerator.use_engine() was not called")
    return _engine.restore(image_path, options)


def video_job(video_path: str, options: VideoOptions) -> ClipOutcome:
    """One clip: what runs on the accelerator. Arguments and result pickle."""
    if _engine is None:
        raise RuntimeError("web.accelerator.use_engine() was not called")
    return _engine.restore_video(video_path, options)


def on_accelerator(fn: F, seconds: int = GPU_SECONDS) -> F:
    """``fn`` wrapped by ``spaces.GPU`` (holding the GPU at most ``seconds``) when the ``spaces``
    package is installed, else ``fn`` itself."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=seconds)(fn)
