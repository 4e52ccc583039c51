"""Small helpers shared by test modules (imported as ``helpers``: tests/ is on sys.path)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def unavailable(message: str) -> None:
    """A missing test component: skipped on a developer's machine, a failure in CI."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def import_pack(name: str):
    """The repository imported the way ComfyUI imports a custom-node pack: a package named after its
    folder. The caller removes ``name`` and its submodules from sys.modules when done."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(name, root / "__init__.py", submodule_search_locations=[str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def forget_modules(name: str) -> None:
    for module in [n for n in sys.modules if n == name or n.startswith(name + ".")]:
        sys.modules.pop(module, None)
