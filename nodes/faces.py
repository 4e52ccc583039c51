"""Face nodes: detect → crop → restore → paste (the engine's stages, one node each), and the
all-in-one restore (the whole engine). They convert ComfyUI tensors (IMAGE ``[B,H,W,C]``, MASK
``[B,H,W]``, floats in [0, 1]) and call gfp_core. Frames stay float: only detection and the model
see 8-bit copies."""
from __future__ import annotations

import logging

import numpy as np
import torch

from gfp_core.engine import Engine, FaceSet, crop_faces, mask_faces, paste_frames, restore_crops, to_frames
from gfp_core.errors import WeightsNotFoundError
from gfp_core.face.detection import load_detector
from gfp_core.face.masks import MASK_MODES
from gfp_core.face.preview import draw_faces
from gfp_core.face.select import SELECTIONS, parse_indices
from gfp_core.image import batch_to_uint8, uint8_to_batch
from gfp_core import options

from . import host
from .messages import comfy_errors
from .upscale import ComfyBackground

log = logging.getLogger("gfpgan.nodes")

SELECT_WIDGETS = {
    "select": (list(SELECTIONS), {"default": "all", "tooltip": "faces are numbered left to right; with smoothing, "
                                                               "a video's faces by person, in order of appearance"}),
    "indices": ("STRING", {"default": "0", "tooltip": "for select = indices: e.g. 0,2 (0 = leftmost face)"}),
    "max_faces": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": "0 = no limit"}),
}
#: optional inputs of the nodes that find faces, for video frames. The widget suggests 0.5 for a new
#: node; a saved prompt without them runs as before (each frame on its own): hence the functions'
#: defaults of 0, the engine's own default
CLIP_OPTIONS = {
    "smoothing": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                            "tooltip": "for video frames: faces are followed from frame to frame, so 'face 0' is "
                                       "the same person in every frame, and their alignment is steadied; "
                                       "0 = every frame on its own (use 0 for a batch of separate pictures)"}),
    "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 1000.0, "step": 0.01,
                      "tooltip": "the frames' rate, for smoothing: wire it from Get Video Components' fps"}),
}


#: the paste-back mask choices ('parsing' uses the parser input, else ParseNet by its registry name)
MASK_CHOICES = list(MASK_MODES)
#: the background choices besides a wired UPSCALE_MODEL: Lanczos, or a registry network
BACKGROUND_CHOICES = list(options.BACKGROUNDS.names)
#: optional inputs of the nodes that paste (new inputs are optional so saved workflows load unchanged)
PASTE_OPTIONS = {
    "parser": ("FACE_PARSER", {"tooltip": "for mask = parsing (Load Face Parser); default: ParseNet"}),
    "upscale_model": ("UPSCALE_MODEL", {"tooltip": "the background network (core's Load Upscale Model), run in "
                                                   "tiles; it runs even at upscale 1"}),
    "background": (BACKGROUND_CHOICES, {"default": "lanczos",
                                        "tooltip": "without an upscale_model: Lanczos, or a Real-ESRGAN network "
                                                   "from models/facerestore_models or the Hub"}),
    "colour_match": ("BOOLEAN", {"default": False,
                                 "tooltip": "match the restored faces' colours to the original faces"}),
}


def _frames(image: torch.Tensor):
    """An IMAGE batch as the engine's frames (float32, no rounding)."""
    return to_frames(image.detach().cpu().float().numpy())[0]


def _tell(notes: list[str], outputs: tuple) -> dict | tuple:
    """The outputs, with the engine's notes logged and shown under the node."""
    for note in notes:
        log.warning("GFPGAN: %s", note)
    return {"ui": {"text": list(notes)}, "result": outputs} if notes else outputs


def _detect(image: torch.Tensor, detector, threshold: float, min_size: int, select: str, indices: str,
            max_faces: int, smoothing: float, fps: float):
    """The engine's detect and choose stages (by track for a clip) on an IMAGE batch."""
    frames = _frames(image)
    engine = Engine(None, detector=detector, score_threshold=threshold or None, min_face_size=min_size,
                    select=select, indices=parse_indices(indices) if select == "indices" else None,
                    max_faces=max_faces or None, smoothing=smoothing, fps=fps)
    bar = host.progress(len(frames))
    found = engine.detect([f.rgb8 for f in frames], on_frame=lambda i: bar(1 if i else 0))
    bar(1)
    return frames, engine.choose_found(found, [f.size for f in frames])


def _masks_tensor(masks: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(masks).astype(np.float32))


def _parser(mask: str, parser):
    """The parser for ``mask`` (None unless 'parsing'): the wired one, else a function that loads
    ParseNet by its registry name when the engine first needs it."""
    if mask != "parsing" or parser is not None:
        return parser

    def default():
        from gfp_core.weights import load_model

        try:
            return load_model("parsenet", device=host.device("auto"), progress=False)
        except WeightsNotFoundError as exc:
            raise WeightsNotFoundError(f"mask = parsing needs a face parser: wire a Load Face Parser node, or "
                                       f"{str(exc)[0].lower()}{str(exc)[1:]}") from exc
    return default


def _background(upscale_model, background: str, notes: list[str]) -> ComfyBackground | None:
    """The background network: the wired UPSCALE_MODEL, else a registry one by name, else None (Lanczos)."""
    if upscale_model is not None:
        if background != "lanczos":
            notes.append(f"the wired upscale_model was used for the background, not {background}")
        return ComfyBackground.from_upscale_model(upscale_model)
    if background == "lanczos":
        return None
    return ComfyBackground.from_registry(options.BACKGROUNDS.check(background))


_default_detectors: dict[str, object] = {}


def default_detector(notes: list[str]):
    """What the detector loader gives by default: RetinaFace ResNet-50 on ComfyUI's device, or, when
    its weights cannot be had, the embedded detector (the reason goes into ``notes``)."""
    import warnings

    key = str(host.device("auto"))
    if key in _default_detectors:
        return _default_detectors[key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        detector = load_detector("retinaface_resnet50", device=host.device("auto"))
    fell_back = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if fell_back:
        notes.extend(fell_back)
    else:  # a fallback is not kept: weights put into the folder later are used on the next run
        _default_detectors[key] = detector
    return detector


class GFPGANDetectFaces:
    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("FACES", "MASK", "IMAGE")
    RETURN_NAMES = ("faces", "mask", "preview")
    FUNCTION = "detect"
    DESCRIPTION = ("Find faces in every frame and choose which to restore; the preview shows their numbers "
                   "(with smoothing, a video's faces keep theirs from frame to frame).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "detector": ("FACE_DETECTOR",),
            "threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                    "tooltip": "0 = the detector's default (0.97 ResNet-50, 0.9 MobileNet)"}),
            **SELECT_WIDGETS,
            "min_size": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip": "ignore smaller faces (pixels)"}),
        }, "optional": dict(CLIP_OPTIONS)}

    @comfy_errors
    def detect(self, image, detector, threshold, select, indices, max_faces, min_size, smoothing=0.0, fps=30.0):
        frames, faces = _detect(image, detector, threshold, min_size, select, indices, max_faces, smoothing, fps)
        s = faces.face_size
        ones = np.ones((faces.total, s, s, 3), np.float32)
        masks = mask_faces(faces, ones, mode="box")
        _, coverage = paste_frames([np.zeros((*f.size, 3), np.float32) for f in frames], faces, ones, masks,
                                   coverage=True)
        # every face found, with its number (what 'indices' choose): a clip's track ids, else reading order
        numbers = faces.found_numbers or [None] * len(frames)
        preview = [draw_faces(f.rgb8, found, ns) for f, found, ns in zip(frames, faces.found, numbers)]
        return _tell(faces.notes, (faces, _masks_tensor(coverage), uint8_to_batch(preview)))


class GFPGANCropFaces:
    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("crops",)
    FUNCTION = "crop"
    DESCRIPTION = "Aligned 512×512 crops of the faces, frame after frame, as one IMAGE batch."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "faces": ("FACES",)}}

    @comfy_errors
    def crop(self, image, faces: FaceSet):
        crops = crop_faces([f.rgb8 for f in _frames(image)], faces)
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

    @comfy_errors
    def restore(self, model, crops, fidelity, batch_size):
        import cv2

        faces = batch_to_uint8(crops)
        size = model.out_size
        if faces.shape[1:3] != (size, size):
            faces = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in faces])
        restored = restore_crops(model, faces, fidelity=fidelity, batch_size=batch_size,
                                 on_batch=host.progress(len(faces)), should_stop=host.check_interrupt)
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
            "mask": (MASK_CHOICES, {"default": "box"}),
            "feather": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                  "tooltip": "extra softening of the mask edge"}),
            "visibility": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                     "tooltip": "0 = original face, 1 = pasted face"}),
            "upscale": ("FLOAT", {"default": 1.0, "min": 1.0, "max": 4.0, "step": 0.5}),
        }, "optional": dict(PASTE_OPTIONS)}

    @comfy_errors
    def paste(self, image, faces: FaceSet, crops, mask, feather, visibility, upscale, parser=None,
              upscale_model=None, background="lanczos", colour_match=False):
        """The engine's stages after restoration, on crops that come from elsewhere."""
        notes: list[str] = []
        engine = Engine(None, parser=_parser(mask, parser), background=_background(upscale_model, background, notes),
                        mask=mask, feather=feather, visibility=visibility, upscale=upscale,
                        colour_match=colour_match, coverage=True)
        result = engine.paste_crops(image.detach().cpu().float().numpy(), faces, crops.detach().cpu().float().numpy(),
                                    should_stop=host.check_interrupt)
        images = torch.from_numpy(np.ascontiguousarray(result.images, np.float32))
        return _tell(notes, (images, _masks_tensor(result.coverage)))


class GFPGANRestoreFaces:
    CATEGORY = "GFPGAN"
    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE")
    RETURN_NAMES = ("image", "mask", "restored_crops")
    FUNCTION = "run"
    DESCRIPTION = ("Detect, restore and paste back every chosen face in one node; with smoothing, a batch of "
                   "video frames is restored as a clip.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE",),
                "model": ("GFPGAN_MODEL",),
                "fidelity": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05}),
                "visibility": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05}),
                "mask": (MASK_CHOICES, {"default": "box"}),
                **SELECT_WIDGETS,
                "upscale": ("FLOAT", {"default": 1.0, "min": 1.0, "max": 4.0, "step": 0.5}),
            },
            "optional": {
                "detector": ("FACE_DETECTOR", {"tooltip": "default: RetinaFace ResNet-50, or the embedded "
                                                          "detector when its weights cannot be had"}),
                **PASTE_OPTIONS,
                "threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                        "tooltip": "0 = the detector's default (0.97 ResNet-50, 0.9 MobileNet)"}),
                "min_size": ("INT", {"default": 0, "min": 0, "max": 4096,
                                     "tooltip": "ignore smaller faces (pixels)"}),
                "feather": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                      "tooltip": "extra softening of the mask edge"}),
                **CLIP_OPTIONS,  # last: a saved workflow's widget values are matched by position
            },
        }

    @comfy_errors
    def run(self, image, model, fidelity, visibility, mask, select, indices, max_faces, upscale, detector=None,
            parser=None, upscale_model=None, background="lanczos", colour_match=False, threshold=0.0, min_size=0,
            feather=0.0, smoothing=0.0, fps=30.0):
        notes: list[str] = []
        engine = Engine(model, detector=detector or (lambda: default_detector(notes)), parser=_parser(mask, parser),
                        background=_background(upscale_model, background, notes), fidelity=fidelity,
                        visibility=visibility, mask=mask, feather=feather, colour_match=colour_match,
                        score_threshold=threshold or None, min_face_size=min_size, select=select,
                        indices=parse_indices(indices) if select == "indices" else None,
                        max_faces=max_faces or None, upscale=upscale, smoothing=smoothing, fps=fps, coverage=True)
        bar, shown = None, 0

        def on_progress(stage: str, fraction: float, faces: int) -> None:
            nonlocal bar, shown
            if stage != "restore":
                return
            if bar is None:
                bar = host.progress(faces)
            done = round((fraction - 0.1) / 0.8 * faces)
            if done > shown:
                bar(done - shown)
                shown = done

        result = engine.run(image.detach().cpu().float().numpy(), on_progress=on_progress,
                            should_stop=host.check_interrupt)
        restored = result.restored if len(result.restored) else \
            np.zeros((1, model.out_size, model.out_size, 3), np.uint8)
        images = torch.from_numpy(np.ascontiguousarray(result.images, np.float32))
        return _tell(notes + result.notes, (images, _masks_tensor(result.coverage), uint8_to_batch(restored)))
