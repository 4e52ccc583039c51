"""The manifest of a Ray run: what happened to each input, kept so that a run can be resumed.

It lives in ``OUTPUT/.gfp-scale/`` as append-only JSONL journals, one per writer (each worker process
and the driver write their own file, so no two processes ever append to one file, on one machine or
on a shared folder of a cluster). A record is one line::

    {"id": "…", "input": "photos/a.jpg", "status": "restored", "faces": 2, "target": "…/restored_imgs/a.jpg",
     "reason": "", "attempts": 1, "worker": "host:pid", "seconds": 0.8, "t": 1764540000.1}

``status``: ``restored``, ``no face`` (written unchanged, upscaled), ``failed`` (``reason`` says why,
after ``attempts`` tries), ``skipped`` (its output existed before the run and ``--overwrite`` was not
given), ``worker died`` (its workers died each time they began it, more than ``--retries`` times: left
out of later runs until its record is removed), or ``started`` (a worker began it; only counted,
never an outcome). A worker appends an outcome only after every file of the input is in place
(written atomically, the restored photo last), and flushes and fsyncs its journal after each input,
so a killed process loses at most the inputs in flight and a torn last line is ignored. Per input,
the latest outcome wins (by ``t``).
At the end of a run the journals are compacted into ``manifest.jsonl`` (written atomically, then
the journals it holds are removed).
"""
from __future__ import annotations

import heapq
import json
import os
import re
import secrets
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

MANIFEST_FOLDER = ".gfp-scale"
COMPACT_NAME = "manifest.jsonl"
#: outcomes that make an input done (its output is skipped on a re-run while the file exists)
DONE = ("restored", "no face")
#: "worker died": its workers died every time they began it (a decoder crash, out of memory); left out of re-runs
OUTCOMES = (*DONE, "failed", "skipped", "worker died")
#: write_image's temporary names (``.NAME.1a2b3c4d.partial.EXT``): left behind only by a killed process
PARTIAL = re.compile(r"^\..+\.[0-9a-f]{8}\.partial\.[A-Za-z0-9]+$")
OUTPUT_FOLDERS = ("restored_imgs", "restored_faces", "cropped_faces", "cmp")


def manifest_folder(output: Path) -> Path:
    return Path(output) / MANIFEST_FOLDER


def writer_name() -> str:
    """This process, as it signs its records and names its journal: host, pid and a random tag (a
    restarted worker may get a pid an earlier one had)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Journal:
    """One writer's append-only journal; each :meth:`write` is flushed and fsynced before it returns."""

    def __init__(self, folder: Path, who: str | None = None) -> None:
        self.who = who or writer_name()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"journal-{self.who}.jsonl"
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, records: Iterable[dict], sync: bool = True) -> None:
        lines = "".join(json.dumps({**r, "t": time.time()}, ensure_ascii=False) + "\n" for r in records)
        if not lines:
            return
        self._file.write(lines)
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


@dataclass
class Manifest:
    """What the records say. ``latest``: id → (status, time, file number, byte offset) of the input's latest
    outcome, small enough to hold for millions of inputs (:meth:`record` reads the whole record back);
    ``starts``: id → how many times a worker began it after that outcome (tries cut short by a dying
    worker); ``files``: the files read, in that numbering."""

    latest: dict[str, tuple[str, float, int, int]] = field(default_factory=dict)
    starts: Counter = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)

    def status(self, key: str) -> str | None:
        found = self.latest.get(key)
        return None if found is None else found[0]

    def record(self, key: str) -> dict:
        """The input's latest outcome record, read back from its file."""
        _status, _t, number, offset = self.latest[key]
        with open(self.files[number], "rb") as f:
            f.seek(offset)
            return json.loads(f.readline())

    @property
    def outcomes(self) -> dict[str, dict]:
        """Every latest outcome record (read back: for small manifests and tests)."""
        return {key: self.record(key) for key in self.latest}

    def counts(self) -> Counter:
        return Counter(status for status, *_ in self.latest.values())


def _lines(path: Path, number: int) -> Iterator[tuple[float, int, int, dict]]:
    """(time, file number, byte offset, record) of each whole line; a line cut short by a killed writer is
    left out."""
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict) and "id" in record:
                yield float(record.get("t", 0)), number, offset, record
            offset += len(line)


def read_manifest(folder: Path) -> Manifest:
    """Every record of ``folder`` (the compacted manifest and all journals), latest outcome per input. Each
    file is in time order (one writer appends to it), so they are merged as streams, never all in memory."""
    folder = Path(folder)
    files = sorted(folder.glob("journal-*.jsonl"))
    if (folder / COMPACT_NAME).is_file():
        files.insert(0, folder / COMPACT_NAME)
    out = Manifest(files=files)
    merged = heapq.merge(*(_lines(path, n) for n, path in enumerate(files)), key=lambda entry: entry[0])
    for t, number, offset, record in merged:
        key, status = record["id"], record.get("status")
        if status == "started":
            out.starts[key] += 1
        elif status in OUTCOMES:
            # files found complete after a worker died keep what that worker recorded, if it did
            if record.get("recovered") and out.status(key) in DONE:
                continue
            out.latest[key] = (sys.intern(status), t, number, offset)
            out.starts.pop(key, None)
    return out


def compact(folder: Path) -> Manifest:
    """Rewrite the latest outcome of each input into ``manifest.jsonl`` (atomically, in time order) and remove
    the journals it now holds. Call only when no worker is writing. Unfinished starts are kept."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    partial = folder / f".{COMPACT_NAME}.{secrets.token_hex(4)}.partial"
    handles = [open(path, "rb") for path in manifest.files]
    try:
        with open(partial, "wb") as f:
            for _status, _t, number, offset in sorted(manifest.latest.values(), key=lambda entry: entry[1]):
                handles[number].seek(offset)
                f.write(handles[number].readline())
            now = time.time()  # starts came after their input's latest outcome: keep them after it
            f.writelines(json.dumps({"id": key, "status": "started", "t": now}).encode() + b"\n"
                         for key, n in manifest.starts.items() for _ in range(n))
            f.flush()
            os.fsync(f.fileno())
    finally:
        for handle in handles:
            handle.close()
    os.replace(partial, folder / COMPACT_NAME)
    _sync_folder(folder)
    for path in manifest.files:
        if path.name != COMPACT_NAME:
            path.unlink(missing_ok=True)
    return read_manifest(folder)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sweep_partials(output: Path) -> int:
    """Remove the temporary files of atomic writes that a killed process left in the output folders
    (never a finished file: those have their own names). Returns how many were removed."""
    removed = 0
    for name in OUTPUT_FOLDERS:
        folder = Path(output) / name
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") and PARTIAL.match(entry.name) and entry.is_file(follow_symlinks=False):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
    return removed
