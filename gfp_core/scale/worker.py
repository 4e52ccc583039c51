"""A Ray worker: loads the models once, then restores the inputs of each batch it is given, one at a time,
with the local command's code, writes their files atomically and records each outcome in its journal.

Only file names travel through the dataset; each photo is read, restored and written here, so a
worker holds one photo (or one video's chunk of frames) at a time, whatever the size of the run.
"""
from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .inputs import ScaleInput, local_copy
from .manifest import Journal


def target_for(item: ScaleInput, args: argparse.Namespace) -> Path:
    """The input's restored photo or video, named as the local command names it."""
    from ..cli import _video_target, image_target, is_video

    return _video_target(item.name, args) if is_video(item.name) else image_target(item.name, args)


def memory_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MiB (Linux; now = peak elsewhere)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1 << 10)
    try:
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError):
        now = peak
    return now, peak


class RestoreWorker:
    """Called by Ray Data with batches of ``{"source": [...], "key": [...]}``; returns one outcome row
    per input (what the manifest records, plus the worker's memory for the progress and benchmarks)."""

    def __init__(self, options: dict[str, Any], manifest: str, threads: int = 1) -> None:
        import torch

        from ..cli import restorer_from_args

        torch.set_num_threads(max(1, threads))
        self.args = argparse.Namespace(**{**options, "quiet": True})
        self.restorer = restorer_from_args(self.args)  # the models, loaded once per worker
        self.journal = Journal(Path(manifest))
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = [self.restore_one(ScaleInput(str(s), str(k))) for s, k in zip(batch["source"], batch["key"])]
        return {name: [row[name] for row in rows] for name in rows[0]} if rows else {}

    def restore_one(self, item: ScaleInput) -> dict[str, Any]:
        args = self.args
        target = target_for(item, args)
        record: dict[str, Any] = {"id": item.id, "input": item.source, "target": str(target), "faces": -1,
                                  "reason": "", "attempts": 0, "worker": self.worker}
        began, started = time.time(), time.perf_counter()
        if target.exists() and not args.overwrite:
            # this run's earlier try on a worker that died: its files are complete (the photo is written
            # last), so they are kept, not written again
            record.update(status="restored", recovered=True, reason="its files were written by a try cut short")
        else:
            self.journal.write([{"id": item.id, "status": "started", "worker": self.worker}], sync=False)
            for attempt in range(1, args.retries + 2):
                record["attempts"] = attempt
                status, faces, reason = self._attempt(item, target)
                record.update(status=status, faces=faces, reason=reason)
                if status != "failed":
                    break
                if item.remote and attempt <= args.retries:
                    time.sleep(min(2.0 * attempt, 10.0))  # a remote store's hiccup: back off before trying again
        record["seconds"] = round(time.perf_counter() - started, 4)
        self.journal.write([record])
        now, peak = memory_mb()
        return {**{k: record.get(k) for k in ("id", "status", "faces", "reason", "attempts", "worker", "seconds")},
                "input": item.source, "recovered": bool(record.get("recovered")), "rss_mb": round(now, 1),
                "peak_rss_mb": round(peak, 1), "began": began}

    def _attempt(self, item: ScaleInput, target: Path) -> tuple[str, int, str]:
        """One try: (status, faces restored, reason), as the local command would count and word it."""
        from .. import options
        from ..cli import CLI_WORDS, _restore_video, _write_results, is_video
        from ..errors import GFPError
        from ..image import read_picture

        args = self.args
        local: Path | None = None
        try:
            with local_copy(item) as local:
                if is_video(item.name):
                    outcome = _restore_video(self.restorer, local, target, args)
                    return "restored", outcome.faces, ""
                picture = read_picture(local, args.max_pixels)
                result = self.restorer.restore(picture, aligned=args.aligned)
                del picture
                problems = _write_results(args.output, item.name, target, result, args.suffix, target_last=True)
        except GFPError as exc:
            options.in_words(exc, CLI_WORDS)
            return "failed", -1, self._said(str(exc), item, local)
        except Exception as exc:  # one bad file must not stop the run
            return "failed", -1, self._said(f"{type(exc).__name__}: {exc}", item, local)
        if problems:
            return "failed", -1, f"{item.source}: {problems}"
        return ("no face" if result.num_detected == 0 else "restored"), result.num_restored, ""

    @staticmethod
    def _said(text: str, item: ScaleInput, path: Path | None) -> str:
        """The message in the user's terms: a downloaded copy's name replaced by the input's URL."""
        if path is not None and str(path) != item.source:
            text = text.replace(str(path), item.source)
        return text if item.source in text else f"{item.source}: {text}"
