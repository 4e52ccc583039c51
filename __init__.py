"""ComfyUI entry point: ComfyUI imports this folder as a custom-node pack.

ComfyUI (0.3.75 and later) registers the pack's nodes from ``comfy_entrypoint`` (its schema API). The
pack exports no ``NODE_CLASS_MAPPINGS``: ComfyUI's loader takes that classic table first when both
exist and would never call the entry point. The library itself is ``gfp_core`` and never needs ComfyUI.
"""
import importlib.util
import sys
from pathlib import Path

#: served by ComfyUI under /extensions/<folder>/: the node documentation pages (docs/<node id>.md)
WEB_DIRECTORY = "./comfy_web"


def _ensure_gfp_core() -> None:
    """A plain clone in custom_nodes/ has gfp_core next to this file but not installed: load it from
    here under its own name, without putting this folder (whose nodes/ would shadow ComfyUI's
    nodes module) on sys.path."""
    try:
        importlib.import_module("gfp_core")  # installed with pip install -e . or as a package
        return
    except ImportError:
        pass
    package = Path(__file__).resolve().parent / "gfp_core"
    spec = importlib.util.spec_from_file_location("gfp_core", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["gfp_core"] = module
    spec.loader.exec_module(module)


def _inside_comfyui() -> bool:
    """ComfyUI's own modules are importable (its folder is on sys.path)."""
    return importlib.util.find_spec("comfy") is not None and importlib.util.find_spec("folder_paths") is not None


_ensure_gfp_core()

__all__ = ["WEB_DIRECTORY"]
if __package__:  # imported as ComfyUI imports a pack: a package named after this folder
    from . import nodes  # noqa: E402  (what the nodes do imports anywhere; their definitions need ComfyUI)

    __all__ += ["nodes"]
    if _inside_comfyui():
        if importlib.util.find_spec("comfy_api.latest") is None:
            raise ImportError("the GFPGAN nodes need ComfyUI 0.3.75 or newer (its comfy_api.latest schema API); "
                              "update ComfyUI")
        from .nodes.extension import comfy_entrypoint  # noqa: E402

        __all__ += ["comfy_entrypoint"]
# else: loaded as a lone file (pytest collecting a checkout whose folder name is no Python identifier,
# such as gfp-toolkit): there is no pack to offer
