"""Face stages: detection, selection, alignment, paste-back. Each works on its own (the ComfyUI
nodes call them one by one); :class:`gfp_core.pipeline.FaceRestorer` runs them all."""
from .types import Face

__all__ = ["Face"]
