"""FaceRestorer: restore the faces of whole photos with a GFPGAN model.

A thin front over :class:`gfp_core.engine.Engine`, the one orchestrator: it turns options and
model names into loaded models and :class:`~gfp_core.engine.EngineOptions`, runs the engine on one
picture and gives back a :class:`RestoreResult`.
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

from .background import BackgroundUpsampler
from .device import resolve_device, resolve_dtype
from .engine import Engine, EngineOptions
from .face.detection import MIN_EYE_DISTANCE, FaceDetector
from .face.steady import DEFAULT_STRENGTH as DEFAULT_STEADY
from .face.track import DEFAULT_STRENGTH
from .face.types import Face
from .options import BACKGROUND_TILE, DETECTORS, MAX_PIXELS, PARSERS, THRESHOLD, UPSCALE, VISIBILITY
from .weights import ModelInfo
from .image import DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_PIXELS, Picture, read_picture, to_picture

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    """What :meth:`FaceRestorer.restore` found and did.

    ``image`` is in the input's own layout (grey, RGBA, 16-bit stay so), ``upscale`` times larger.
    Per chosen face, in reading order: ``faces`` (boxes, landmarks, scores in input pixels),
    ``cropped_faces`` and ``restored_faces`` (aligned ``S×S×3`` uint8), ``affines`` (input → crop),
    ``masks`` (crop-space paste masks in [0, 1]); ``numbers``: each chosen face's number among all
    faces found (reading order, as the preview draws them); ``notes``: sentences for the user.
    """

    image: np.ndarray
    faces: list[Face] = field(default_factory=list)
    cropped_faces: np.ndarray | None = None
    restored_faces: np.ndarray | None = None
    affines: np.ndarray | None = None
    masks: np.ndarray | None = None
    num_detected: int = 0
    num_restored: int = 0
    numbers: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class FaceRestorer:
    """Restores the faces in photos with a GFPGAN model.

    ``model``: a registry name (``"v1.4"``…) or a GFPGAN weights file. ``detector``:
    ``retinaface_resnet50`` / ``retinaface_mobile0.25`` / ``embedded`` (the embedded MobileNet is
    used, with a warning, when the chosen detector's weights cannot be had). ``upscale``: output
    size factor; the background is resized with Lanczos. ``fidelity`` scales GFPGAN's CS-SFT (1 =
    published model); ``visibility`` blends the pasted face with the original (0 = untouched).
    ``mask``: 'box' (the official feathered square), 'ellipse' (from landmarks) or 'parsing'
    (``parser``: parsenet or bisenet). ``select``/``indices``/``max_faces``: see
    :func:`gfp_core.face.select.select_faces`. ``smoothing``: for the frames of a video
    (:func:`gfp_core.video.restore_video` with :attr:`engine`), how strongly the faces' alignment is
    smoothed in time (:mod:`gfp_core.face.track`; 0 = every frame on its own, as the official code),
    and ``steady``: how strongly each restored face is blended with the frame before's while it
    stands still (:mod:`gfp_core.face.steady`; 0 = off).
    ``background``: 'lanczos' or a Real-ESRGAN model
    (``realesrgan_x2plus``, ``realesr_general_x4v3``) run in tiles of ``background_tile`` pixels.
    ``score_threshold``: detection cut in (0, 1] (None: the detector's default). ``max_pixels``
    bounds the photos read from files; ``max_output_pixels`` the result (input pixels × upscale²),
    checked before any heavy work. ``memory_budget_mb`` bounds one forward pass (default: one face at a time on CPU, 4 GiB
    worth of faces on an accelerator). ``exact``: the official model's numerics bit for bit instead
    of the faster kernels (see :func:`gfp_core.weights.load_model`). ``backend``: what runs GFPGAN's
    forward pass, 'auto' (default), 'torch' or 'openvino' (:mod:`gfp_core.backends`).

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
                 smoothing: float = DEFAULT_STRENGTH, steady: float = DEFAULT_STEADY, background: str | BackgroundUpsampler = "lanczos",
                 background_tile: int = 400,
                 memory_budget_mb: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
                 allow_unverified: bool | None = None, download: bool = True, exact: bool = False,
                 backend: str | None = None):
        from .weights import load_model_with_info

        # every option is checked here, before any model is loaded (gfp_core.options: one policy)
        if score_threshold is not None:
            score_threshold = THRESHOLD.check(score_threshold)
        MAX_PIXELS.check(max_pixels)
        BACKGROUND_TILE.check(background_tile)
        if isinstance(detector, str):
            DETECTORS.check(detector.strip().lower())
        if isinstance(parser, str):
            PARSERS.check(parser)
        if isinstance(background, str) and background != "lanczos":
            from . import options
            from .weights.registry import find_spec

            spec = find_spec(background)
            if spec is None or spec.kind != "background":
                options.BACKGROUNDS.check(background)
        if not isinstance(model, nn.Module):
            resolve_dtype(dtype, resolve_device(device))
        self.options = EngineOptions(
            upscale=UPSCALE.check(upscale), fidelity=fidelity, visibility=VISIBILITY.check(visibility), mask=mask,
            colour_match=colour_match, score_threshold=score_threshold, detect_max_side=detect_max_side,
            min_face_size=min_face_size, min_eye_distance=min_eye_distance, select=select,
            indices=tuple(indices) if indices else None, max_faces=max_faces, smoothing=smoothing, steady=steady,
            memory_budget_mb=memory_budget_mb, max_output_pixels=max_output_pixels)
        self.fidelity = self.options.fidelity
        self.visibility = self.options.visibility
        self.upscale = self.options.upscale
        self.mask_mode = mask
        self.colour_match = colour_match
        self.max_pixels = max_pixels
        self.max_output_pixels = max_output_pixels

        #: where the model's weights came from (None for a module passed in)
        self.model_info: ModelInfo | None = None
        if isinstance(model, nn.Module):
            self.model = model
        else:
            self.model, self.model_info = load_model_with_info(model, device=device, dtype=dtype, download=download,
                                                               allow_unverified=allow_unverified, exact=exact,
                                                               backend=backend)
        self.face_size: int = self.model.out_size
        param = next(self.model.parameters())
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
        # models are loaded when first needed: restoring aligned crops needs no detector
        self.engine = Engine(self.model, detector=lambda: self.detector, parser=lambda: self.parser,
                             background=self.background_upsampler, options=self.options)
        self.batch_size = self.engine.batch_size

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

    # --- single-picture views of the engine's stages --------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face of ``image``, in reading order (list position = the face's number)."""
        return self.engine.detect([image])[0]

    def choose(self, faces: Sequence[Face], image_shape: tuple[int, ...]) -> list[Face]:
        return self.engine.choose([faces], [tuple(image_shape[:2])]).faces[0]

    def restore_crops(self, crops: np.ndarray, on_batch: Callable[[int], None] | None = None,
                      should_stop: Callable[[], None] | None = None) -> np.ndarray:
        return self.engine.restore_crops(crops, on_batch=on_batch, should_stop=should_stop)

    # --- all of it ----------------------------------------------------------------------------

    def restore(self, image: np.ndarray | Picture | str | Path, aligned: bool = False,
                faces: Sequence[Face] | None = None,
                on_progress: Callable[[str, float], None] | None = None,
                should_stop: Callable[[], None] | None = None) -> RestoreResult:
        """Restore every chosen face of ``image`` (an array in any supported layout, or a file).

        ``aligned``: the image is already an aligned face crop (resized to the model's size if
        needed); it is restored whole and no detection happens. ``faces``: restore these faces
        (e.g. from an earlier :meth:`detect`) instead of detecting and choosing. A photo without a
        face comes back unchanged (upscaled if asked) with ``num_detected == 0``; not an error.
        ``on_progress(stage, fraction)`` hears of each stage ('detect', 'restore', 'paste') with the
        fraction of the work done; raising in it stops the work. ``should_stop()`` raises to cancel,
        also in the middle of a face's forward pass.
        """
        if isinstance(image, (str, Path)):
            picture = read_picture(image, self.max_pixels)
        elif isinstance(image, Picture):
            picture = image
        elif aligned:
            picture = to_picture(image)
        else:
            picture = image  # arrays go to the engine as they are: float stays float
        if aligned:  # the result is one face crop: nothing to bound
            return self._restore_aligned_image(picture, should_stop)
        result = self.engine.run(picture, faces=faces, should_stop=should_stop,
                                 on_progress=None if on_progress is None else lambda s, f, _n: on_progress(s, f))
        chosen = bool(result.faces)
        return RestoreResult(result.image, result.faces, result.crops if chosen else None,
                             result.restored if chosen else None, result.affines if chosen else None,
                             result.masks if chosen else None, result.num_found[0], result.num_restored[0],
                             result.numbers.tolist(), result.notes)

    def check_output_size(self, input_size: tuple[int, int]) -> None:
        """Refuse, before any work, an input ``(height, width)`` whose result would be over
        ``max_output_pixels``."""
        self.engine.check_output_size(input_size)

    def _restore_aligned_image(self, picture: Picture, should_stop: Callable[[], None] | None = None
                               ) -> RestoreResult:
        crop = picture.rgb8
        s = self.face_size
        if crop.shape[:2] != (s, s):
            crop = cv2.resize(crop, (s, s), interpolation=cv2.INTER_LINEAR if crop.shape[0] < s else cv2.INTER_AREA)
        restored = self.restore_crops(crop[None], should_stop=should_stop)
        return RestoreResult(picture.rebuild(restored[0]), [], crop[None], restored, None, None, 1, 1, [0])
