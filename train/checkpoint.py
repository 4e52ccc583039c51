"""Training checkpoints: complete, atomic, and readable with ``torch.load(weights_only=True)``.

A checkpoint holds plain tensors and containers only: every network, optimiser, scheduler and
gradient scaler state, every process's random number generator states, the iteration and the
config (as YAML text). It is written to a temporary file in the same folder, flushed to disk and
renamed over the final name, so a run killed at any moment leaves the last complete checkpoint.
"""
from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gfp_core.errors import UnsupportedCheckpointError

FORMAT = "gfp-train-1"
NAME = re.compile(r"^iter_(\d{8})\.pt$")


def checkpoint_dir(output: str | Path) -> Path:
    return Path(output) / "checkpoints"


def checkpoint_path(output: str | Path, iteration: int) -> Path:
    return checkpoint_dir(output) / f"iter_{iteration:08d}.pt"


def list_checkpoints(output: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary files are not listed)."""
    folder = checkpoint_dir(output)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if NAME.match(p.name))


def latest_checkpoint(output: str | Path) -> Path | None:
    found = list_checkpoints(output)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    """This process's generator states as plain data."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_atomic(obj: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(dict(obj), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def prune(output: str | Path, keep: int) -> None:
    for old in list_checkpoints(output)[:-keep]:
        old.unlink(missing_ok=True)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint, read safely (gfp_core's loader); refuses anything else with a clear message."""
    from gfp_core.weights.checkpoint import read_raw

    raw, _ = read_raw(path)
    if raw.get("format") != FORMAT:
        raise UnsupportedCheckpointError(
            f"{path} is not a checkpoint of this trainer (format {raw.get('format')!r}, expected {FORMAT!r}); "
            f"to start from released GFPGAN weights use model.init=pretrained model.pretrained={path}")
    return raw
