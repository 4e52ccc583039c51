"""Downloading through huggingface_hub, against a real HTTP server standing in for the Hub.

``HF_ENDPOINT`` points huggingface_hub at a loopback server that answers the Hub's file-resolve
requests the way the Hub does (commit and ETag headers, then the bytes). The CLI runs in a
subprocess, because huggingface_hub reads its endpoint when it is imported.
"""
from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest


class FakeHub(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}  # "/{repo}/resolve/{revision}/{filename}" -> content
    requests: list[str] = []

    def _answer(self, with_body: bool) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        content = self.files.get(self.path.split("?")[0])
        if content is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", hashlib.sha1(b"commit" + content).hexdigest())
        self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if with_body:
            self.wfile.write(content)

    def do_HEAD(self):  # noqa: N802
        self._answer(with_body=False)

    def do_GET(self):  # noqa: N802
        self._answer(with_body=True)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    FakeHub.files, FakeHub.requests = {}, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield FakeHub, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gfp_core", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


@pytest.fixture
def hub_env(tmp_path, fake_hub) -> dict:
    _, endpoint = fake_hub
    return {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(tmp_path / "hf"), "GFP_HOME": str(tmp_path / "home"),
            "GFP_MODEL_DIRS": "", "GFP_ALLOW_UNVERIFIED": "", "HF_HUB_DISABLE_TELEMETRY": "1"}


def test_download_from_a_configured_hub_repo_then_offline_from_cache(tiny_checkpoint, fake_hub, hub_env):
    hub, _ = fake_hub
    hub.files["/my-org/face-weights/resolve/main/GFPGANv1.pth"] = tiny_checkpoint.read_bytes()
    env = {**hub_env, "GFP_HUB_REPO": "my-org/face-weights", "HF_HUB_OFFLINE": "0"}
    result = run_cli("download", "v1", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert "models--my-org--face-weights" in result.stdout and "[hub," in result.stdout
    assert any(r.startswith("GET /my-org/face-weights/resolve/main/GFPGANv1.pth") for r in hub.requests)
    cached = Path(result.stdout.split(": ", 1)[1].split(" [")[0])
    assert cached.read_bytes() == tiny_checkpoint.read_bytes()

    hub.requests.clear()
    offline = run_cli("download", "v1", "--quiet", env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr
    assert "[hf-cache," in offline.stdout and hub.requests == []


def test_hub_download_with_the_wrong_sha_is_refused(tiny_checkpoint, fake_hub, hub_env):
    hub, _ = fake_hub
    hub.files["/gmk123/GFPGAN/resolve/main/GFPGANv1.4.pth"] = tiny_checkpoint.read_bytes()
    result = run_cli("download", "v1.4", "--quiet", env={**hub_env, "GFP_HUB_REPO": "", "HF_HUB_OFFLINE": "0"})
    assert result.returncode == 2
    assert "does not match GFPGANv1.4" in result.stderr and "--allow-unverified" in result.stderr


def test_second_mirror_is_used_when_the_first_lacks_the_file(tiny_checkpoint, fake_hub, hub_env):
    hub, _ = fake_hub
    hub.files["/datasets/Gourieff/ReActor/resolve/main/models/facerestore_models/GFPGANv1.4.pth"] = \
        tiny_checkpoint.read_bytes()
    result = run_cli("download", "v1.4", "--quiet", "--allow-unverified",
                     env={**hub_env, "GFP_HUB_REPO": "", "HF_HUB_OFFLINE": "0"})
    assert result.returncode == 0, result.stderr
    assert "datasets--Gourieff--ReActor" in result.stdout
    assert any("/gmk123/GFPGAN/" in r for r in hub.requests)  # tried first, 404
