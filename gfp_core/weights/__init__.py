"""Weights: the registry of known models, where their files are, and the one safe way to load them."""
from .architectures import ARCHITECTURES, Architecture, build_architecture, detect_architecture, recognise_architecture
from .checkpoint import read_checkpoint, read_state_dict, write_state_dict
from .convert import convert_checkpoint
from .loader import LoadedModel, ModelInfo, load_model, load_model_with_info
from .registry import MODELS, HubFile, ModelSpec, find_spec, get_spec, known_names
from .resolve import ResolvedWeights, add_model_dir, model_dirs, resolve_weights

__all__ = [
    "ARCHITECTURES", "MODELS", "Architecture", "HubFile", "LoadedModel", "ModelInfo", "ModelSpec", "ResolvedWeights",
    "add_model_dir", "build_architecture", "convert_checkpoint", "detect_architecture", "find_spec", "get_spec",
    "known_names", "load_model", "load_model_with_info", "model_dirs", "read_checkpoint", "read_state_dict",
    "recognise_architecture", "resolve_weights", "write_state_dict",
]
