"""ComfyUI entry point: ComfyUI imports this folder as a custom-node pack.

Only re-exports the node mappings; the library itself is ``gfp_core`` and never needs ComfyUI.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
