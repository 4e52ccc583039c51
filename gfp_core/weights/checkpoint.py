"""Reading and writing state dicts safely.

``.safetensors`` files are read with safetensors; everything else with
``torch.load(weights_only=True)``, which unpickles only tensors and plain containers. A checkpoint
that asks to import and call anything else is refused before any of it runs, and so is every pickle
checkpoint on a torch whose weights-only loader has known bypasses (before :data:`SAFE_TORCH`).

Whatever a file holds, reading it raises :class:`UnsupportedCheckpointError` or
:class:`UnsafeCheckpointError` naming the file, never a raw parser error.
"""
from __future__ import annotations

import pickle
import re
import struct
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import UnsafeCheckpointError, UnsupportedCheckpointError

#: where training checkpoints keep the weights, best first (official files: EMA under params_ema)
STATE_KEYS = ("params_ema", "params", "state_dict", "model")

#: metadata key of seeded random weights (gfp_core.synthetic): a safetensors metadata entry, or a
#: top-level string next to params_ema in a .pth
SYNTHETIC_KEY = "gfp_synthetic"

#: the first torch whose weights-only unpickler has no published bypass: 2.6.0 fixed CVE-2025-32434
#: (GHSA-53q9-r3pm-6pq6), 2.10.0 fixed CVE-2026-24747 (GHSA-63cw-57p8-fm3p, memory corruption through
#: SETITEM opcodes and storage sizes)
SAFE_TORCH = (2, 10, 0)


def _torch_weights_only_is_safe(version: str) -> bool:
    """Whether a torch release (``torch.__version__``, e.g. '2.10.0+cu128') is at least SAFE_TORCH.
    Pre-releases of SAFE_TORCH itself ('2.10.0a0', '2.10.0.dev…', '2.10.0rc1') may predate the fix."""
    match = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?([^+]*)", version)
    if match is None:
        return False  # unknown scheme: do not assume the fix is there
    release = tuple(int(part or 0) for part in match.group(1, 2, 3))
    prerelease = bool(re.search(r"(a|b|rc|dev|alpha|beta|pre)", match.group(4), re.IGNORECASE))
    return release > SAFE_TORCH or (release == SAFE_TORCH and not prerelease)


def _torch_version() -> str:
    return str(torch.__version__)


def _safetensors_header(path: Path) -> tuple[int, int] | None:
    """(header length field, file size) if the file starts like safetensors: an 8-byte little-endian
    length, then a JSON object. The length is not trusted here: read_raw checks it against the size."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError:
        return None
    if len(head) < 9 or head[8:9] != b"{":
        return None
    (header_len,) = struct.unpack("<Q", head[:8])
    return (header_len, size) if header_len > 0 else None


def is_safetensors(path: Path) -> bool:
    """By content, not by name: an 8-byte little-endian header length that fits the file, then a JSON object."""
    found = _safetensors_header(path)
    return found is not None and found[0] + 8 <= found[1]


def _read_safetensors(path: Path) -> tuple[dict, dict[str, str]]:
    header_len, size = _safetensors_header(path) or (0, 0)
    if header_len + 8 > size:  # a length field claiming more than the file holds: truncated or forged
        raise UnsupportedCheckpointError(
            f"{path}: not a readable safetensors file: its header claims {header_len:,} bytes but the whole file "
            f"has {size:,}; it is truncated or corrupt, download it again")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as exc:  # untrusted bytes: the parser's own error types vary (SafetensorError, …)
        raise UnsupportedCheckpointError(
            f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from exc


def _refuse_old_torch(path: Path) -> None:
    version = _torch_version()
    if not _torch_weights_only_is_safe(version):
        safe = ".".join(map(str, SAFE_TORCH))
        raise UnsafeCheckpointError(
            f"{path} was refused: it is a pickle checkpoint, and torch {version} cannot load those safely (its "
            f"weights-only loader has known code-execution bypasses before {safe}). Upgrade torch "
            f"(pip install -U 'torch>={safe}'), or use a .safetensors copy of the weights, which loads on any torch "
            f"(python -m gfp_core convert FILE.pth FILE.safetensors, run where torch>={safe} is installed).")


def _read_pickle(path: Path, allowed_globals: Sequence[Any]) -> Any:
    _refuse_old_torch(path)
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if wanted is None:  # not a forbidden object, just bytes that are no pickle
            raise UnsupportedCheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt?") from exc
        raise UnsafeCheckpointError(
            f"{path} was refused: loading it would call {wanted.group(1)}, and only tensors and plain containers "
            f"are accepted, because a checkpoint that calls code can do anything on your machine. gfp_core never "
            f"unpickles arbitrary objects; if you trust the file, re-save its weights as .safetensors "
            f"elsewhere.") from exc
    except Exception as exc:  # untrusted bytes: torch.load fails with any type (IndexError, KeyError, …)
        raise UnsupportedCheckpointError(
            f"{path}: not a readable checkpoint, truncated or corrupt? ({type(exc).__name__}: {exc})") from exc


def read_raw(path: str | Path, allowed_globals: Sequence[Any] = ()) -> tuple[dict, dict[str, str]]:
    """The file's top-level object and its metadata, safely: for safetensors the header's metadata, for
    pickle files the top-level string entries. ``allowed_globals``: further harmless types a data file
    may hold (e.g. numpy arrays), as for ``torch.serialization.safe_globals``."""
    path = Path(path)
    if not path.is_file():
        raise UnsupportedCheckpointError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UnsupportedCheckpointError(f"{path} is empty; download it again")
    if _safetensors_header(path) is not None:
        return _read_safetensors(path)
    obj = _read_pickle(path, allowed_globals)
    if not isinstance(obj, Mapping):
        raise UnsupportedCheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    metadata = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, str)}
    return dict(obj), metadata


def extract_state_dict(obj: Mapping, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Pick the weights out of a training checkpoint and drop DataParallel's ``module.`` prefix.
    Top-level strings next to the weights (metadata such as the synthetic marker) are not weights."""
    for key in STATE_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    else:
        obj = {k: v for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, str))}
    state = {}
    for name, value in obj.items():
        if not isinstance(name, str):
            raise UnsupportedCheckpointError(f"{source}: key {name!r} is a {type(name).__name__}, not a weight name")
        if not isinstance(value, torch.Tensor):
            raise UnsupportedCheckpointError(f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor")
        state[name[7:] if name.startswith("module.") else name] = value
    if not state:
        raise UnsupportedCheckpointError(f"{source} contains no weights")
    return state


def is_synthetic(metadata: Mapping[str, str]) -> bool:
    """Whether a file's metadata (from read_raw) marks seeded random weights."""
    return bool(metadata.get(SYNTHETIC_KEY))


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The weights in a ``.pth``/``.safetensors`` file and its metadata, safely loaded, on the CPU."""
    raw, metadata = read_raw(path)
    return extract_state_dict(raw, str(path)), metadata


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights in a ``.pth``/``.safetensors`` file, safely loaded, on the CPU."""
    return read_checkpoint(path)[0]


def write_state_dict(state: Mapping[str, torch.Tensor], path: str | Path,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write weights as ``.safetensors`` (``metadata`` in its header) or, for other suffixes, as an
    official-style ``{'params_ema': …}`` with ``metadata`` as top-level strings beside it (plain strings:
    ``torch.load(weights_only=True)`` and the official loaders, which read ``params_ema``, accept them)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        # clone shared storage so safetensors accepts every tensor, without changing a bit
        save_file({k: v.clone() for k, v in tensors.items()}, str(path), metadata=metadata)
    else:
        clash = set(metadata) & set(STATE_KEYS)
        if clash:
            raise ValueError(f"metadata keys {sorted(clash)} would be read as weights")
        torch.save({"params_ema": tensors, **metadata}, path)
    return path
