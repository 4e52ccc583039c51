"""Checkpoint format conversion (``.pth`` ↔ ``.safetensors``), checked bit for bit after writing."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import GFPError
from .architectures import recognise_architecture
from .checkpoint import SYNTHETIC_KEY, read_checkpoint, read_state_dict, write_state_dict
from .resolve import sha256_of


def convert_checkpoint(src: str | Path, dst: str | Path, overwrite: bool = False) -> Path:
    """Write the weights of ``src`` to ``dst`` (format from ``dst``'s suffix) and verify the round trip."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise GFPError(f"{dst} already exists; choose another name or pass --overwrite")
    if src.resolve() == dst.resolve():
        raise GFPError("source and destination are the same file")
    state, source_metadata = read_checkpoint(src)
    detected = recognise_architecture(state)
    metadata = {"format": "pt", "source_file": src.name, "source_sha256": sha256_of(src)}
    if source_metadata.get(SYNTHETIC_KEY):  # seeded random weights stay marked in any format
        metadata[SYNTHETIC_KEY] = source_metadata[SYNTHETIC_KEY]
    if detected is not None:
        metadata["architecture"] = detected[0]
    tmp = dst.with_name(dst.name + ".part" + dst.suffix)
    write_state_dict(state, tmp, metadata)
    try:
        check = read_state_dict(tmp)
        if check.keys() != state.keys() or not all(
                check[k].dtype == v.dtype and check[k].shape == v.shape and torch.equal(check[k], v)
                for k, v in state.items()):
            raise GFPError(f"conversion of {src} did not round-trip exactly; nothing was written")
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst
