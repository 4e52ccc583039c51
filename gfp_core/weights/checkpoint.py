"""Reading and writing state dicts safely.

``.safetensors`` files are read with safetensors; everything else with
``torch.load(weights_only=True)``, which unpickles only tensors and plain containers. A checkpoint
that asks to import and call anything else is refused before any of it runs.
"""
from __future__ import annotations

import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import UnsafeCheckpointError, UnsupportedCheckpointError

#: where training checkpoints keep the weights, best first (official files: EMA under params_ema)
STATE_KEYS = ("params_ema", "params", "state_dict", "model")


def is_safetensors(path: Path) -> bool:
    """By content, not by name: an 8-byte little-endian header length, then a JSON object."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 0 < header_len < size and head[8:9] == b"{"


def read_raw(path: str | Path, allowed_globals: Sequence[Any] = ()) -> tuple[dict, dict[str, str]]:
    """The file's top-level object and (for safetensors) its metadata, safely. ``allowed_globals``:
    further harmless types a data file may hold (e.g. numpy arrays), as for ``torch.serialization.safe_globals``."""
    path = Path(path)
    if not path.is_file():
        raise UnsupportedCheckpointError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UnsupportedCheckpointError(f"{path} is empty; download it again")
    if is_safetensors(path):
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError, ValueError) as exc:
            raise UnsupportedCheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if wanted is None:  # not a forbidden object, just bytes that are no pickle
            raise UnsupportedCheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt?") from exc
        raise UnsafeCheckpointError(
            f"{path} was refused: loading it would call {wanted.group(1)}, and only tensors and plain containers "
            f"are accepted, because a checkpoint that calls code can do anything on your machine. gfp_core never "
            f"unpickles arbitrary objects; if you trust the file, re-save its weights as .safetensors "
            f"elsewhere.") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsupportedCheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt? ({exc})") from exc
    if not isinstance(obj, Mapping):
        raise UnsupportedCheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return dict(obj), {}


def extract_state_dict(obj: Mapping, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Pick the weights out of a training checkpoint and drop DataParallel's ``module.`` prefix."""
    for key in STATE_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    state = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise UnsupportedCheckpointError(f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor")
        state[name[7:] if name.startswith("module.") else name] = value
    if not state:
        raise UnsupportedCheckpointError(f"{source} contains no weights")
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights in a ``.pth``/``.safetensors`` file, safely loaded, on the CPU."""
    raw, _ = read_raw(path)
    return extract_state_dict(raw, str(path))


def write_state_dict(state: Mapping[str, torch.Tensor], path: str | Path,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write weights as ``.safetensors`` or, for other suffixes, as an official-style ``{'params_ema': …}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        # clone shared storage so safetensors accepts every tensor, without changing a bit
        save_file({k: v.clone() for k, v in tensors.items()}, str(path), metadata=dict(metadata or {}))
    else:
        torch.save({"params_ema": tensors}, path)
    return path
