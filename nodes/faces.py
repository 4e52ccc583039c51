"""Face nodes: detect → crop → restore → paste, and the all-in-one restore. They convert ComfyUI
tensors (IMAGE ``[B,H,W,C]``, MASK ``[B,H,W]``, floats in [0, 1]) and call gfp_core stages."""
from __future__ import annotations

import numpy as np
import torch

from gfp_core.face.batch import FaceSet, crop_batch, detect_batch, paste_batch
from gfp_core.face.detection import load_detector
from gfp_core.face.masks import MASK_MODES
from gfp_core.face.preview import draw_faces
from gfp_core.face.select import SELECTIONS, parse_indices
from gfp_core.image import batch_to_uint8, uint8_to_batch
from gfp_core.restore import restore_aligned

from . import host

SELECT_WIDGETS = {
    "select": (list(SELECTIONS), {"default": "all", "tooltip": "faces are numbered left to right"}),
    "indices": ("STRING", {"default": "0", "tooltip": "for select = indices: e.g. 0,2 (0 = leftmost face)"}),
    "max_faces": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": "0 = no limit"}),
}


def _detect(image: torch.Tensor, detector, threshold: float, min_size: int, select: str, indices: str,
            max_faces: int, face_size: int = 512) -> tuple[np.ndarray, FaceSet]:
    frames = batch_to_uint8(image)
    faces = detect_batch(detector, list(frames), face_size=face_size, score_threshold=threshold or None,
                         min_size=min_size, select=select,
                         indices=parse_indices(indices) if select == "indices" else None,
                         max_faces=max_faces or None)
    return frames, faces


def _masks_tensor(masks: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(masks).astype(np.float32))


class GFPGANDetectFaces:
    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("FACES", "MASK", "IMAGE")
    RETURN_NAMES = ("faces", "mask", "preview")
    FUNCTION = "detect"
    DESCRIPTION = "Find faces in every frame and choose which to restore; the preview shows their indices."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "detector": ("FACE_DETECTOR",),
            "threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                    "tooltip": "0 = the detector's default (0.97 ResNet-50, 0.9 MobileNet)"}),
            **SELECT_WIDGETS,
            "min_size": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip": "ignore smaller faces (pixels)"}),
        }}

    def detect(self, image, detector, threshold, select, indices, max_faces, min_size):
        frames, faces = _detect(image, detector, threshold, min_size, select, indices, max_faces)
        ones = np.full((faces.total, faces.face_size, faces.face_size, 3), 255, np.uint8)
        _, coverage = paste_batch(list(np.zeros_like(frames)), faces, ones, mask="box")
        preview = [draw_faces(frame, fs) for frame, fs in zip(frames, faces.faces)]
        return (faces, _masks_tensor(coverage), uint8_to_batch(preview))


class GFPGANCropFaces:
    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("crops",)
    FUNCTION = "crop"
    DESCRIPTION = "Aligned 512×512 crops of the faces, frame after frame, as one IMAGE batch."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "faces": ("FACES",)}}

    def crop(self, image, faces: FaceSet):
        crops = crop_batch(list(batch_to_uint8(image)), faces)
        if len(crops) == 0:  # ComfyUI has no empty IMAGE: one black crop stands for "no face"
            crops = np.zeros((1, faces.face_size, faces.face_size, 3), np.uint8)
        return (uint8_to_batch(crops),)


class GFPGANRestoreCrops:
    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("restored_crops",)
    FUNCTION = "restore"
    DESCRIPTION = "Restore aligned face crops. Fidelity 1 = the published model, 0 = the generative prior only."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("GFPGAN_MODEL",),
            "crops": ("IMAGE",),
            "fidelity": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64,
                                   "tooltip": "faces per forward pass (1 is fastest on CPU)"}),
        }}

    def restore(self, model, crops, fidelity, batch_size):
        import cv2

        faces = batch_to_uint8(crops)
        size = model.out_size
        if faces.shape[1:3] != (size, size):
            faces = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in faces])
        restored = restore_aligned(model, faces, fidelity=fidelity, batch_size=batch_size,
                                   on_batch=host.progress(len(faces)))
        return (uint8_to_batch(restored),)


class GFPGANPasteFaces:
    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    FUNCTION = "paste"
    DESCRIPTION = "Paste (restored or otherwise edited) crops back into their frames."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "faces": ("FACES",),
            "crops": ("IMAGE",),
            "mask": ([m for m in MASK_MODES if m != "parsing"], {"default": "box"}),
            "feather": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                  "tooltip": "extra softening of the mask edge"}),
            "visibility": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                     "tooltip": "0 = original face, 1 = pasted face"}),
            "upscale": ("FLOAT", {"default": 1.0, "min": 1.0, "max": 4.0, "step": 0.5}),
        }}

    def paste(self, image, faces: FaceSet, crops, mask, feather, visibility, upscale):
        frames = list(batch_to_uint8(image))
        crop_array = batch_to_uint8(crops)
        if faces.total == 0 and len(crop_array) == 1:
            crop_array = crop_array[:0]  # the stand-in crop of a batch without faces
        images, coverage = paste_batch(frames, faces, crop_array, mask=mask, feather=feather,
                                       visibility=visibility, upscale=upscale)
        return (uint8_to_batch(images), _masks_tensor(coverage))


class GFPGANRestoreFaces:
    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE")
    RETURN_NAMES = ("image", "mask", "restored_crops")
    FUNCTION = "run"
    DESCRIPTION = "Detect, restore and paste back every chosen face in one node."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE",),
                "model": ("GFPGAN_MODEL",),
                "fidelity": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05}),
                "visibility": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05}),
                "mask": ([m for m in MASK_MODES if m != "parsing"], {"default": "box"}),
                **SELECT_WIDGETS,
                "upscale": ("FLOAT", {"default": 1.0, "min": 1.0, "max": 4.0, "step": 0.5}),
            },
            "optional": {"detector": ("FACE_DETECTOR", {"tooltip": "default: the embedded detector"})},
        }

    def run(self, image, model, fidelity, visibility, mask, select, indices, max_faces, upscale, detector=None):
        detector = detector or load_detector("embedded")
        frames, faces = _detect(image, detector, 0.0, 0, select, indices, max_faces, face_size=model.out_size)
        crops = crop_batch(list(frames), faces)
        restored = restore_aligned(model, crops, fidelity=fidelity, batch_size=1,
                                   on_batch=host.progress(len(crops)))
        images, coverage = paste_batch(list(frames), faces, restored, mask=mask, visibility=visibility,
                                       upscale=upscale)
        shown = restored if len(restored) else np.zeros((1, model.out_size, model.out_size, 3), np.uint8)
        return (uint8_to_batch(images), _masks_tensor(coverage), uint8_to_batch(shown))
