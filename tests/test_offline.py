"""Loading weights without a network: real sockets on loopback stand in for the Hub and the release host.

``HF_ENDPOINT`` points huggingface_hub at a local port and ``GFP_RELEASE_MIRROR`` the release downloads:
a closed port (refused at once), a server that accepts connections and never answers (a blackhole,
which only the probe timeout bounds), or a plain HTTP server without the file. Loads run in a fresh
interpreter, because huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once (when its
``constants`` module is first imported) and the reachability verdicts last for the process. Accepted connections are counted to show that a
host is probed once per process and that offline mode never connects.
"""
from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from gfp_core.weights import network

#: loads the default detector twice in one process; prints one JSON line per load
LOAD_TWICE = r"""
import json, os, sys, time, warnings
if os.environ.pop("IMPORT_HUB_FIRST", ""):  # huggingface_hub has read its settings before the environment changes
    import huggingface_hub.constants  # (a plain `import huggingface_hub` is lazy and reads nothing yet)
    for name, value in json.loads(os.environ.pop("ENV_AFTER_IMPORT", "{}")).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
from gfp_core.face.detection import load_detector
load_detector("embedded")  # imports and the embedded detector, so the timings are the weights lookup's
for attempt in range(2):
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector = load_detector("retinaface_resnet50")
    print(json.dumps({"seconds": time.perf_counter() - start, "detector": type(detector).__name__,
                      "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning]}), flush=True)
"""


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Blackhole:
    """Accepts TCP connections on loopback and never answers; counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never answered

    @property
    def count(self) -> int:
        return len(self.accepted)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def blackholes():
    made: list[Blackhole] = []

    def make() -> Blackhole:
        made.append(Blackhole())
        return made[-1]
    yield make
    for hole in made:
        hole.close()


class _NotFound(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def _answer(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _answer  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture
def empty_server():
    """A real HTTP server on loopback that answers 404 to everything (a host that is up, without the file)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    _NotFound.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield _NotFound, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def load_twice(tmp_path, **env: str | None) -> list[dict]:
    """Run :data:`LOAD_TWICE` in a fresh interpreter: no weights on disk, no proxies, ``env`` on top."""
    base = {k: v for k, v in os.environ.items()
            if k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
            and k not in {"HF_HUB_OFFLINE", "GFP_OFFLINE", "TRANSFORMERS_OFFLINE", "GFP_NETWORK_TIMEOUT"}}
    base.update({"GFP_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(tmp_path / "hf"), "GFP_MODEL_DIRS": "",
                 "GFP_HUB_REPO": "", "GFP_ALLOW_UNVERIFIED": "", "HF_HUB_DISABLE_TELEMETRY": "1"})
    for name, value in env.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    result = subprocess.run([sys.executable, "-c", LOAD_TWICE], capture_output=True, text=True, env=base,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    loads = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(loads) == 2, result.stdout + result.stderr
    return loads


def test_refused_hosts_fall_back_at_once_with_the_reason(tmp_path):
    loads = load_twice(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
                       GFP_RELEASE_MIRROR=f"http://127.0.0.1:{closed_port()}")
    for load in loads:
        assert load["detector"] == "EmbeddedRetinaFace"
        [warning] = load["warnings"]
        assert warning.startswith("retinaface_resnet50 weights (detection_Resnet50_Final.pth) are not on this "
                                  "machine and 127.0.0.1:")
        assert "could not be reached (connection refused); working offline for this process; using the " \
               "embedded RetinaFace MobileNet-0.25 face detector instead" in warning
    assert loads[0]["seconds"] < 10  # was ~23 s of retries per load; real numbers: bench/bench_offline.py
    assert loads[1]["seconds"] < 1


def test_blackholed_hosts_are_probed_once_within_the_timeout(tmp_path, blackholes):
    hub, release = blackholes(), blackholes()
    loads = load_twice(tmp_path, HF_ENDPOINT=hub.url, GFP_RELEASE_MIRROR=release.url, GFP_NETWORK_TIMEOUT="1")
    assert (hub.count, release.count) == (1, 1)  # one probe each, in the first load; none in the second
    for load in loads:
        assert load["detector"] == "EmbeddedRetinaFace"
        [warning] = load["warnings"]
        assert f"127.0.0.1:{hub.port} and 127.0.0.1:{release.port} could not be reached (connected, but no " \
               "answer within 1 s); working offline for this process" in warning
    assert loads[0]["seconds"] < 10  # the hosts are probed in parallel: about 2 × 1 s, not 4 × 1 s
    assert loads[1]["seconds"] < 1


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "GFP_OFFLINE"])
def test_offline_mode_makes_no_connection(tmp_path, blackholes, variable):
    hub, release = blackholes(), blackholes()
    loads = load_twice(tmp_path, HF_ENDPOINT=hub.url, GFP_RELEASE_MIRROR=release.url, **{variable: "1"})
    assert (hub.count, release.count) == (0, 0)
    for load in loads:
        assert load["detector"] == "EmbeddedRetinaFace"
        assert load["warnings"] == [f"retinaface_resnet50 weights (detection_Resnet50_Final.pth) are not on this "
                                    f"machine and {variable} is set; using the embedded RetinaFace MobileNet-0.25 "
                                    f"face detector instead"]


def test_offline_set_after_huggingface_hub_was_imported_still_counts(tmp_path, blackholes):
    """huggingface_hub reads HF_HUB_OFFLINE once, on first use; gfp_core reads it at each call."""
    hub, release = blackholes(), blackholes()
    loads = load_twice(tmp_path, HF_ENDPOINT=hub.url, GFP_RELEASE_MIRROR=release.url, IMPORT_HUB_FIRST="1",
                       ENV_AFTER_IMPORT=json.dumps({"HF_HUB_OFFLINE": "1"}))
    assert (hub.count, release.count) == (0, 0)
    assert all("HF_HUB_OFFLINE is set" in load["warnings"][0] for load in loads)


def test_hub_imported_offline_is_not_asked_but_the_release_host_is(tmp_path, blackholes):
    """HF_HUB_OFFLINE set when huggingface_hub read its settings and unset since: the Hub stays offline (it
    would refuse anyway), the release host is tried, and the message says both."""
    hub, release = blackholes(), blackholes()
    loads = load_twice(tmp_path, HF_ENDPOINT=hub.url, GFP_RELEASE_MIRROR=release.url, HF_HUB_OFFLINE="1",
                       IMPORT_HUB_FIRST="1", ENV_AFTER_IMPORT=json.dumps({"HF_HUB_OFFLINE": None}),
                       GFP_NETWORK_TIMEOUT="0.5")
    assert (hub.count, release.count) == (0, 1)
    warning = loads[1]["warnings"][0]
    assert "huggingface_hub is in offline mode" in warning
    assert f"127.0.0.1:{release.port} could not be reached (connected, but no answer within 0.5 s)" in warning


def test_a_host_that_answers_without_the_file_is_not_taken_for_offline(tmp_path, empty_server):
    server, url = empty_server
    loads = load_twice(tmp_path, HF_ENDPOINT=url, GFP_RELEASE_MIRROR=url)
    for load in loads:
        assert load["detector"] == "EmbeddedRetinaFace"
        [warning] = load["warnings"]
        assert "are not on this machine and could not be downloaded (hf://camenduru/facexlib/" in warning
        assert "404" in warning and "could not be reached" not in warning
    # probed once, then each load asks the Hub and the mirror for the file again
    assert server.requests.count("HEAD /") == 1
    assert sum(r.endswith("/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth")
               for r in server.requests) == 2


# --- the probe itself, in this process ------------------------------------------------------------

@pytest.fixture
def fresh_verdicts(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "NO_PROXY", "GFP_NETWORK_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    network.forget()
    yield
    network.forget()


def test_probe_verdicts(fresh_verdicts, blackholes, empty_server, monkeypatch):
    monkeypatch.setenv("GFP_NETWORK_TIMEOUT", "0.5")
    refused, hole, (_, up) = f"http://127.0.0.1:{closed_port()}/x", blackholes(), empty_server
    assert network.unreachable(refused) == "connection refused"
    start = time.monotonic()
    assert network.unreachable(hole.url) == "connected, but no answer within 0.5 s"
    assert time.monotonic() - start < 5
    assert network.unreachable(up) is None
    assert network.unreachable("http://no-such-host.invalid/").startswith("name lookup failed")
    assert network.verdicts()[f"127.0.0.1:{hole.port}"] == "connected, but no answer within 0.5 s"


def test_concurrent_loads_share_one_probe(fresh_verdicts, blackholes, monkeypatch):
    monkeypatch.setenv("GFP_NETWORK_TIMEOUT", "0.5")
    hole = blackholes()
    reasons: list[str | None] = []
    threads = [threading.Thread(target=lambda: reasons.append(network.unreachable(hole.url))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hole.count == 1 and len(set(reasons)) == 1 and reasons[0] is not None
    assert network.unreachable(hole.url) == reasons[0] and hole.count == 1


def test_forget_and_success_clear_a_verdict(fresh_verdicts, empty_server):
    _, up = empty_server
    network.note_failure(up, ConnectionRefusedError(111, "Connection refused"))
    assert network.unreachable(up) == "connection refused"  # remembered: no new probe
    network.note_success(up)
    assert network.unreachable(up) is None
    network.note_failure(up, ConnectionRefusedError(111, "Connection refused"))
    network.forget(up)
    assert network.unreachable(up) is None  # probed again, and it answers


def test_only_connection_failures_mark_a_host(fresh_verdicts):
    import urllib.error
    import urllib.request

    port = closed_port()
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
    assert network.connection_failure(refused.value) == "connection refused"
    httpx = pytest.importorskip("httpx2" if _has("httpx2") else "httpx")  # huggingface_hub's HTTP client
    with pytest.raises(Exception) as hub_refused:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert network.connection_failure(hub_refused.value) == "connection refused"
    assert network.connection_failure(PermissionError(13, "Permission denied")) is None  # a disk problem
    assert network.connection_failure(urllib.error.HTTPError("u", 404, "Not Found", {}, None)) is None


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_behind_a_proxy_the_proxy_is_probed(fresh_verdicts, monkeypatch, blackholes):
    port = closed_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    hole = blackholes()  # the host itself would accept; the (dead) proxy is what requests go through
    assert network.unreachable(f"http://example.test:{hole.port}/") == f"proxy 127.0.0.1:{port}: connection refused"
    monkeypatch.setenv("NO_PROXY", "example.test")
    network.forget()
    assert network.unreachable("http://example.test/").startswith("name lookup failed")
    assert hole.count == 0
