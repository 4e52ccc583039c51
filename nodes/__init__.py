"""ComfyUI nodes: thin adapters that convert IMAGE/MASK tensors and call gfp_core.

The node definitions (:mod:`nodes.extension` and the ``*_nodes`` modules) use ComfyUI's schema API
(``comfy_api.latest``) and import only inside ComfyUI; what the nodes do (:mod:`nodes.loaders`,
:mod:`nodes.faces`, :mod:`nodes.memory`, :mod:`nodes.messages`) imports without it.
"""
from . import messages

__all__ = ["messages"]
