"""The manifest of a Ray run: what happened to each input, kept so that a run can be resumed.

It lives in ``OUTPUT/.gfp-scale/`` as append-only JSONL journals, one per writer (each worker process
and the driver write their own file, so no two processes ever append to one file, on one machine or
on a shared folder of a cluster). A record is one line::

    {"id": "…", "input": "photos/a.jpg", "status": "restored", "faces": 2, "target": "…/restored_imgs/a.jpg",
     "reason": "", "attempts": 1, "worker": "host:pid", "seconds": 0.8, "t": 1764540000.1}

``status``: ``restored``, ``no face`` (written unchanged, upscaled), ``failed`` (``reason`` says why,
after ``attempts`` tries), ``skipped`` (its output existed before the run and ``--overwrite`` was not
given), or ``started`` (a worker began it; only counted, never an outcome). A worker appends an
outcome only after every file of the input is in place (written atomically, the restored photo
last), and flushes and fsyncs its journal after each input, so a killed process loses at most the
inputs in flight and a torn last line is ignored. Per input, the latest outcome wins (by ``t``).
At the end of a run the journals are compacted into ``manifest.jsonl`` (written atomically, then
the journals it holds are removed).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

MANIFEST_FOLDER = ".gfp-scale"
COMPACT_NAME = "manifest.jsonl"
#: outcomes that make an input done (its output is skipped on a re-run while the file exists)
DONE = ("restored", "no face")
OUTCOMES = (*DONE, "failed", "skipped")
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
    """What the records say: ``outcomes`` (id → latest outcome record), ``starts`` (id → how many times a
    worker began it after its latest outcome: tries cut short by a dying worker) and the files read."""

    outcomes: dict[str, dict] = field(default_factory=dict)
    starts: Counter = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)

    def counts(self) -> Counter:
        return Counter(r["status"] for r in self.outcomes.values())


def read_manifest(folder: Path) -> Manifest:
    """Every record of ``folder`` (the compacted manifest and all journals), latest outcome per input."""
    folder = Path(folder)
    files = sorted(folder.glob("journal-*.jsonl"))
    if (folder / COMPACT_NAME).is_file():
        files.insert(0, folder / COMPACT_NAME)
    records = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a killed writer
                    continue
    records.sort(key=lambda r: r.get("t", 0))
    out = Manifest(files=files)
    for record in records:
        key = record.get("id")
        if key is None:
            continue
        if record.get("status") == "started":
            out.starts[key] += 1
        elif record.get("status") in OUTCOMES:
            # files found complete after a worker died keep what that worker recorded, if it did
            if record.get("recovered") and key in out.outcomes and out.outcomes[key]["status"] in DONE:
                continue
            out.outcomes[key] = record
            out.starts.pop(key, None)
    return out


def compact(folder: Path) -> Manifest:
    """Rewrite the latest outcome of each input into ``manifest.jsonl`` (atomically) and remove the journals
    it now holds. Call only when no worker is writing. Unfinished starts are kept (as one record each)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    records = sorted(manifest.outcomes.values(), key=lambda r: r.get("t", 0))
    now = time.time()  # starts came after their input's latest outcome: keep them after it
    records += [{"id": key, "status": "started", "t": now} for key, n in manifest.starts.items() for _ in range(n)]
    partial = folder / f".{COMPACT_NAME}.{secrets.token_hex(4)}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, folder / COMPACT_NAME)
    _sync_folder(folder)
    for path in manifest.files:
        if path.name != COMPACT_NAME:
            path.unlink(missing_ok=True)
    return manifest


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
