"""The web demo run the way a user runs it (``python -m web``), in its own process on 127.0.0.1.

Offline, with a Hugging Face cache that holds seeded random weights at GFPGANv1.4's Hub address
(the registry's first mirror), so the real resolution, loading and restoring code runs; the RetinaFace
ResNet-50 and ParseNet weights are absent, so the page falls back to the embedded detector and the
ellipse mask and says so.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from helpers import free_port, put_in_hf_cache

REPO_ROOT = Path(__file__).resolve().parents[1]


def hf_cache_with_random_v14(cache: Path, scratch: Path) -> Path:
    from gfp_core.synthetic import write_random_checkpoint
    from gfp_core.weights import get_spec

    hub = get_spec("v1.4").hub[0]
    weights = write_random_checkpoint("v1.4", scratch / "GFPGANv1.4.pth", seed=14)
    return put_in_hf_cache(cache, hub.repo_id, hub.filename, weights.read_bytes(), hub.repo_type)


class WebServer:
    def __init__(self, workdir: Path, *args: str) -> None:
        self.workdir = workdir
        self.args = args
        self.hf_cache = workdir / "hf-cache"
        self.log_path = workdir / "web.log"
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("GFP_MODEL_DIRS", "GFP_HUB_REPO", "HF_HOME", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
            env.pop(name, None)
        env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(self.hf_cache),
                   GFP_HOME=str(self.workdir / "gfp-home"), GFP_ALLOW_UNVERIFIED="1",  # random weights
                   GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(self.workdir / "gradio"))
        # glibc gives each new worker thread its own malloc arena, which keeps freed activations
        # resident: the memory test measures the restores, not how many threads Gradio happened to use
        env.setdefault("MALLOC_ARENA_MAX", "2")
        return env

    def start(self, timeout: float = 120) -> WebServer:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "web", "--host", "127.0.0.1", "--port", str(port),
                                      *self.args], cwd=REPO_ROOT, env=self.environment(),
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web demo exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.url, timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the web demo did not answer within {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rss_bytes(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
