"""The driver of a Ray run: list the inputs, leave out what the manifest says is done, run the rest
through a Ray Data pipeline of :class:`~gfp_core.scale.worker.RestoreWorker` actors, show progress,
and say what happened (as the local command does).

Ray Data streams: the inputs are a dataset of file names in small blocks, the workers an actor pool
(one model copy each), and the outcome rows flow back to this process as they are made, so a
run of a million photos holds no photo anywhere but in the worker restoring it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import GFPError
from . import require_ray
from .inputs import ScaleInput, list_inputs
from .manifest import COMPACT_NAME, DONE, Journal, compact, manifest_folder, read_manifest, sweep_partials
from .worker import memory_mb, target_for

#: how many blocks a run's inputs are cut into at most (each block is one Ray task)
MAX_BLOCKS = 4000


@dataclass
class RunSummary:
    """What one run did; also written to ``OUTPUT/.gfp-scale/last-run.json``."""

    inputs: int = 0
    done_before: int = 0
    skipped: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    faces: int = 0
    failures: list[str] = field(default_factory=list)
    workers: int = 0
    seconds: float = 0.0
    #: inputs finished per second of this run's pipeline (from the first input begun to the last finished)
    per_second: float = 0.0
    #: peak resident memory of each worker process (MiB) and of this driver
    worker_peak_mb: dict[str, float] = field(default_factory=dict)
    driver_peak_mb: float = 0.0
    #: (seconds since start, worker, resident MiB) every so often: memory over the run
    memory: list[tuple[float, str, float]] = field(default_factory=list)
    partials_removed: int = 0
    #: inputs of batches given up after their workers died more than --retries times (done by a re-run)
    unfinished: int = 0


def restore_on_ray(args: argparse.Namespace) -> int:
    """``restore … --ray [ADDRESS]``: 0 when every input is done, 1 when some failed (each listed)."""
    try:
        summary = run(args)
    except KeyboardInterrupt:
        print(f"interrupted; what was finished is recorded in {manifest_folder(args.output)}: run the same "
              f"command again to carry on", file=sys.stderr)
        raise
    for line in summary.failures:
        print(f"error: {line}", file=sys.stderr)
    c = summary.counts
    workers = f"{summary.workers} worker{'' if summary.workers == 1 else 's'}"
    rate = f"{summary.per_second:.2f} inputs/s on {workers}; " if summary.workers else ""
    print(f"{c.get('restored', 0)} restored ({summary.faces} faces), {c.get('no face', 0)} without a face, "
          f"{summary.done_before} done by an earlier run, {summary.skipped} skipped (output exists; --overwrite), "
          f"{c.get('failed', 0)} failed; {rate}manifest in {manifest_folder(args.output)}; results in {args.output}",
          file=sys.stderr)
    if summary.unfinished:
        print(f"error: {summary.unfinished} inputs were not finished: their worker died more than --retries times "
              f"(out of memory?); run the same command again to finish them (an input that kills its worker "
              f"every time is then left out and listed)", file=sys.stderr)
    return 1 if c.get("failed") or summary.unfinished else 0


def restore_at_scale(inputs: Sequence[str], output: str | Path, *, ray: str = "local",
                     **options: Any) -> RunSummary:
    """Restore ``inputs`` into ``output`` on Ray (``ray``: 'local', or a cluster address). ``options``:
    the ``restore`` command's options by their long names with underscores (``model``, ``upscale``,
    ``aligned``, ``workers``, ``retries``, …)."""
    from ..cli import build_parser

    args = build_parser().parse_args(["restore", "-o", str(output), "--ray", ray, *map(str, inputs)])
    for name, value in options.items():
        if not hasattr(args, name) or name in ("func", "command", "inputs", "output", "ray"):
            raise TypeError(f"restore_at_scale() got an unknown option {name!r}")
        setattr(args, name, value)
    return run(args)


def run(args: argparse.Namespace) -> RunSummary:
    from ..cli import _check_video_settings, check_output_folder, is_video, name_clashes

    ray = require_ray()
    _address_or_input(args)
    if args.workers is not None and args.workers < 1:
        raise GFPError("--workers must be at least 1")
    if args.ray_batch < 1 or args.retries < 0 or args.worker_cpus <= 0:
        raise GFPError("--ray-batch must be at least 1, --retries at least 0 and --worker-cpus above 0")
    items, repeats = list_inputs(args.inputs, args.input_list)
    if not items:
        raise GFPError(f"no images or videos found in {' '.join([*args.inputs, *args.input_list])}")
    local = [Path(i.source) for i in items if not i.remote]
    clashes = name_clashes(local) + _url_clashes([i for i in items if i.remote])
    if clashes:
        listed = "\n".join(f"  {', '.join(str(p) for p in group)}" for group in clashes)
        raise GFPError("these inputs would write the same output files; restore them in separate runs with "
                       f"different --output folders, or rename them:\n{listed}")
    args.output = Path(args.output)
    check_output_folder(args.output)
    _check_video_settings([i.name for i in items], args)
    if args.aligned and any(is_video(i.name) for i in items):
        raise GFPError("--aligned is for photos of aligned face crops; restore videos without it")

    folder = manifest_folder(args.output)
    summary = RunSummary(inputs=len(items), partials_removed=sweep_partials(args.output))
    todo = _plan(items, args, folder, summary)
    if repeats:
        print(f"{repeats} inputs named a file already listed and are restored once", file=sys.stderr)
    if todo:
        _run_pipeline(ray, args, todo, folder, summary)
    summary.partials_removed += sweep_partials(args.output)
    compact(folder)
    summary.driver_peak_mb = round(memory_mb()[1], 1)
    partial = folder / ".last-run.json.partial"
    partial.write_text(json.dumps(asdict(summary), indent=1))
    os.replace(partial, folder / "last-run.json")
    return summary


def _address_or_input(args: argparse.Namespace) -> None:
    """``restore --ray photos/``: argparse took the folder for an address; it is an input, on a local instance."""
    value = args.ray
    if value in ("local", "auto") or value.startswith("ray://") or _host_port(value):
        return
    if os.path.exists(value) or any(ch in value for ch in "*?[") or "://" in value:
        args.inputs = [value, *args.inputs]
        args.ray = "local"
        return
    raise GFPError(f"--ray {value}: not a Ray address (host:port, ray://host:10001, auto) nor an input; "
                   f"put --ray after the inputs or write --ray=ADDRESS")


def _host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit())


def _url_clashes(items: list[ScaleInput]) -> list[list[str]]:
    from ..cli import is_video

    groups: dict[tuple[bool, str], list[str]] = {}
    for item in items:
        groups.setdefault((is_video(item.name), item.name.stem.casefold()), []).append(item.source)
    return [group for group in groups.values() if len(group) > 1]


def _plan(items: list[ScaleInput], args: argparse.Namespace, folder: Path, summary: RunSummary) -> list[dict]:
    """The inputs still to do. Done (its outcome says restored or no face, and the file is there): left
    out. Begun by a worker that died after its files were in place: recorded as restored. Begun by
    workers that died, more times than retries allow: recorded as failed. Its output there without
    any record (an earlier local run's): skipped as the local command skips it."""
    manifest = read_manifest(folder)
    journal = Journal(folder)
    todo, notes, died = [], [], 0
    try:
        for item in items:
            status = manifest.status(item.id)
            target = target_for(item, args)
            if status in DONE and target.exists():
                summary.done_before += 1
            elif manifest.starts.get(item.id) and target.exists() and not args.overwrite:
                # begun by a worker (or driver) killed before it could record the outcome: the photo is
                # written last, so its files are all there
                notes.append({"id": item.id, "input": item.source, "status": "restored", "target": str(target),
                              "faces": -1, "recovered": True, "reason": "its files were written by a try cut short"})
                summary.done_before += 1
            elif status == "worker died":  # found by an earlier run: not tried again
                summary.failures.append(manifest.record(item.id)["reason"])
                died += 1
            elif manifest.starts.get(item.id, 0) > args.retries:
                reason = (f"{item.source}: its worker died each of the {manifest.starts[item.id]} times it was "
                          f"restored (out of memory?); it is left out until its record is removed from "
                          f"{folder / COMPACT_NAME}")
                notes.append({"id": item.id, "input": item.source, "status": "worker died", "reason": reason,
                              "attempts": manifest.starts[item.id], "target": str(target)})
                summary.failures.append(reason)
                died += 1
            elif target.exists() and not args.overwrite:
                notes.append({"id": item.id, "input": item.source, "status": "skipped", "target": str(target),
                              "reason": "its output existed (--overwrite replaces it)"})
                summary.skipped += 1
            else:
                todo.append({"source": item.source, "key": item.key})
        journal.write(notes)
    finally:
        journal.close()
    summary.counts = {"failed": died} if died else {}
    return todo


def _run_pipeline(ray, args: argparse.Namespace, todo: list[dict], folder: Path, summary: RunSummary) -> None:
    from tqdm import tqdm

    _check_options(args)
    _check_model(args)
    started_here = _connect(ray, args)
    try:
        workers, gpus = _workers(ray, args, len(todo))
        summary.workers = workers
        dataset = _dataset(ray, args, todo, folder, workers, gpus)
        counts = Counter(summary.counts)
        bar = tqdm(total=len(todo), desc="restoring", unit="input", disable=args.quiet, dynamic_ncols=True)
        t0 = time.perf_counter()
        first, rows = float("inf"), 0
        try:
            for row in _rows(dataset):
                rows += 1
                now = time.perf_counter()
                first = min(first, row["began"])  # the workers' clock: the pipeline's start, model loading left out
                counts[row["status"]] += 1
                summary.faces += max(0, int(row["faces"]))
                if row["status"] == "failed":
                    summary.failures.append(row["reason"])
                    bar.set_postfix(failed=counts["failed"], refresh=False)
                worker = row["worker"]
                summary.worker_peak_mb[worker] = max(summary.worker_peak_mb.get(worker, 0.0), row["peak_rss_mb"])
                if len(summary.memory) < 100_000:
                    summary.memory.append((round(now - t0, 2), worker, row["rss_mb"]))
                bar.update(1)
        finally:
            bar.close()
        end = time.perf_counter()
        summary.seconds = round(end - t0, 3)
        summary.per_second = round(rows / max(time.time() - first, 1e-9), 3) if rows else 0.0
        summary.counts = dict(counts)
        summary.unfinished = len(todo) - rows
    finally:
        if started_here:
            ray.shutdown()


def _rows(dataset):
    """The outcome rows as they come; a worker that cannot start (a bad option, missing weights) is
    reported as the local command reports it, not as a Ray traceback."""
    try:
        yield from dataset.iter_rows()
    except Exception as exc:
        cause = _user_error(exc)
        if cause is not None:
            raise cause from None
        raise


def _user_error(exc: BaseException) -> GFPError | None:
    died = _worker_could_not_start(exc)
    if died is not None:
        return died
    return _carried_error(exc)


def _worker_could_not_start(exc: BaseException) -> GFPError | None:
    """A worker whose models could not be loaded: Ray keeps only the text of the error, whose last line
    is the exception as the local command would show it."""
    from ray.exceptions import ActorDiedError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ActorDiedError) and "creation task" in str(exc):
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            last = lines[-1] if lines else str(exc)
            name, sep, message = last.partition(": ")
            return GFPError(f"a Ray worker could not start: {message if sep and '.' in name else last}")
        exc = exc.__cause__ or exc.__context__
    return None


def _carried_error(exc: BaseException) -> GFPError | None:
    """The GFPError a worker raised, as it was raised (a Ray task error subclasses the error it carries, but its
    message is a traceback: the original is its ``cause``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)
        if isinstance(cause, GFPError):
            return cause
        if isinstance(exc, GFPError):
            return exc
        exc = cause if isinstance(cause, BaseException) else (exc.__cause__ or exc.__context__)
    return None


def _check_options(args: argparse.Namespace) -> None:
    """The restore options checked here, by the library's one policy (the engine's options and the limits
    FaceRestorer checks), so that a bad value is refused before any worker starts, naming its flag."""
    from .. import options
    from ..engine import EngineOptions
    from ..face.select import parse_indices

    options.MAX_PIXELS.check(args.max_pixels)
    options.BACKGROUND_TILE.check(args.bg_tile)
    options.check_device(args.device)
    options.check_dtype(args.dtype)
    if args.backend is not None:
        options.check_backend(args.backend)
    EngineOptions(upscale=args.upscale, fidelity=args.fidelity, visibility=args.visibility, mask=args.mask,
                  colour_match=args.colour_match, score_threshold=args.threshold,
                  detect_max_side=args.detect_max_side, min_face_size=args.min_face_size, select=args.select,
                  indices=parse_indices(args.indices) if args.indices else None, max_faces=args.max_faces,
                  smoothing=args.smoothing, steady=args.steady, max_output_pixels=args.max_output_pixels)


def _check_model(args: argparse.Namespace) -> None:
    """Find (or download, once, here) the model's weights before any worker starts, so that a wrong name or a
    missing file is said as the local command says it, and the workers of a single machine find the file."""
    from ..weights.resolve import resolve_weights

    if isinstance(args.model, str) and os.path.isfile(args.model):
        return
    resolved = resolve_weights(args.model, allow_unverified=args.allow_unverified, progress=not args.quiet)
    if not args.quiet:
        print(f"model: {resolved.spec.name if resolved.spec else args.model} from {resolved.path}; each worker "
              f"loads it once", file=sys.stderr)


def _connect(ray, args: argparse.Namespace) -> bool:
    """Join the cluster at ``args.ray``, or start a small local instance. True when this call started Ray
    (and so must stop it). A Ray already started in this process (a notebook, tests) is used as it is."""
    logging.getLogger("ray").setLevel(logging.WARNING)
    if ray.is_initialized():
        return False
    common = dict(include_dashboard=False, logging_level=logging.WARNING,
                  log_to_driver=bool(getattr(args, "verbose", False)))
    if args.ray == "local":
        workers = args.workers or max(1, int((os.cpu_count() or 1) // args.worker_cpus))
        ray.init(address="local", num_cpus=max(1, int(workers * args.worker_cpus + 0.999)),
                 object_store_memory=args.object_store_mb << 20, **common)
    else:
        try:
            ray.init(address=args.ray, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise GFPError(f"cannot join the Ray cluster at {args.ray}: {exc}") from exc
    return True


def _workers(ray, args: argparse.Namespace, n: int) -> tuple[int, float]:
    """How many workers, and GPUs for each: one per GPU where the cluster has GPUs and --device allows
    them, else one per --worker-cpus CPUs; never more than there are inputs."""
    resources = ray.cluster_resources()
    gpus_there = int(resources.get("GPU", 0))
    use_gpu = gpus_there > 0 and str(args.device).lower() in ("auto", "cuda") or str(args.device).startswith("cuda")
    if use_gpu and gpus_there == 0:
        raise GFPError(f"--device {args.device}: the Ray cluster has no GPU")
    if args.workers:
        workers = args.workers
    elif use_gpu:
        workers = gpus_there
    else:
        workers = max(1, int(resources.get("CPU", 1) // args.worker_cpus))
    return max(1, min(workers, n)), (1.0 if use_gpu else 0.0)


def _dataset(ray, args: argparse.Namespace, todo: list[dict], folder: Path, workers: int, gpus: float):
    from ray.data import ActorPoolStrategy, DataContext

    from .worker import RestoreWorker

    context = DataContext.get_current()
    # ours counts inputs (Ray's would count blocks); Ray Data's notes about its execution are not the user's
    # (a dropped batch's error included: the summary says what to do about it)
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # a batch whose workers keep dying (below) is dropped, not the whole run: its inputs are counted as
    # unfinished, and the re-run finds which of them kills its worker (the manifest counts the starts)
    context.max_errored_blocks = -1
    # blocks of one batch, smaller for short runs so that every worker gets a share (four blocks each at
    # least), larger for huge ones so that there are at most MAX_BLOCKS tasks to schedule
    per_block = max(1, min(args.ray_batch, -(-len(todo) // (4 * workers))), -(-len(todo) // MAX_BLOCKS))
    blocks = max(1, -(-len(todo) // per_block))
    options = {k: v for k, v in vars(args).items() if k not in ("func",)}
    items = ray.data.from_items(todo, override_num_blocks=blocks)
    common = dict(
        # one batch at a time per worker: a worker that dies takes no queued batch down with it
        batch_size=args.ray_batch, compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        fn_constructor_kwargs={"options": options, "manifest": str(folder), "threads": max(1, int(args.worker_cpus))},
        num_cpus=args.worker_cpus, num_gpus=gpus, batch_format="numpy")
    try:
        with warnings.catch_warnings():  # Ray 2.60 says these actor options will get another spelling
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            # a dead worker is replaced (Ray's default); its batch is given to the new one --retries times at most
            return items.map_batches(RestoreWorker, max_restarts=-1, max_task_retries=args.retries, **common)
    except TypeError:  # a Ray that no longer takes them: its default, retried until the batch is done
        return items.map_batches(RestoreWorker, **common)
