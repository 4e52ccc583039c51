"""Archive-scale benchmark: ``restore`` as the plain command and with ``--ray`` (a local Ray instance) on the
same folder, and a larger run that shows a worker's memory staying flat.

* **Throughput**: ``--photos`` photos (512×512, one face each: skimage's astronaut, shifted so no two files
  are alike), the v1.4 architecture with seeded random weights (``gfp_core.synthetic``), the embedded
  detector, upscale 2. Rows: the plain command (torch's threads: all cores), Ray with 1 worker of 1 CPU,
  1 worker of all the CPUs, and one worker per CPU. Each is a fresh subprocess, as a user runs it:
  *wall* counts everything (Python, Ray's start, model loading); *steady photos/s* is measured between the
  first and the last restored file's modification times (the pipeline at work, start-up left out).
  Memory: the process tree is sampled every 0.5 s (psutil) — peak resident memory of the driver, of each
  worker process and of Ray's own processes (raylet, GCS, object store, Ray Data's actors), and of the
  whole tree (RSS, and PSS: shared pages counted once).
* **Flat memory**: ``--many`` small photos (96×96) restored as aligned crops by a small random model on
  Ray with one worker per CPU (``--many-plain``: also the plain command); each worker reports its resident
  memory with every photo (``.gfp-scale/last-run.json``). Reported per worker: the median over its first
  and its last 10 % of photos, the largest value, and a fitted slope in MiB per 1000 photos.

Writes ``bench/results/scale_cpu.json``.

    python bench/bench_scale.py                     # about 7 minutes on 2 cores
    python bench/bench_scale.py --photos 8 --many 500
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image
from skimage import data

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "bench" / "results" / "scale_cpu.json"


def make_photos(folder: Path, n: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    img = data.astronaut()
    for i in range(n):
        shifted = np.roll(img, 2 * i, axis=1)
        if size != 512:
            shifted = np.asarray(Image.fromarray(shifted).resize((size, size), Image.Resampling.LANCZOS))
        Image.fromarray(shifted).save(folder / f"p{i:05d}.jpg", quality=90)


def small_model(path: Path) -> Path:
    from gfp_core.archs import GFPGANv1Clean

    torch.manual_seed(3)
    torch.save({"params_ema": GFPGANv1Clean(out_size=64, narrow=0.25).state_dict()}, path)
    return path


def _busy_s() -> float:
    """Seconds of CPU time the whole machine has spent busy (all cores), since boot."""
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


class TreeSampler:
    """Peak resident memory of a process and its descendants, by role, sampled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.root = psutil.Process(pid)
        self.every = every
        self.peaks: dict[str, float] = {}
        self.total_peak = 0.0
        #: the tree's proportional set size (shared pages counted once, split between their users)
        self.pss_peak = 0.0
        #: CPU seconds of the tree's processes (each counted at its last sample)
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _role(self, proc: psutil.Process) -> str:
        if proc.pid == self.root.pid:
            return "driver"
        try:
            line = " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return "ray"
        return f"worker {proc.pid}" if "MapWorker" in line else "ray"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total, ray_total, pss = 0.0, 0.0, 0.0
            for proc in procs:
                try:
                    pss += getattr(proc.memory_full_info(), "pss", 0) / 2**20
                    rss = proc.memory_info().rss / 2**20
                    times = proc.cpu_times()
                    self._cpu[proc.pid] = times.user + times.system
                except psutil.NoSuchProcess:
                    continue
                role = self._role(proc)
                total += rss
                if role == "ray":
                    ray_total += rss
                else:
                    self.peaks[role] = max(self.peaks.get(role, 0.0), rss)
            self.peaks["ray system (all)"] = max(self.peaks.get("ray system (all)", 0.0), ray_total)
            self.total_peak = max(self.total_peak, total)
            self.pss_peak = max(self.pss_peak, pss)
            self._stop.wait(self.every)

    @property
    def cpu_s(self) -> float:
        return sum(self._cpu.values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_restore(label: str, inputs: Path, out: Path, model: Path, extra: list[str], env: dict) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "gfp_core", "restore", str(inputs), "-m", str(model), "--detector", "embedded",
               "-o", str(out), "-q", *extra]
    start = time.perf_counter()
    busy0 = _busy_s()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    _, err = proc.communicate(timeout=3600)
    sampler.stop()
    wall = time.perf_counter() - start
    # the CPU time other processes took meanwhile (the machine's busy time less this run's tree's)
    other = max(0.0, (_busy_s() - busy0) - sampler.cpu_s) / (wall * (os.cpu_count() or 1))
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{err}")
    times = sorted(p.stat().st_mtime for p in (out / "restored_imgs").iterdir())
    n = len(times)
    row = {"label": label, "command": " ".join(command[3:]).replace(str(inputs), "PHOTOS").replace(str(out), "OUT")
           .replace(str(model), "MODEL"), "photos": n, "wall_s": round(wall, 2), "photos_per_s": round(n / wall, 3),
           "steady_photos_per_s": round((n - 1) / (times[-1] - times[0]), 3) if n > 1 else None,
           "peak_mb": {k: round(v, 1) for k, v in sorted(sampler.peaks.items())},
           "tree_peak_mb": round(sampler.total_peak, 1), "tree_peak_pss_mb": round(sampler.pss_peak, 1),
           "other_cpu_load": round(other, 3)}
    workers = [v for k, v in sampler.peaks.items() if k.startswith("worker")]
    row["worker_peak_mb"] = round(max(workers), 1) if workers else None
    summary = out / ".gfp-scale" / "last-run.json"
    if summary.is_file():
        run = json.loads(summary.read_text())
        row["ray"] = {k: run[k] for k in ("workers", "per_second", "worker_peak_mb", "driver_peak_mb", "counts")}
    print(f"{label:<34} {row['photos_per_s']:6.3f} photos/s (steady {row['steady_photos_per_s']}), wall "
          f"{wall:6.1f} s, peak MiB {row['peak_mb']}, tree {row['tree_peak_mb']:.0f} "
          f"(PSS {row['tree_peak_pss_mb']:.0f}), "
          f"other CPU load {other:.0%}",
          flush=True)
    return row


def flat_memory(folder: Path, out: Path, model: Path, env: dict, workers: int) -> dict:
    row = run_restore(f"ray {workers} workers, many small", folder, out, model,
                      ["--aligned", "--ray", "--workers", str(workers), "--ray-batch", "16"], env)
    run = json.loads((out / ".gfp-scale" / "last-run.json").read_text())
    per_worker = {}
    for worker in sorted({w for _, w, _ in run["memory"]}):
        rss = np.array([r for _, w, r in run["memory"] if w == worker])
        k = max(1, len(rss) // 10)
        slope = float(np.polyfit(np.arange(len(rss)), rss, 1)[0]) * 1000 if len(rss) > 2 else 0.0
        per_worker[worker] = {"photos": int(len(rss)), "first_10pct_mb": round(float(np.median(rss[:k])), 1),
                              "last_10pct_mb": round(float(np.median(rss[-k:])), 1),
                              "max_mb": round(float(rss.max()), 1), "slope_mb_per_1000": round(slope, 2),
                              "series_mb": [round(float(x), 1) for x in rss[:: max(1, len(rss) // 50)]]}
        print(f"  {worker}: {per_worker[worker]['photos']} photos, first 10% {per_worker[worker]['first_10pct_mb']} "
              f"MiB, last 10% {per_worker[worker]['last_10pct_mb']} MiB, max {per_worker[worker]['max_mb']} MiB, "
              f"slope {slope:+.2f} MiB / 1000 photos", flush=True)
    row["per_worker"] = per_worker
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=12, help="photos in the throughput runs (default 12)")
    parser.add_argument("--many", type=int, default=2000, help="small photos in the flat-memory run (default 2000)")
    parser.add_argument("--many-plain", action="store_true", help="also time the plain command on the small photos")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    from gfp_core.synthetic import write_random_checkpoint

    import ray

    cpus = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GFP_BACKEND": "torch", "PYTHONPATH": str(REPO)}
    try:
        model = write_random_checkpoint("v1.4", work / "v14-random.pth", seed=0)
        photos = work / "photos"
        make_photos(photos, args.photos, 512)
        out = work / "out"
        rows = [run_restore(f"plain command ({torch.get_num_threads()} threads)", photos, out, model, [], env)]
        ray_runs = [("ray 1 worker x 1 CPU", ["--workers", "1", "--worker-cpus", "1"]),
                    (f"ray 1 worker x {cpus} CPUs", ["--workers", "1", "--worker-cpus", str(cpus)]),
                    (f"ray {cpus} workers x 1 CPU", ["--workers", str(cpus), "--worker-cpus", "1"])]
        for label, extra in ray_runs:
            rows.append(run_restore(label, photos, out, model, ["--ray", *extra], env))

        many = work / "many"
        make_photos(many, args.many, 96)
        tiny = small_model(work / "tiny.pth")
        plain_many = run_restore("plain command, many small", many, out, tiny, ["--aligned"], env) \
            if args.many_plain else None
        flat = flat_memory(many, out, tiny, env, cpus)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = {"environment": {"cpu": platform.processor() or platform.machine(), "cores": cpus,
                               "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                               "python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__,
                               "model": "v1.4 architecture, seeded random weights", "photo": "512x512, one face",
                               "upscale": 2, "detector": "embedded"},
               "throughput": rows, "many": {"photos": args.many, "size": 96, "plain": plain_many, "ray": flat}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
