"""ComfyUI entry point: ComfyUI imports this folder as a custom-node pack.

Only re-exports the node mappings; the library itself is ``gfp_core`` and never needs ComfyUI.
"""
import importlib.util
import sys
from pathlib import Path


def _ensure_gfp_core() -> None:
    """A plain clone in custom_nodes/ has gfp_core next to this file but not installed: load it from
    here under its own name, without putting this folder (whose nodes/ would shadow ComfyUI's
    nodes module) on sys.path."""
    try:
        import gfp_core  # noqa: F401  (installed with pip install -e . or as a package)
        return
    except ImportError:
        pass
    package = Path(__file__).resolve().parent / "gfp_core"
    spec = importlib.util.spec_from_file_location("gfp_core", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["gfp_core"] = module
    spec.loader.exec_module(module)


_ensure_gfp_core()

if __package__:  # imported as ComfyUI imports a pack: a package named after this folder
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
else:
    # loaded as a lone file, e.g. by pytest collecting a checkout whose folder name is no Python
    # identifier (gfp-toolkit): there is no pack to offer then
    NODE_CLASS_MAPPINGS: dict = {}
    NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
