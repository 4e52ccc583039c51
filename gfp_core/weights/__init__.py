"""Weights: the registry of known models, where their files are, and the one safe way to load them."""
from .architectures import build_architecture, detect_architecture, detect_gfpgan
from .checkpoint import read_checkpoint, read_state_dict, write_state_dict
from .convert import convert_checkpoint
from .loader import load_model
from .registry import MODELS, HubFile, ModelSpec, find_spec, get_spec, known_names
from .resolve import ResolvedWeights, add_model_dir, model_dirs, resolve_weights

__all__ = [
    "MODELS", "HubFile", "ModelSpec", "ResolvedWeights", "add_model_dir", "build_architecture", "convert_checkpoint",
    "detect_architecture", "detect_gfpgan", "find_spec", "get_spec", "known_names", "load_model", "model_dirs",
    "read_checkpoint", "read_state_dict", "resolve_weights", "write_state_dict",
]
