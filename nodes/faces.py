"""What the face nodes do: detect → crop → restore → paste (the engine's stages, one node each), and
the all-in-one restore (the whole engine). They convert ComfyUI tensors (IMAGE ``[B,H,W,C]``, MASK
``[B,H,W]``, floats in [0, 1]) and call gfp_core, with the networks on the device ComfyUI's model
management picked (:mod:`nodes.memory`). Frames stay float: only detection and the model see 8-bit
copies. Each function returns the node's outputs and the notes to show under it."""
from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

from gfp_core import options
from gfp_core.engine import Engine, FaceSet, crop_faces, mask_faces, paste_frames, restore_crops, to_frames
from gfp_core.errors import WeightsNotFoundError
from gfp_core.face.detection import load_detector
from gfp_core.face.preview import draw_faces
from gfp_core.face.select import parse_indices
from gfp_core.image import batch_to_uint8, uint8_to_batch

from . import host, memory
from .loaders import managed_detector
from .memory import Managed
from .messages import comfy_errors
from .upscale import ComfyBackground

log = logging.getLogger("gfpgan.nodes")

Outputs = tuple[tuple, list[str]]


def _frames(image: torch.Tensor):
    """An IMAGE batch as the engine's frames (float32, no rounding)."""
    return to_frames(image.detach().cpu().float().numpy())[0]


def _masks_tensor(masks: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(masks).astype(np.float32))


def _largest(image: torch.Tensor) -> tuple[int, int]:
    return int(image.shape[1]), int(image.shape[2])


def _log(notes: list[str]) -> list[str]:
    for note in notes:
        log.warning("GFPGAN: %s", note)
    return notes


# ------------------------------------------------------------------------------- models the nodes use
_default_detectors: dict[str, Managed] = {}


def default_detector(notes: list[str]) -> Managed:
    """What the detector loader gives by default: RetinaFace ResNet-50 on ComfyUI's device, or, when
    its weights cannot be had, the embedded detector (the reason goes into ``notes``). Kept between
    runs only while ComfyUI's model management keeps it loaded."""
    target = host.device("auto")
    key = str(target)
    if key in _default_detectors:
        return _default_detectors[key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        found = load_detector("retinaface_resnet50", device=target)
    fell_back = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    detector = managed_detector(found, target, on_unload=lambda: _default_detectors.pop(key, None))
    if fell_back:
        notes.extend(fell_back)
    else:  # a fallback is not kept: weights put into the folder later are used on the next run
        _default_detectors[key] = detector
    return detector


def _parser(mask: str, parser: Managed | None, temporary: list[Managed]):
    """The parser for ``mask`` (None unless 'parsing'): the wired one, else a function that loads
    ParseNet by its registry name when the engine first needs it (managed for this run only)."""
    if mask != "parsing" or parser is not None:
        return memory.value(parser)

    def default():
        from gfp_core.weights import load_model

        try:
            module = load_model("parsenet", device=host.device("auto"), progress=False)
        except WeightsNotFoundError as exc:
            raise WeightsNotFoundError(f"mask = parsing needs a face parser: wire a Load Face Parser node, or "
                                       f"{str(exc)[0].lower()}{str(exc)[1:]}") from exc
        managed = Managed(module, module, host.device("auto"))
        temporary.append(managed)
        memory.load([managed], memory.PARSE_BYTES)
        return module
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


class _ManagedEngine(Engine):
    """The engine, restoring in batches that are halved when the device runs out of memory."""

    def restore_crops(self, crops, on_batch=None, should_stop=None):
        def run(part: np.ndarray, size: int) -> np.ndarray:
            return restore_crops(self.model, part, fidelity=self.options.fidelity, batch_size=size,
                                 on_batch=on_batch, should_stop=should_stop)
        return memory.in_halves(run, crops, self.batch_size)


def _run(work, items: list, required: float, temporary: list[Managed]):
    """``work()`` with ``items`` on ComfyUI's device; this run's own models unloaded after it."""
    try:
        with memory.on_device(items, required):
            return work()
    finally:
        for item in temporary:
            memory.unload(item)


# ---------------------------------------------------------------------------------------------- nodes
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


@comfy_errors
def detect(image, detector, threshold, select, indices, max_faces, min_size, smoothing=0.0, fps=30.0) -> Outputs:
    """Detect Faces: (faces, coverage mask, numbered preview)."""
    frames, faces = _run(lambda: _detect(image, memory.value(detector), threshold, min_size, select, indices,
                                         max_faces, smoothing, fps),
                         [detector], memory.detect_memory(_largest(image)), [])
    s = faces.face_size
    ones = np.ones((faces.total, s, s, 3), np.float32)
    masks = mask_faces(faces, ones, mode="box")
    _, coverage = paste_frames([np.zeros((*f.size, 3), np.float32) for f in frames], faces, ones, masks,
                               coverage=True)
    # every face found, with its number (what 'indices' choose): a clip's track ids, else reading order
    numbers = faces.found_numbers or [None] * len(frames)
    preview = [draw_faces(f.rgb8, found, ns) for f, found, ns in zip(frames, faces.found, numbers)]
    return (faces, _masks_tensor(coverage), uint8_to_batch(preview)), _log(list(faces.notes))


@comfy_errors
def crop(image, faces: FaceSet) -> Outputs:
    """Crop Faces: the aligned crops as one IMAGE batch."""
    crops = crop_faces([f.rgb8 for f in _frames(image)], faces)
    if len(crops) == 0:  # ComfyUI has no empty IMAGE: one black crop stands for "no face"
        crops = np.zeros((1, faces.face_size, faces.face_size, 3), np.uint8)
    return (uint8_to_batch(crops),), []


@comfy_errors
def restore(model, crops, fidelity, batch_size) -> Outputs:
    """Restore Faces (crops): the model on aligned crops, batches halved on out-of-memory."""
    import cv2

    net = memory.value(model)
    faces = batch_to_uint8(crops)
    size = net.out_size
    if faces.shape[1:3] != (size, size):
        faces = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in faces])
    bar = host.progress(len(faces))

    def run(part: np.ndarray, n: int) -> np.ndarray:
        return restore_crops(net, part, fidelity=fidelity, batch_size=n, on_batch=bar,
                             should_stop=host.check_interrupt)
    restored = _run(lambda: memory.in_halves(run, faces, batch_size), [model],
                    memory.restore_memory(net, batch_size), [])
    return (uint8_to_batch(restored),), []


@comfy_errors
def paste(image, faces: FaceSet, crops, mask, feather, visibility, upscale, parser=None, upscale_model=None,
          background="lanczos", colour_match=False, steady=0.0) -> Outputs:
    """Paste Faces: the engine's stages after restoration, on crops that come from elsewhere."""
    notes: list[str] = []
    temporary: list[Managed] = []
    backdrop = _background(upscale_model, background, notes)
    if backdrop is not None:
        temporary.append(backdrop.managed)
    engine = Engine(None, parser=_parser(mask, parser, temporary), background=backdrop, mask=mask, feather=feather,
                    visibility=visibility, upscale=upscale, colour_match=colour_match, steady=steady, coverage=True)
    result = _run(lambda: engine.paste_crops(image.detach().cpu().float().numpy(), faces,
                                             crops.detach().cpu().float().numpy(), should_stop=host.check_interrupt),
                  [parser] if mask == "parsing" else [], memory.PARSE_BYTES, temporary)
    images = torch.from_numpy(np.ascontiguousarray(result.images, np.float32))
    return (images, _masks_tensor(result.coverage)), _log(notes)


@comfy_errors
def restore_faces(image, model, fidelity, visibility, mask, select, indices, max_faces, upscale, detector=None,
                  parser=None, upscale_model=None, background="lanczos", colour_match=False, threshold=0.0,
                  min_size=0, feather=0.0, smoothing=0.0, fps=30.0, steady=0.0) -> Outputs:
    """GFPGAN Restore Faces: the whole engine on an IMAGE batch."""
    notes: list[str] = []
    temporary: list[Managed] = []
    net = memory.value(model)
    backdrop = _background(upscale_model, background, notes)
    if backdrop is not None:
        temporary.append(backdrop.managed)
    finder = detector if detector is not None else default_detector(notes)
    engine = _ManagedEngine(
        net, detector=memory.value(finder), parser=_parser(mask, parser, temporary), background=backdrop,
        fidelity=fidelity, visibility=visibility, mask=mask, feather=feather, colour_match=colour_match,
        score_threshold=threshold or None, min_face_size=min_size, select=select,
        indices=parse_indices(indices) if select == "indices" else None, max_faces=max_faces or None,
        upscale=upscale, smoothing=smoothing, steady=steady, fps=fps, coverage=True,
        memory_budget_mb=memory.faces_budget_mb(model.device if isinstance(model, Managed) else None))
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

    items = [model, finder] + ([parser] if mask == "parsing" else []) + [t for t in temporary]
    required = max(memory.restore_memory(net, engine.batch_size), memory.detect_memory(_largest(image)))
    result = _run(lambda: engine.run(image.detach().cpu().float().numpy(), on_progress=on_progress,
                                     should_stop=host.check_interrupt), items, required, temporary)
    restored = result.restored if len(result.restored) else np.zeros((1, net.out_size, net.out_size, 3), np.uint8)
    images = torch.from_numpy(np.ascontiguousarray(result.images, np.float32))
    return (images, _masks_tensor(result.coverage), uint8_to_batch(restored)), _log(notes + result.notes)
