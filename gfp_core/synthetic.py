"""Seeded random-weight checkpoints in the official file formats.

They let the whole loading and restoration path run where real weights cannot be downloaded
(offline machines, CI). Their output is noise-like, not a restored face, so the files say what they
are: ``load_model_with_info(...).info.synthetic`` is True for them (front ends show it).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .weights.architectures import build_architecture
from .weights.checkpoint import SYNTHETIC_KEY, write_state_dict
from .weights.registry import get_spec


def random_state_dict(name: str, seed: int = 0, noise_strength: float = 0.1) -> dict[str, torch.Tensor]:
    """A freshly initialised model of registry entry ``name``; StyleGAN2 noise strengths set to
    ``noise_strength`` (a fresh model has them all at 0, so noise would otherwise not matter)."""
    spec = get_spec(name)
    torch.manual_seed(seed)
    model = build_architecture(spec.arch, spec.arch_kwargs)
    with torch.no_grad():
        for pname, param in model.named_parameters():
            if pname.startswith("stylegan_decoder.") and pname.endswith(".weight") and param.numel() == 1:
                param.fill_(noise_strength)
    return model.state_dict()


def write_random_checkpoint(name: str, path: str | Path, seed: int = 0, noise_strength: float = 0.1) -> Path:
    """Write ``random_state_dict`` as ``{'params_ema': …}`` (.pth) or as ``.safetensors``, marked as
    synthetic (a top-level string beside params_ema, or safetensors metadata)."""
    marker = {SYNTHETIC_KEY: f"seeded random weights of {get_spec(name).name} (seed {seed}), not a trained model"}
    return write_state_dict(random_state_dict(name, seed, noise_strength), path, metadata=marker)
