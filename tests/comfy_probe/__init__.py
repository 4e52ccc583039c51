"""A test-only ComfyUI pack, linked into the test server's custom_nodes next to the real one: it lets a
test see ComfyUI's list of loaded models (comfy.model_management.current_loaded_models).

- node ``GFPTestLoadedModels``: run after a node of the pack (its ``after`` input is that node's
  output), it shows what is loaded at that moment, while the prompt runs;
- route ``GET /gfp_test/loaded_models``: what is loaded now, and how many of the networks the node saw
  are still alive anywhere in the process.
"""
from __future__ import annotations

import weakref

from aiohttp import web
from comfy_api.latest import ComfyExtension, io

import comfy.model_management as mm
from server import PromptServer

_seen: list[weakref.ref] = []


def loaded() -> list[dict]:
    out = []
    for entry in mm.current_loaded_models:
        patcher = entry.model
        module = getattr(patcher, "model", None)
        out.append({"class": type(module).__name__, "device": str(entry.device),
                    "bytes": int(patcher.model_size()) if patcher is not None else 0})
    return out


class GFPTestLoadedModels(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="GFPTestLoadedModels", category="testing", is_output_node=True,
                         description="What ComfyUI's model management has loaded, after the wired node ran.",
                         inputs=[io.AnyType.Input("after", tooltip="any output of the node to wait for")])

    @classmethod
    def execute(cls, after) -> io.NodeOutput:
        _seen.clear()
        for entry in mm.current_loaded_models:
            if entry.real_model is not None and entry.real_model() is not None:
                _seen.append(weakref.ref(entry.real_model()))
        return io.NodeOutput(ui={"loaded": loaded()})


@PromptServer.instance.routes.get("/gfp_test/loaded_models")
async def loaded_models(request) -> web.Response:
    return web.json_response({"loaded": loaded(), "seen_alive": sum(ref() is not None for ref in _seen)})


class ProbeExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [GFPTestLoadedModels]


async def comfy_entrypoint() -> ProbeExtension:
    return ProbeExtension()
