"""Loader nodes: a GFPGAN model, a face detector and a face parser (for the 'parsing' mask)."""
from __future__ import annotations

from gfp_core import options
from gfp_core.device import DTYPE_NAMES
from gfp_core.errors import UnknownModelError
from gfp_core.face.detection import DETECTOR_NAMES, load_detector
from gfp_core.weights import get_spec, load_model
from gfp_core.weights.registry import MODELS

from . import host
from .messages import comfy_errors

DEVICES = list(options.DEVICES.names)


def _known_restorers() -> list[str]:
    return [spec.name for spec in MODELS if spec.kind == "restoration"]


class GFPGANModelLoader:
    """A GFPGAN model: a file in models/facerestore_models, or a known version fetched from the Hub."""

    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("GFPGAN_MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        files = host.model_files(host.RESTORE_FOLDER)
        known = [name for name in _known_restorers() if get_spec(name).filename not in files]
        return {"required": {
            "model_name": (files + known, {"default": "GFPGANv1.4" if "GFPGANv1.4.pth" not in files
                                           else "GFPGANv1.4.pth"}),
            "device": (DEVICES, {"default": "auto"}),
            "dtype": (list(DTYPE_NAMES), {"default": "fp32"}),
        }}

    @comfy_errors
    def load(self, model_name: str, device: str, dtype: str):
        return (load_model(restorer_reference(model_name), device=host.device(device), dtype=dtype),)


def restorer_reference(model_name: str) -> str:
    """The file or registry name that ``model_name`` stands for: one of the files listed in the pack's
    model folder, or a restoration model's registry name. Anything else (a path, ``../x.pth``) is refused
    before any file is touched: a workflow is untrusted input and must not open files of its choosing."""
    files = host.model_files(host.RESTORE_FOLDER)
    if model_name in files:
        path = host.model_file_path(host.RESTORE_FOLDER, model_name)
        if path:
            return path
    if model_name in _known_restorers():
        return model_name
    choices = files + [name for name in _known_restorers() if name not in files]
    raise UnknownModelError(
        f"model_name {model_name!r} is neither a file in the {host.RESTORE_FOLDER} model folder nor a known "
        f"GFPGAN model; choose one of: {', '.join(choices)}")


class GFPGANFaceDetectorLoader:
    """RetinaFace (ResNet-50 or MobileNet-0.25, weights from models/facedetection or the Hub), or the
    embedded detector that needs no download."""

    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("FACE_DETECTOR",)
    RETURN_NAMES = ("detector",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"detector": (list(DETECTOR_NAMES), {"default": "retinaface_resnet50"}),
                             "device": (DEVICES, {"default": "auto"})}}

    @comfy_errors
    def load(self, detector: str, device: str):
        if detector not in DETECTOR_NAMES:  # names only, never a path
            raise UnknownModelError(f"detector {detector!r} is not one of: {', '.join(DETECTOR_NAMES)}")
        return (load_detector(detector, device=host.device(device)),)


def _known(kind: str) -> list[str]:
    return [spec.name for spec in MODELS if spec.kind == kind]


class GFPGANFaceParserLoader:
    """A face-parsing network for Paste Faces / GFPGAN Restore Faces with mask = parsing: ParseNet
    (the official choice) or BiSeNet. Its file in models/facerestore_models under the release name
    (parsing_parsenet.pth, parsing_bisenet.pth), or the registry name, found in the Hugging Face cache
    or downloaded."""

    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("FACE_PARSER",)
    RETURN_NAMES = ("parser",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        files = parser_files()
        known = [name for name in _known("parsing") if get_spec(name).filename not in files]
        return {"required": {
            "parser_name": (files + known, {"default": files[0] if files else "parsenet"}),
            "device": (DEVICES, {"default": "auto"}),
        }}

    @comfy_errors
    def load(self, parser_name: str, device: str):
        files = parser_files()
        if parser_name in files:
            # a file the user put into ComfyUI's model folder is loaded as it is, like the GFPGAN files
            # the model loader lists (a registry name is checked against its published SHA-256)
            return (load_model(get_spec(parser_name).name, device=host.device(device), allow_unverified=True,
                               progress=False),)
        if parser_name in _known("parsing"):
            return (load_model(parser_name, device=host.device(device), progress=False),)
        raise UnknownModelError(
            f"parser_name {parser_name!r} is not a face parser; choose one of: "
            f"{', '.join(files + [n for n in _known('parsing') if n not in files])}")


def parser_files() -> list[str]:
    """Files in the pack's model folder named like a registry face parser (only names, never paths)."""
    names = {get_spec(name).filename: name for name in _known("parsing")}
    return [f for f in host.model_files(host.RESTORE_FOLDER) if f in names]
