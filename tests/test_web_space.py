"""The Space folder that ``python -m web.space build`` assembles: its front matter, its app, its
requirements; and ``push``'s messages when the Hub cannot be reached."""
from __future__ import annotations

import ast
import base64
import http.server
import importlib.metadata
import json
import os
import threading
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.heavy
yaml = pytest.importorskip("yaml")
pytest.importorskip("gradio", reason="the web demo needs requirements-web.txt")

ROOT = Path(__file__).resolve().parents[1]
#: interchangeable distributions of the cv2 module
OPENCV_BUILDS = {"opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"}


def build(tmp_path: Path, *args: str) -> Path:
    folder = tmp_path / "space"
    done = subprocess.run([sys.executable, "-m", "web.space", "build", str(folder), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"python -m web.space push OWNER/NAME --dir {folder}" in done.stdout
    return folder


def front_matter(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md does not start with YAML front matter"
    return yaml.safe_load(match.group(1))


def imported_modules(folder: Path) -> set[str]:
    names: set[str] = set()
    for file in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def requirement_names(folder: Path) -> set[str]:
    lines = (folder / "requirements.txt").read_text().splitlines()
    return {re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
            for line in lines if line.strip() and not line.startswith("#")}


def test_the_space_folder_is_complete(tmp_path):
    import gradio

    folder = build(tmp_path)
    meta = front_matter(folder)
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert (folder / meta["app_file"]).is_file()
    assert re.fullmatch(r"3\.\d+", str(meta["python_version"]))
    assert meta["suggested_hardware"] == "cpu-upgrade"
    assert "gmk123/GFPGAN" in meta["models"]
    # the weights fetched at build time are the ones the page's defaults use, at their Hub addresses
    preloaded = {file for line in meta["preload_from_hub"] for file in line.split()[1].split(",")}
    assert preloaded == {"GFPGANv1.4.pth", "detection_Resnet50_Final.pth", "parsing_parsenet.pth"}
    assert (folder / "assets" / "astronaut_old.jpg").is_file()
    assert "libgl1" in (folder / "packages.txt").read_text().split()
    assert not (folder / "web" / "space.py").exists() and not (folder / "gfp_core" / "export_onnx.py").exists()
    assert not list(folder.rglob("__pycache__"))


def test_the_space_pins_what_it_was_tested_with(tmp_path):
    """Gradio at the front matter's sdk_version (nothing else may move it), torch and torchvision at
    exact versions; the card's short description within the Hub's 60 characters."""
    folder = build(tmp_path)
    meta = front_matter(folder)
    pins = {}
    for line in (folder / "requirements.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    assert pins.get("gradio") == str(meta["sdk_version"])
    for name in ("torch", "torchvision"):
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", pins.get(name, "")), f"{name} is not pinned: {pins}"
        assert pins[name] == importlib.metadata.version(name).split("+")[0]
    assert 0 < len(meta["short_description"]) <= 60, meta["short_description"]


#: the ``suggested_hardware`` values of the Spaces configuration reference
#: (https://huggingface.co/docs/hub/spaces-config-reference)
DOCUMENTED_HARDWARE = {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "l40sx4",
                       "l40sx8", "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "a100x4",
                       "a100x8"}


def test_only_documented_hardware_can_be_suggested(tmp_path):
    from web.space import HARDWARE

    assert set(HARDWARE) <= DOCUMENTED_HARDWARE
    done = subprocess.run([sys.executable, "-m", "web.space", "build", str(tmp_path / "s"), "--hardware",
                           "zero-a10g"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice: 'zero-a10g'" in done.stderr
    assert not (tmp_path / "s").exists()


def test_the_space_app_imports_from_its_own_folder(tmp_path):
    folder = build(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GFP_HUB_REPO")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    code = ("import app, gradio, gfp_core, web; assert isinstance(app.demo, gradio.Blocks); "
            "print(gfp_core.__file__); print(web.__file__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    for line in done.stdout.split():
        assert Path(line).resolve().is_relative_to(folder.resolve()), f"{line} was imported from outside the Space"


def test_the_space_requirements_cover_its_imports(tmp_path):
    folder = build(tmp_path)
    local = {p.name for p in folder.iterdir() if p.is_dir()} | {p.stem for p in folder.glob("*.py")}
    from web.space import OPTIONAL_IMPORTS

    third_party = imported_modules(folder) - set(sys.stdlib_module_names) - local - {"__future__"} - OPTIONAL_IMPORTS
    required = requirement_names(folder) | {"gradio"}  # the Space's sdk_version provides Gradio
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(third_party):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if names & OPENCV_BUILDS:
            names |= OPENCV_BUILDS
        if not names & required:
            missing.append(f"{module} ({', '.join(sorted(names))})")
    assert not missing, f"imported but not in the Space's requirements.txt: {missing}"


def test_a_hub_repository_of_ones_own_comes_first(tmp_path):
    folder = build(tmp_path, "--hub-repo", "my-org/face-weights", "--hardware", "t4-small")
    meta = front_matter(folder)
    assert meta["models"][0] == "my-org/face-weights" and meta["suggested_hardware"] == "t4-small"
    assert all(line.startswith("my-org/face-weights ") for line in meta["preload_from_hub"])
    assert 'os.environ.setdefault("GFP_HUB_REPO", "my-org/face-weights")' in (folder / "app.py").read_text()


@pytest.mark.parametrize("env, expected", [
    ({"HF_HUB_OFFLINE": "1"}, "cannot push: HF_HUB_OFFLINE is set"),
    ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot push to me/face-demo: ConnectError"),
])
def test_push_says_why_it_cannot_reach_the_hub(tmp_path, env, expected):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environ.update(env, HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-m", "web.space", "push", "me/face-demo", "--token", "hf_test"],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr


class FakeHub(http.server.BaseHTTPRequestHandler):
    """The Hub API calls a push makes: create the repository, validate the README's front matter, ask
    how to upload each file (here 'regular': inline in the commit), and the commit itself. Files land
    in ``store``."""

    store: Path
    calls: list[str]

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.calls.append(f"{self.path} {self.headers.get('authorization', '')}")
        base = f"http://{self.headers['Host']}"
        if self.path == "/api/repos/create":
            request = json.loads(body)
            self.store.joinpath("created.json").write_text(json.dumps(request))
            self._reply({"url": f"{base}/spaces/{request['organization']}/{request['name']}"})
        elif self.path == "/api/validate-yaml":  # the Hub checks a README's front matter before a commit
            meta = yaml.safe_load(json.loads(body)["content"].split("---")[1])
            self._reply({"warnings": [] if meta.get("sdk") == "gradio" else [{"message": "no sdk"}]})
        elif "/preupload/" in self.path:
            files = json.loads(body)["files"]
            self._reply({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                   for f in files]})
        elif "/commit/" in self.path:
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    target = self.store / "files" / item["value"]["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(base64.b64decode(item["value"]["content"]))
            repo = self.path.split("/commit/")[0].removeprefix("/api/spaces/")
            self._reply({"commitUrl": f"{base}/spaces/{repo}/commit/{'0' * 40}", "commitOid": "0" * 40})
        else:
            self.send_error(404)

    def do_GET(self) -> None:  # noqa: N802
        self.calls.append(f"GET {self.path}")
        self.send_error(404)

    def log_message(self, *args) -> None:
        pass


def test_push_uploads_the_built_space(tmp_path):
    handler = type("Hub", (FakeHub,), {"store": tmp_path, "calls": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        environ.update(HF_ENDPOINT=f"http://127.0.0.1:{server.server_port}", HF_HOME=str(tmp_path / "hf"),
                       HF_HUB_DISABLE_XET="1")
        done = subprocess.run([sys.executable, "-m", "web.space", "push", "me/face-demo", "--token", "hf_secret",
                               "--private"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
    assert done.returncode == 0, (done.stderr[-3000:], handler.calls)
    assert f"Space uploaded: http://127.0.0.1:{server.server_port}/spaces/me/face-demo" in done.stdout
    created = json.loads((tmp_path / "created.json").read_text())
    assert created["type"] == "space" and created["sdk"] == "gradio" and created["visibility"] == "private"
    assert all(call.endswith("Bearer hf_secret") for call in handler.calls if not call.startswith("GET"))
    uploaded = tmp_path / "files"
    assert front_matter(uploaded)["app_file"] == "app.py" and (uploaded / "app.py").is_file()
    assert (uploaded / "gfp_core" / "face" / "data" / "retinaface_mobile0.25.onnx").stat().st_size > 1_000_000
    example = Path("assets") / "astronaut_old.jpg"
    assert (uploaded / example).read_bytes() == (ROOT / example).read_bytes()
