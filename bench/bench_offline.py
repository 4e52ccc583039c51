"""Loading the default detector without its weights and without a network: how long until the fallback.

``load_detector("retinaface_resnet50")`` with no ResNet-50 weights on the machine falls back to the
embedded MobileNet-0.25 detector. Each scenario runs in a fresh interpreter (the reachability verdicts
last for a process, and huggingface_hub reads ``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` once), which first
imports torch, ``gfp_core.weights`` and huggingface_hub and loads the embedded detector (ONNX weights), so
that the timings are the weights lookup's and the fallback's alone (a cold process adds its imports,
about 2–4 s, whatever the network), then times two loads of ``retinaface_resnet50``:

* ``no network``: the real hosts (huggingface.co, github.com) as this machine reaches them;
* ``HF_HUB_OFFLINE=1``;
* ``refused``: the Hub endpoint and the release mirror on closed loopback ports;
* ``blackholed``: both on loopback servers that accept connections and never answer (the probe timeout,
  ``GFP_NETWORK_TIMEOUT``, default 1.5 s, is what bounds it).

``--before REF`` also runs the ``no network`` scenario on the library as it was at git ``REF`` (``git
archive`` of ``gfp_core`` into a temporary folder), for a before/after comparison.

    python bench/bench_offline.py                      # writes bench/results/offline_cpu.json
    python bench/bench_offline.py --repeats 5 --before a0881c2   # and the library as it was at a0881c2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "offline_cpu.json"

CHILD = r"""
import json, time, warnings
start = time.perf_counter()
import gfp_core.weights, huggingface_hub.file_download  # torch and the Hub client, imported once per process
from gfp_core.face.detection import load_detector
load_detector("embedded")
print(json.dumps({"imports_s": time.perf_counter() - start}), flush=True)
for attempt in range(2):
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector = load_detector("retinaface_resnet50")
    print(json.dumps({"seconds": time.perf_counter() - start, "detector": type(detector).__name__,
                      "warning": next((str(w.message) for w in caught if w.category is RuntimeWarning), None)}),
          flush=True)
"""


class Blackhole:
    """A loopback TCP server that accepts and never answers; counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def run_child(env_extra: dict[str, str], home: Path, pythonpath: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"HF_HUB_OFFLINE", "GFP_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "GFP_RELEASE_MIRROR",
                        "GFP_MODEL_DIRS", "GFP_HUB_REPO"}}
    env.update({"GFP_HOME": str(home / "home"), "HF_HUB_CACHE": str(home / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
                "PYTHONPATH": str(pythonpath), **env_extra})
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=600,
                          cwd=home)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]  # imports, load 1, load 2


def scenario(name: str, env_extra: dict[str, str], repeats: int, pythonpath: Path, counter=None) -> dict:
    imports, first, second, warning, connections = [], [], [], None, []
    for _ in range(repeats):
        before = len(counter()) if counter else 0
        with tempfile.TemporaryDirectory() as tmp:
            loads = run_child(env_extra, Path(tmp), pythonpath)
        imports.append(loads[0]["imports_s"])
        first.append(loads[1]["seconds"])
        second.append(loads[2]["seconds"])
        warning = loads[2]["warning"]
        if counter:
            connections.append(len(counter()) - before)
    row = {"scenario": name, "env": env_extra, "imports_s": imports, "first_s": first, "second_s": second,
           "median_first_s": statistics.median(first), "median_second_s": statistics.median(second),
           "warning": warning}
    if counter:
        row["connections_per_process"] = connections
    print(f"{name:<34} first {row['median_first_s']:8.3f} s   second {row['median_second_s']:8.3f} s"
          + (f"   connections {connections}" if counter else ""), flush=True)
    return row


def source_at(ref: str, folder: Path) -> Path:
    """``gfp_core`` as it was at git ``ref``, extracted into ``folder``."""
    archive = subprocess.run(["git", "archive", ref, "gfp_core"], cwd=REPO_ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per scenario (medians reported)")
    parser.add_argument("--before", metavar="REF", help="also time the 'no network' scenario at this git ref")
    parser.add_argument("--before-repeats", type=int, default=1, help="processes for --before (each takes long)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)

    rows = []
    print(f"load_detector('retinaface_resnet50') without its weights; medians of {args.repeats} fresh processes")
    rows.append(scenario("no network", {}, args.repeats, REPO_ROOT))
    rows.append(scenario("HF_HUB_OFFLINE=1", {"HF_HUB_OFFLINE": "1"}, args.repeats, REPO_ROOT))
    rows.append(scenario("refused (closed loopback ports)", {"HF_ENDPOINT": closed_port_url(),
                                                             "GFP_RELEASE_MIRROR": closed_port_url()},
                         args.repeats, REPO_ROOT))
    hub, release = Blackhole(), Blackhole()
    try:
        rows.append(scenario("blackholed (accept, never answer)",
                             {"HF_ENDPOINT": hub.url, "GFP_RELEASE_MIRROR": release.url}, args.repeats, REPO_ROOT,
                             counter=lambda: hub.held + release.held))
    finally:
        hub.close()
        release.close()
    before = None
    if args.before:
        with tempfile.TemporaryDirectory() as old:
            before = scenario(f"no network, at {args.before}", {}, args.before_repeats, source_at(args.before, Path(old)))
            before["ref"] = args.before

    result = {"benchmark": "offline_fallback", "machine": {"platform": platform.platform(),
                                                            "python": platform.python_version(),
                                                            "cpus": os.cpu_count()},
              "repeats": args.repeats, "scenarios": rows, "before": before}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
