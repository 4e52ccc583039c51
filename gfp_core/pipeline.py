"""FaceRestorer: detect → choose → align → restore (batched) → paste back, on whole photos.

Every stage is a function of its own in :mod:`gfp_core.face` and :mod:`gfp_core.restore`; this
class only holds the models and the options and runs the stages in order.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from .archs.sft import check_fidelity
from .background import BackgroundUpsampler
from .face.detection import MIN_EYE_DISTANCE, FaceDetector, check_score_threshold
from .face.types import Face
from .errors import InvalidImageError, InvalidOptionError
from .image import DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_PIXELS, Picture, megapixels, read_picture, to_picture
from .restore import restore_aligned

log = logging.getLogger(__name__)

#: peak extra memory of one 512×512 face in an fp32 forward pass (measured: bench/bench_forward.py)
FACE_FORWARD_MIB = 600


@dataclass
class RestoreResult:
    """What :meth:`FaceRestorer.restore` found and did.

    ``image`` is in the input's own layout (grey, RGBA, 16-bit stay so), ``upscale`` times larger.
    Per chosen face, in reading order: ``faces`` (boxes, landmarks, scores in input pixels),
    ``cropped_faces`` and ``restored_faces`` (aligned ``S×S×3`` uint8), ``affines`` (input → crop),
    ``masks`` (crop-space paste masks in [0, 1]).
    """

    image: np.ndarray
    faces: list[Face] = field(default_factory=list)
    cropped_faces: np.ndarray | None = None
    restored_faces: np.ndarray | None = None
    affines: np.ndarray | None = None
    masks: np.ndarray | None = None
    num_detected: int = 0
    num_restored: int = 0


class FaceRestorer:
    """Restores the faces in photos with a GFPGAN model.

    ``model``: a registry name (``"v1.4"``…) or a GFPGAN weights file. ``detector``:
    ``retinaface_resnet50`` / ``retinaface_mobile0.25`` / ``embedded`` (the embedded MobileNet is
    used, with a warning, when the chosen detector's weights cannot be had). ``upscale``: output
    size factor; the background is resized with Lanczos. ``fidelity`` scales GFPGAN's CS-SFT (1 =
    published model); ``visibility`` blends the pasted face with the original (0 = untouched).
    ``mask``: 'box' (the official feathered square), 'ellipse' (from landmarks) or 'parsing'
    (``parser``: parsenet or bisenet). ``select``/``indices``/``max_faces``: see
    :func:`gfp_core.face.select.select_faces`. ``background``: 'lanczos' or a Real-ESRGAN model
    (``realesrgan_x2plus``, ``realesr_general_x4v3``) run in tiles of ``background_tile`` pixels.
    ``score_threshold``: detection cut in (0, 1] (None: the detector's default). ``max_pixels``
    bounds the photos read from files; ``max_output_pixels`` the result (input pixels × upscale²),
    checked before any heavy work. ``memory_budget_mb`` bounds one forward pass (default: one face at a time on CPU, 4 GiB
    worth of faces on an accelerator). ``exact``: the official model's numerics bit for bit instead
    of the faster kernels (see :func:`gfp_core.weights.load_model`).

    Applications that keep models between calls (a web demo, a node graph) can pass loaded ones:
    ``model`` and ``parser`` as modules from :func:`gfp_core.weights.load_model`, ``detector`` as a
    :class:`~gfp_core.face.detection.FaceDetector`, ``background`` as a
    :class:`~gfp_core.background.BackgroundUpsampler`. The restorer never changes them.
    """

    def __init__(self, model: str | Path | nn.Module = "v1.4", *,
                 detector: str | FaceDetector = "retinaface_resnet50",
                 device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                 upscale: float = 1, fidelity: float = 1.0, visibility: float = 1.0, mask: str = "box",
                 parser: str | nn.Module = "parsenet", colour_match: bool = False, score_threshold: float | None = None,
                 detect_max_side: int = 1280, min_face_size: float = 0, min_eye_distance: float = MIN_EYE_DISTANCE,
                 select: str = "all", indices: Sequence[int] | None = None, max_faces: int | None = None,
                 background: str | BackgroundUpsampler = "lanczos", background_tile: int = 400,
                 memory_budget_mb: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
                 allow_unverified: bool | None = None, download: bool = True, exact: bool = False):
        from .weights import load_model

        from .face.masks import MASK_MODES

        if mask not in MASK_MODES:
            raise InvalidOptionError(f"unknown mask mode {mask!r}; use one of {', '.join(MASK_MODES)}")
        if not 0 <= visibility <= 1:
            raise InvalidOptionError(f"visibility must be between 0 and 1, got {visibility}")
        if not 1 <= upscale <= 8:
            raise InvalidOptionError(f"upscale must be between 1 and 8, got {upscale}")
        if score_threshold is not None:
            score_threshold = check_score_threshold(score_threshold)  # before any model is loaded
        for name, limit in (("max_pixels", max_pixels), ("max_output_pixels", max_output_pixels)):
            if not limit >= 1:
                raise InvalidOptionError(f"{name} must be a positive number of pixels, got {limit}")
        self.fidelity = check_fidelity(fidelity)
        self.visibility = float(visibility)
        self.upscale = float(upscale)
        self.mask_mode = mask
        self.colour_match = colour_match
        self.detect_options = dict(score_threshold=score_threshold, max_side=detect_max_side,
                                   min_size=min_face_size, min_eye_distance=min_eye_distance)
        self.select_options = dict(mode=select, indices=list(indices) if indices else None, max_faces=max_faces)
        self.max_pixels = max_pixels
        self.max_output_pixels = max_output_pixels

        if isinstance(model, nn.Module):
            self.model = model
        else:
            self.model = load_model(model, device=device, dtype=dtype, allow_unverified=allow_unverified,
                                    download=download, exact=exact)
        self.face_size: int = self.model.out_size
        param = next(self.model.parameters())
        if memory_budget_mb is None:
            # on CPUs a batch costs more per face than single faces (bench/bench_forward.py:
            # 1.84 s/face at batch 1, 2.36 s at batch 4); accelerators gain from batching
            self.batch_size = 1 if param.device.type == "cpu" else self._faces_per_budget(4096, param)
        else:
            self.batch_size = self._faces_per_budget(memory_budget_mb, param)
        self._load_options = dict(device=param.device, download=download, allow_unverified=allow_unverified)
        self._detector_name, self._detector = (detector, None) if isinstance(detector, str) else (None, detector)
        self._parser_name, self._parser = (parser, None) if isinstance(parser, str) else (None, parser)
        self.background_upsampler = None
        if isinstance(background, BackgroundUpsampler):
            self.background_upsampler = background
        elif background != "lanczos":
            from .background import load_background_upsampler

            self.background_upsampler = load_background_upsampler(
                background, device=param.device, download=download, allow_unverified=allow_unverified,
                tile=background_tile)

    @staticmethod
    def _faces_per_budget(budget_mb: int, param: torch.Tensor) -> int:
        return max(1, int(budget_mb // (FACE_FORWARD_MIB * param.element_size() / 4)))

    @property
    def detector(self):
        """Loaded on first use: restoring aligned crops needs none."""
        if self._detector is None:
            from .face.detection import load_detector

            self._detector = load_detector(self._detector_name, **self._load_options)
        return self._detector

    @property
    def parser(self):
        if self._parser is None and self.mask_mode == "parsing":
            from .weights import load_model

            self._parser = load_model(self._parser_name, **self._load_options)
        return self._parser

    # --- stages -------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        from .face.detection import detect_faces

        return detect_faces(self.detector, image, **self.detect_options)

    def choose(self, faces: Sequence[Face], image_shape: tuple[int, ...]) -> list[Face]:
        from .face.select import select_faces

        return select_faces(faces, image_shape[:2], **self.select_options)

    def align(self, image: np.ndarray, faces: Sequence[Face]) -> tuple[np.ndarray, np.ndarray]:
        from .face.align import align_faces

        return align_faces(image, list(faces), face_size=self.face_size)

    def restore_crops(self, crops: np.ndarray, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        return restore_aligned(self.model, crops, fidelity=self.fidelity, batch_size=self.batch_size,
                               on_batch=on_batch)

    def masks_for(self, restored: np.ndarray, affines: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Paste masks in crop space, one per face."""
        from .face.masks import face_masks

        return face_masks(self.mask_mode, faces, affines, restored, face_size=self.face_size,
                          upscale=self.upscale, parser=self.parser)

    def paste(self, background: np.ndarray, restored: np.ndarray, affines: np.ndarray,
              masks: np.ndarray) -> np.ndarray:
        from .face.align import inverse_alignment
        from .face.paste import paste_faces

        inverse = [inverse_alignment(a, upscale=self.upscale) for a in affines]
        return paste_faces(background, list(restored), inverse, list(masks), visibility=self.visibility,
                           upscale=self.upscale, inplace=True)

    # --- all of it ----------------------------------------------------------------------------

    def restore(self, image: np.ndarray | Picture | str | Path, aligned: bool = False,
                faces: Sequence[Face] | None = None,
                on_progress: Callable[[str, float], None] | None = None) -> RestoreResult:
        """Restore every chosen face of ``image`` (an array in any supported layout, or a file).

        ``aligned``: the image is already an aligned face crop (resized to the model's size if
        needed); it is restored whole and no detection happens. ``faces``: restore these faces
        (e.g. from an earlier :meth:`detect`) instead of detecting and choosing. A photo without a
        face comes back unchanged (upscaled if asked) with ``num_detected == 0``; not an error.
        ``on_progress(stage, fraction)`` hears of each stage ('detect', 'restore', 'paste') with the
        fraction of the work done; raising in it stops the work.
        """
        def report(stage: str, fraction: float) -> None:
            if on_progress is not None:
                on_progress(stage, fraction)

        if isinstance(image, (str, Path)):
            picture = read_picture(image, self.max_pixels)
        elif isinstance(image, Picture):
            picture = image
        else:
            picture = to_picture(image)
        if aligned:  # the result is one face crop: nothing to bound
            return self._restore_aligned_image(picture)
        self.check_output_size(picture.rgb.shape[:2])
        rgb8 = picture.rgb8

        if faces is None:
            report("detect", 0.0)
            found = self.detect(rgb8)
            chosen = self.choose(found, rgb8.shape)
        else:
            found = chosen = list(faces)
        background = self._background(picture)
        if not chosen:
            return RestoreResult(picture.rebuild(background), num_detected=len(found))

        crops, affines = self.align(rgb8, chosen)
        done = 0

        def restored_some(n: int) -> None:
            nonlocal done
            done += n
            report("restore", 0.1 + 0.8 * done / len(chosen))

        report("restore", 0.1)
        restored = self.restore_crops(crops, on_batch=restored_some)
        report("paste", 0.9)
        masks = self.masks_for(restored, affines, chosen)
        if self.colour_match:
            from .face.colour import match_colour

            restored = np.stack([match_colour(r, c, m) for r, c, m in zip(restored, crops, masks)])
        out = self.paste(background, restored, affines, masks)
        return RestoreResult(picture.rebuild(out), chosen, crops, restored, affines, masks, len(found), len(chosen))

    def check_output_size(self, input_size: tuple[int, int]) -> None:
        """Refuse, before any work, an input ``(height, width)`` whose result would be over
        ``max_output_pixels``."""
        from .background import output_size

        height, width = output_size(tuple(input_size), self.upscale)
        if height * width <= self.max_output_pixels:
            return
        fits = (self.max_output_pixels / (input_size[0] * input_size[1])) ** 0.5
        hint = f"use an upscale of at most {int(fits * 100) / 100:g}" if fits >= 1 else "use a smaller image"
        raise InvalidImageError(
            f"the result would be {width}x{height}, {megapixels(height * width)} megapixels, over the output limit "
            f"of {megapixels(self.max_output_pixels)}; {hint}, or raise the limit (--max-output-pixels, "
            f"max_output_pixels=) if you have the memory")

    def _background(self, picture: Picture) -> np.ndarray:
        """The colour image faces are pasted into: 8-bit stays uint8, 16-bit works in float32."""
        from .background import upscale_background

        base = picture.rgb if picture.rgb.dtype == np.uint8 else picture.as_float()
        if self.upscale == 1 and self.background_upsampler is None:
            return base.copy()
        return upscale_background(base, self.upscale, self.background_upsampler)

    def _restore_aligned_image(self, picture: Picture) -> RestoreResult:
        crop = picture.rgb8
        s = self.face_size
        if crop.shape[:2] != (s, s):
            crop = cv2.resize(crop, (s, s), interpolation=cv2.INTER_LINEAR if crop.shape[0] < s else cv2.INTER_AREA)
        restored = self.restore_crops(crop[None])
        return RestoreResult(picture.rebuild(restored[0]), [], crop[None], restored, None, None, 1, 1)
