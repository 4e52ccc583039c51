"""Publish the demo as a Hugging Face Space.

    python -m web.space build DIR [--hardware cpu-upgrade] [--hub-repo OWNER/NAME]
    python -m web.space push OWNER/SPACE [--token TOKEN] [--private] [--dir DIR]

``build`` assembles a self-contained Space folder: ``README.md`` with the Spaces front matter,
``app.py``, ``requirements.txt``, ``packages.txt``, and copies of ``gfp_core/``, ``web/`` and the
example photos. ``push`` builds one (or takes ``--dir``) and uploads it with huggingface_hub.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gfp_core", "web")
#: tools the Space never runs, and whose extra dependencies it need not install: this builder, the
#: ONNX exporter (onnx, onnxruntime) and the archive-scale runner (ray, fsspec)
LEFT_BEHIND = {"web": ("space.py",), "gfp_core": ("export_onnx.py", "scale")}
#: imported by the copied code only where installed (gfp_core's optional OpenVINO backend): the Space
#: does not install them, so 'auto' runs PyTorch there
OPTIONAL_IMPORTS = frozenset({"openvino"})
EXAMPLE_FILES = ("astronaut_old.jpg", "astronaut.jpg", "README.md")
#: the weights the page's defaults need, fetched while the Space is built rather than on the first visit
PRELOADED_MODELS = ("v1.4", "retinaface_resnet50", "parsenet")
#: every model the page can ask for
DEMO_MODELS = ("v1.4", "v1.3", "v1.2", "v1", "retinaface_resnet50", "retinaface_mobile0.25", "parsenet",
               "realesrgan_x2plus", "realesr_general_x4v3")
#: ``suggested_hardware`` values the Spaces configuration reference lists (ZeroGPU is not one of them:
#: it is chosen in the Space's settings, and the app runs there too)
HARDWARE = ("cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "l40sx4", "l40sx8",
            "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "a100x4", "a100x8")
SHORT_DESCRIPTION = "Restore faces in old photos with GFPGAN v1.4, v1.3, v1.2, v1"
SHORT_DESCRIPTION_CHARS = 60  # the Hub refuses longer ones
#: pinned to the versions this demo is tested with, so that a rebuilt Space runs the same code
PINNED = ("torch", "torchvision")
#: OpenCV's shared-library needs on the Spaces base image
APT_PACKAGES = ("libgl1", "libglib2.0-0")
PYTHON_VERSION = "3.11"

APP_PY = '''"""Hugging Face Space entry point: the GFPGAN face-restoration demo (settings: GFP_WEB_* variables)."""
{hub_repo}from web.app import create_app, launch

demo, settings = create_app([])

if __name__ == "__main__":
    launch(demo, settings)
'''

SPACE_README = """
# GFPGAN face restoration

Restores the faces in old, blurry or low-resolution photos with GFPGAN (Wang et al., CVPR 2021,
"Towards Real-World Blind Face Restoration with Generative Facial Prior"), versions 1.4, 1.3, 1.2
and 1. Upload, paste or take a photo; the result comes with a before/after slider, every face before
and after, and a full-resolution download.

The demo is also an API (`/restore`, `/number_faces`; see "Use via API" at the bottom of the page):

```python
from gradio_client import Client, handle_file

client = Client("{space_id}")
slider, faces, count, summary, result_file = client.predict(
    handle_file("photo.jpg"), "v1.4", 1.0, 1.0, 2, "retinaface_resnet50", 0.9, "all", "", "parsing",
    "lanczos", "png", api_name="/restore")
```

Weights come from the Hugging Face Hub (the repositories listed as this Space's models) or the
official release pages, and are checked against their published SHA-256.
Settings (Space variables): `GFP_WEB_CONCURRENCY` (restores at once, default 1),
`GFP_WEB_QUEUE_SIZE`, `GFP_WEB_MAX_FILE_SIZE` (default 25mb), `GFP_WEB_MAX_PIXELS`,
`GFP_WEB_MAX_FACES` (faces restored per photo, the largest first; default 20), `GFP_WEB_TIME_LIMIT`
(seconds per request, default 300), `GFP_WEB_KEEP_RESULTS` (seconds a result file is kept, default
3600), `GFP_HUB_REPO` (a Hub repository of your own holding the weights files), `GFP_DEVICE`,
`GFP_DTYPE`, `GFP_ALLOW_UNVERIFIED=1` (accept weights whose SHA-256 differs; the page then says so).

On ZeroGPU hardware (chosen in the Space's settings), the default models are loaded when the Space
starts and each restore runs in a `spaces.GPU` call; ZeroGPU supports only some torch versions, so
check the torch pin in `requirements.txt` against its list.
"""


def runtime_requirements() -> list[str]:
    """The library's runtime requirements (requirements.txt) with torch and torchvision pinned to the
    installed versions, ``spaces`` for ZeroGPU hardware, and Gradio pinned to the front matter's
    ``sdk_version`` (so that nothing the other requirements pull in can move it)."""
    import gradio

    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    requirements = [line.split("#")[0].strip() for line in lines]
    pinned = [_pinned(r) for r in requirements if r]
    return pinned + ["spaces", f"gradio=={gradio.__version__}"]


def _pinned(requirement: str) -> str:
    """``torch>=2.1`` → ``torch==<installed version>`` for the packages in :data:`PINNED`."""
    import importlib.metadata

    name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
    if name.lower() not in PINNED:
        return requirement
    version = importlib.metadata.version(name).split("+")[0]  # a local build tag (+cu128) is no release
    return f"{name}=={version}"


def hub_sources(name: str, hub_repo: str | None = None) -> list:
    """Where the Space looks for model ``name`` on the Hub: ``hub_repo`` first, then the registry's mirrors."""
    from gfp_core.weights import HubFile, get_spec

    spec = get_spec(name)
    own = [HubFile(hub_repo, spec.filename)] if hub_repo else []
    return own + list(spec.hub_sources())


def hub_repos(names: tuple[str, ...], repo_type: str, hub_repo: str | None = None) -> list[str]:
    repos: list[str] = []
    for name in names:
        for hub in hub_sources(name, hub_repo):
            if hub.repo_type == repo_type and hub.repo_id not in repos:
                repos.append(hub.repo_id)
    return repos


def preload_entries(hub_repo: str | None = None) -> list[str]:
    """``preload_from_hub`` lines (``repo file1,file2``): the first Hub model repository of each default model."""
    files: dict[str, list[str]] = {}
    for name in PRELOADED_MODELS:
        hub = next((h for h in hub_sources(name, hub_repo) if h.repo_type == "model"), None)
        if hub is not None:
            files.setdefault(hub.repo_id, []).append(hub.filename)
    return [f"{repo} {','.join(names)}" for repo, names in files.items()]


def front_matter(title: str, hardware: str, hub_repo: str | None = None) -> dict:
    import gradio

    meta = {
        "title": title, "emoji": "🖼️", "colorFrom": "indigo", "colorTo": "pink",
        "sdk": "gradio", "sdk_version": gradio.__version__, "python_version": PYTHON_VERSION,
        "app_file": "app.py", "pinned": False, "license": "apache-2.0",
        "short_description": SHORT_DESCRIPTION,
        "suggested_hardware": hardware,
        "models": hub_repos(DEMO_MODELS, "model", hub_repo),
        "preload_from_hub": preload_entries(hub_repo),
        "tags": ["face-restoration", "gfpgan", "image-restoration"],
    }
    datasets = hub_repos(DEMO_MODELS, "dataset", hub_repo)
    if datasets:
        meta["datasets"] = datasets
    return meta


def build(folder: str | Path, *, title: str = "GFPGAN Face Restoration", hardware: str = "cpu-upgrade",
          hub_repo: str | None = None, space_id: str = "OWNER/SPACE") -> Path:
    """Assemble the Space in ``folder`` (created; must be empty if it exists)."""
    if hardware not in HARDWARE:
        raise SystemExit(f"unknown hardware {hardware!r}; use one of {', '.join(HARDWARE)}")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder} is not empty; give a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *LEFT_BEHIND.get(package, ()))
        shutil.copytree(REPO_ROOT / package, folder / package, ignore=ignore)
    (folder / "assets").mkdir()
    for name in EXAMPLE_FILES:
        shutil.copy2(REPO_ROOT / "assets" / name, folder / "assets" / name)
    # the Space then looks in the user's repository first, as GFP_HUB_REPO does everywhere
    hub_line = f'import os\n\nos.environ.setdefault("GFP_HUB_REPO", "{hub_repo}")\n\n' if hub_repo else ""
    (folder / "app.py").write_text(APP_PY.format(hub_repo=hub_line))
    (folder / "requirements.txt").write_text("\n".join(runtime_requirements()) + "\n")
    (folder / "packages.txt").write_text("\n".join(APT_PACKAGES) + "\n")
    meta = front_matter(title, hardware, hub_repo)
    assert len(meta["short_description"]) <= SHORT_DESCRIPTION_CHARS
    meta = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    (folder / "README.md").write_text(f"---\n{meta}---\n{SPACE_README.format(space_id=space_id)}")
    return folder


def push(space_id: str, *, token: str | None = None, private: bool = False, folder: str | Path | None = None,
         hardware: str = "cpu-upgrade", hub_repo: str | None = None) -> str:
    """Create the Space if needed and upload the folder; returns the Space's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    with tempfile.TemporaryDirectory() as scratch:
        if folder is None:
            folder = build(Path(scratch) / "space", hardware=hardware, hub_repo=hub_repo, space_id=space_id)
        api = HfApi(token=token)
        try:
            api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=space_id, repo_type="space",
                              commit_message="Deploy the GFPGAN face-restoration demo")
        except OfflineModeIsEnabled:
            raise SystemExit("cannot push: HF_HUB_OFFLINE is set; unset it to reach the Hugging Face Hub") from None
        except HfHubHTTPError as exc:
            hint = " (log in with `hf auth login`, or pass --token / set HF_TOKEN)" \
                if exc.response is not None and exc.response.status_code in (401, 403) else ""
            raise SystemExit(f"cannot push to {space_id}: {str(exc).splitlines()[0]}{hint}") from None
        except Exception as exc:  # the network: refused, timed out, no DNS
            raise SystemExit(f"cannot push to {space_id}: {type(exc).__name__}: {exc}") from None
    endpoint = api.endpoint.rstrip("/")
    return f"{endpoint}/spaces/{space_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web.space", description="Build or publish the demo's Space.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "push"):
        cmd = sub.add_parser(name)
        if name == "build":
            cmd.add_argument("dir", help="the folder to assemble the Space in (new or empty)")
        else:
            cmd.add_argument("space_id", help="OWNER/NAME of the Space (created if missing)")
            cmd.add_argument("--token", help="a Hugging Face write token (default: HF_TOKEN or the stored login)")
            cmd.add_argument("--private", action="store_true")
            cmd.add_argument("--dir", help="upload this already built folder instead of building one")
        cmd.add_argument("--hardware", default="cpu-upgrade", choices=HARDWARE,
                         help="suggested_hardware in the front matter (ZeroGPU is chosen in the Space's settings)")
        cmd.add_argument("--hub-repo", help="a Hub repository of yours with the weights files, searched first")
    args = parser.parse_args(argv)
    if args.command == "build":
        folder = build(args.dir, hardware=args.hardware, hub_repo=args.hub_repo)
        print(f"Space assembled in {folder}; publish it with: python -m web.space push OWNER/NAME --dir {folder}")
    else:
        url = push(args.space_id, token=args.token, private=args.private, folder=args.dir, hardware=args.hardware,
                   hub_repo=args.hub_repo)
        print(f"Space uploaded: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
