"""Loader nodes: a GFPGAN model and a face detector."""
from __future__ import annotations

from gfp_core.face.detection import DETECTOR_NAMES, load_detector
from gfp_core.weights import get_spec, load_model
from gfp_core.weights.registry import MODELS

from . import host

DEVICES = ["auto", "cpu", "cuda", "mps"]


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
            "dtype": (["fp32", "bf16", "fp16"], {"default": "fp32"}),
        }}

    def load(self, model_name: str, device: str, dtype: str):
        path = host.model_file_path(host.RESTORE_FOLDER, model_name)
        return (load_model(path or model_name, device=host.device(device), dtype=dtype),)


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

    def load(self, detector: str, device: str):
        return (load_detector(detector, device=host.device(device)),)
