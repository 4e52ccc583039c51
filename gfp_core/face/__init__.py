"""Face stages: detection, selection, alignment, paste-back. Each works on its own (the ComfyUI
nodes call them one by one); :class:`gfp_core.engine.Engine` runs them all, for every front end."""
from .types import Face

__all__ = ["Face"]
