"""Small helpers shared by test modules (imported as ``helpers``: tests/ is on sys.path)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
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


def put_in_hf_cache(cache: Path, repo_id: str, filename: str, content: bytes, repo_type: str = "model") -> Path:
    """Lay a file out the way huggingface_hub caches it: blobs/<sha>, snapshots/<commit>/<file> → blob,
    refs/main → commit."""
    repo_dir = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(content).hexdigest()
    blob = repo_dir / "blobs" / hashlib.sha256(content).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(content)
    link = repo_dir / "snapshots" / commit / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("../" * (filename.count("/") + 2)) / "blobs" / blob.name)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return link


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: how the browser tests start Debian's Chromium (no `playwright install` download)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    path = os.environ.get("GFP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return path if path and Path(path).exists() else None


def distinct_workflows(paths: list[Path]) -> list[Path]:
    """One path per distinct workflow file (a saved copy and its example are the same file until the
    example changes), in the order given."""
    seen, out = set(), []
    for path in paths:
        key = json.dumps(json.loads(path.read_text()), sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out
