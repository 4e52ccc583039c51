"""The pack as a ComfyUI extension (schema API): the node list ComfyUI registers."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from . import host
from .face_nodes import FACE_NODES
from .loader_nodes import LOADER_NODES

NODES: list[type[io.ComfyNode]] = [*LOADER_NODES, *FACE_NODES]


class GFPGANExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> GFPGANExtension:
    """What ComfyUI calls when it loads the pack (before it lists the nodes' model files)."""
    host.register_model_folders()
    return GFPGANExtension()
