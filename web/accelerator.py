"""ZeroGPU Spaces lend a GPU only inside functions wrapped by ``spaces.GPU``; elsewhere (a CPU Space,
a local machine) the ``spaces`` package is absent or its wrapper does nothing."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

GPU_SECONDS = 120  # the longest a restore may hold a ZeroGPU slice (a large photo with Real-ESRGAN)


def on_accelerator(fn: F) -> F:
    """``fn`` wrapped by ``spaces.GPU`` when the ``spaces`` package is installed, else ``fn`` itself."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=GPU_SECONDS)(fn)
