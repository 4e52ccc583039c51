"""What the loader nodes do: a GFPGAN model, a face detector, a face parser (for the 'parsing' mask).

Each gives a :class:`~nodes.memory.Managed` (the gfp_core object and its ModelPatcher). Only names the
node offers are opened: a file listed in the pack's model folder or a registry name, never a path,
because a workflow is untrusted input.
"""
from __future__ import annotations

import os

from gfp_core import options
from gfp_core.device import DTYPE_NAMES
from gfp_core.errors import UnknownModelError
from gfp_core.face.detection import DETECTOR_NAMES, TorchRetinaFace, load_detector
from gfp_core.weights import get_spec, load_model
from gfp_core.weights.registry import MODELS

from . import host
from .memory import Managed
from .messages import comfy_errors

DEVICES = list(options.DEVICES.names)
DTYPES = list(DTYPE_NAMES)
BACKENDS = list(options.BACKENDS.names)
DETECTORS = list(DETECTOR_NAMES)


def _known(kind: str) -> list[str]:
    return [spec.name for spec in MODELS if spec.kind == kind]


# ------------------------------------------------------------------------------------- GFPGAN model
def restorer_choices() -> tuple[list[str], str]:
    """The model_name choices (files in the model folder, then registry models not there) and the default."""
    files = host.model_files(host.RESTORE_FOLDER)
    known = [name for name in _known("restoration") if get_spec(name).filename not in files]
    return files + known, "GFPGANv1.4.pth" if "GFPGANv1.4.pth" in files else "GFPGANv1.4"


def restorer_reference(model_name: str) -> str:
    """The file or registry name that ``model_name`` stands for: one of the files listed in the pack's
    model folder, or a restoration model's registry name. Anything else (a path, ``../x.pth``) is refused
    before any file is touched."""
    files = host.model_files(host.RESTORE_FOLDER)
    if model_name in files:
        path = host.model_file_path(host.RESTORE_FOLDER, model_name)
        if path:
            return path
    if model_name in _known("restoration"):
        return model_name
    choices = files + [name for name in _known("restoration") if name not in files]
    raise UnknownModelError(
        f"model_name {model_name!r} is neither a file in the {host.RESTORE_FOLDER} model folder nor a known "
        f"GFPGAN model; choose one of: {', '.join(choices)}")


@comfy_errors
def load_restorer(model_name: str, device: str, dtype: str, backend: str = "auto") -> Managed:
    """``backend`` (gfp_core.options.BACKENDS): 'auto' is the library's default, so GFP_BACKEND set for the
    ComfyUI process still pins it; 'openvino' on a GPU is refused with the library's message."""
    backend = options.check_backend(backend)  # before any file is read
    target = host.device(device)
    module = load_model(restorer_reference(model_name), device=target, dtype=dtype,
                        backend=None if backend == "auto" else backend)
    return Managed(module, module, target)


# ----------------------------------------------------------------------------------------- detector
@comfy_errors
def load_face_detector(detector: str, device: str) -> Managed:
    if detector not in DETECTOR_NAMES:  # names only, never a path
        raise UnknownModelError(f"detector {detector!r} is not one of: {', '.join(DETECTOR_NAMES)}")
    target = host.device(device)
    return managed_detector(load_detector(detector, device=target), target)


def managed_detector(found, target=None, on_unload=None) -> Managed:
    """A detector for the sockets: a torch RetinaFace is managed, the embedded (OpenCV) one is not."""
    module = found.model if isinstance(found, TorchRetinaFace) else None
    return Managed(found, module, target, on_unload=on_unload)


# ------------------------------------------------------------------------------------------- parser
def parser_files() -> list[str]:
    """Files in the pack's model folder named like a registry face parser (only names, never paths)."""
    names = {get_spec(name).filename: name for name in _known("parsing")}
    return [f for f in host.model_files(host.RESTORE_FOLDER) if f in names]


def parser_choices() -> tuple[list[str], str]:
    files = parser_files()
    known = [name for name in _known("parsing") if get_spec(name).filename not in files]
    return files + known, files[0] if files else "parsenet"


@comfy_errors
def load_face_parser(parser_name: str, device: str) -> Managed:
    target = host.device(device)
    files = parser_files()
    if parser_name in files:
        # a file the user put into ComfyUI's model folder is loaded as it is, like the GFPGAN files
        # the model loader lists (a registry name is checked against its published SHA-256)
        module = load_model(get_spec(parser_name).name, device=target, allow_unverified=True, progress=False)
    elif parser_name in _known("parsing"):
        module = load_model(parser_name, device=target, progress=False)
    else:
        raise UnknownModelError(
            f"parser_name {parser_name!r} is not a face parser; choose one of: "
            f"{', '.join(files + [n for n in _known('parsing') if n not in files])}")
    return Managed(module, module, target)


# -------------------------------------------------------------------------------------- fingerprints
def file_fingerprint(folder: str, name: str) -> str:
    """What changes when the file behind a listed ``name`` is replaced (so the loader runs again):
    its size and modification time; a registry name is its own fingerprint."""
    path = host.model_file_path(folder, name) if name in host.model_files(folder) else None
    if not path:
        return name
    try:
        stat = os.stat(path)
    except OSError:
        return name
    return f"{name}:{stat.st_size}:{stat.st_mtime_ns}"
