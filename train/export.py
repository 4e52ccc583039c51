"""Export of a trained generator as a ``.safetensors`` file that ``gfp_core.load_model(path)`` loads."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from gfp_core.errors import UnsupportedCheckpointError


def export_generator(g: nn.Module, path: str | Path, cfg: Mapping[str, Any] | None = None) -> Path:
    """Write ``g``'s weights (fp32, on the CPU) with the training config in the file's metadata."""
    from gfp_core.weights import write_state_dict

    from .config import dump_config

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise UnsupportedCheckpointError(f"export to a .safetensors file, not {path.name}")
    state = {k: v.detach().float().cpu() for k, v in g.state_dict().items()}
    metadata = {"format": "gfpgan", "arch": type(g).__name__, "source": "gfp-toolkit train"}
    if cfg is not None:
        metadata["config"] = dump_config(cfg)
    tmp = path.with_name(f".{path.name}.tmp.safetensors")
    write_state_dict(state, tmp, metadata)
    tmp.replace(path)
    return path


def export_checkpoint(source: str | Path, path: str | Path, network: str = "g_ema") -> Path:
    """Export ``network`` (the EMA generator by default) from a training checkpoint, or from the latest
    checkpoint of a run folder."""
    import yaml

    from .checkpoint import latest_checkpoint, read_checkpoint
    from .model import build_generator

    source = Path(source)
    if source.is_dir():
        found = latest_checkpoint(source)
        if found is None:
            raise UnsupportedCheckpointError(f"{source} holds no training checkpoint (checkpoints/iter_*.pt)")
        source = found
    state = read_checkpoint(source)
    if network not in state["nets"]:
        raise UnsupportedCheckpointError(f"{source} has no network {network!r} (it has {', '.join(state['nets'])})")
    cfg = yaml.safe_load(state["config"])  # the run's complete, checked config
    g = build_generator(cfg["model"])
    g.load_state_dict(state["nets"][network], strict=True)
    return export_generator(g, path, cfg)
