"""The one face-restoration engine: detect → choose → align → restore (in memory-budgeted batches)
→ mask → paste → background, for one picture or a batch of frames.

Every front end runs it: :class:`gfp_core.pipeline.FaceRestorer` (the CLI), the web demo and the
ComfyUI nodes call :meth:`Engine.run`; the stage nodes call the stage functions below one by one
(:func:`detect_frames`, :func:`choose_faces`, :func:`crop_faces`, :func:`restore_crops`,
:func:`mask_faces`, :func:`background_frames`, :func:`paste_frames`). :meth:`Engine.run` strings
those same functions together; nothing else does.

Frames come as one picture (``H×W``, ``H×W×C``), a batch ``N×H×W×C`` or a list of frames; uint8,
uint16, or float32/float16 in [0, 1]; ``C`` = 1, 3 or 4 (2 for a single grey+alpha picture). They
come back in the same layout and dtype. Detection and the model see an 8-bit copy; faces are pasted
into the frame in its own precision (8 bits as uint8, as the official code; 16 bits and floats in
float32), so a pixel no mask touches comes back bit for bit, and a float frame is never rounded to
8 bits.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from .errors import FaceSelectionError, ImageTooLargeError, InvalidImageError
from .face.detection import MIN_EYE_DISTANCE
from .face.types import Face

if TYPE_CHECKING:
    from .face.steady import Last
    from .face.track import Track, Tracks
from .image import DEFAULT_MAX_OUTPUT_PIXELS, Picture, as_uint8, megapixels, to_picture

log = logging.getLogger(__name__)

#: peak extra memory of one 512×512 face in an fp32 forward pass (measured: bench/bench_forward.py)
FACE_FORWARD_MIB = 600

#: ``on_progress(stage, fraction, faces)``: stage 'detect', 'restore' or 'paste'; the fraction of all
#: the work done; how many faces are being restored (0 while detecting). Raising in it stops the work.
Progress = Callable[[str, float, int], None]


# --------------------------------------------------------------------------------------------
# frames in, frames out


@dataclass
class Frame:
    """One input frame: ``rgb8`` for detection and the model, ``base`` (``H×W×3``, uint8 for 8-bit
    sources, float32 in [0, 1] otherwise) for pasting, and what is needed to give the result back in
    the input's layout (:meth:`rebuild`)."""

    rgb8: np.ndarray
    base: np.ndarray
    picture: Picture | None = None     # 8- and 16-bit sources
    alpha: np.ndarray | None = None    # float sources
    grey: bool = False                 # float sources
    dtype: Any = np.float32
    channels: int | None = None        # None: the input had no channel axis (or was a Picture)

    @classmethod
    def of(cls, image: np.ndarray) -> "Frame":
        arr = np.asarray(image)
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
            raise InvalidImageError(f"expected an H×W, H×W×C (C = 1, 3 or 4) image or an N×H×W×C batch, "
                                    f"got shape {list(arr.shape)}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise InvalidImageError(f"got an empty image of shape {list(arr.shape)}")
        channels = arr.shape[2] if arr.ndim == 3 else None
        if not np.issubdtype(arr.dtype, np.floating):
            picture = to_picture(arr)
            base = picture.rgb if picture.rgb.dtype == np.uint8 else picture.as_float()
            return cls(picture.rgb8, base, picture=picture, dtype=arr.dtype, channels=channels)
        if arr.dtype not in (np.float32, np.float16, np.float64):
            raise InvalidImageError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
        work = arr.astype(np.float32, copy=False)
        if work.ndim == 2:
            work = work[..., None]
        alpha = None
        if work.shape[2] in (2, 4):
            alpha, work = work[..., -1], work[..., :-1]
        grey = work.shape[2] == 1
        rgb = np.repeat(work, 3, axis=2) if grey else np.ascontiguousarray(work)
        return cls(as_uint8(rgb), rgb, alpha=alpha, grey=grey, dtype=arr.dtype, channels=channels)

    @property
    def size(self) -> tuple[int, int]:
        return self.base.shape[:2]

    def rebuild(self, rgb: np.ndarray) -> np.ndarray:
        """A processed ``base`` (same dtype, maybe upscaled) in the input's layout and dtype."""
        if self.picture is not None:
            out = self.picture.rebuild(rgb)
        else:
            out = rgb
            if self.grey:  # grey stays grey: untouched pixels keep their value, faces become luminance
                same = (out[..., 0] == out[..., 1]) & (out[..., 1] == out[..., 2])
                lum = out @ np.array([0.299, 0.587, 0.114], np.float32)
                out = np.where(same, out[..., 0], lum)[..., None]
            if self.alpha is not None:
                alpha = self.alpha
                if alpha.shape != out.shape[:2]:
                    import cv2

                    alpha = cv2.resize(alpha, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_LINEAR)
                out = np.concatenate([out, alpha[..., None]], axis=2)
            out = out.astype(self.dtype, copy=False)
            if self.channels is None and out.shape[2] == 1:
                out = out[..., 0]
        if out.ndim == 2 and self.channels is not None:
            out = out[..., None]
        return out


def to_frames(images: Any) -> tuple[list[Frame], str]:
    """``images`` as frames, and its kind: 'picture' (one image), 'batch' (an ``N×H×W×C`` array)
    or 'list' (a sequence of frames, sizes may differ)."""
    if isinstance(images, Picture):
        return [Frame(images.rgb8, images.rgb if images.rgb.dtype == np.uint8 else images.as_float(),
                      picture=images, dtype=images.rgb.dtype)], "picture"
    if isinstance(images, (list, tuple)):
        if not images:
            raise InvalidImageError("got an empty list of frames")
        return [Frame.of(f) for f in images], "list"
    arr = np.asarray(images)
    if arr.ndim == 4:
        if len(arr) == 0:
            raise InvalidImageError("got an empty batch of frames")
        return [Frame.of(f) for f in arr], "batch"
    return [Frame.of(arr)], "picture"


# --------------------------------------------------------------------------------------------
# the faces of a batch


@dataclass
class FaceSet:
    """Faces of a batch of frames. ``found[i]``: every face found in frame ``i``, in reading order
    (list position = the face's number) or, for a clip whose faces were tracked, by track (then
    ``found_numbers[i]`` gives their track ids); ``faces[i]`` / ``numbers[i]``: the chosen ones and
    their numbers; ``affines[i]`` (``[n_i, 2, 3]``): their alignments to the ``face_size`` crop."""

    faces: list[list[Face]]
    affines: list[np.ndarray]
    frame_sizes: list[tuple[int, int]]  # (height, width)
    face_size: int = 512
    detected: list[int] = field(default_factory=list)  # faces found per frame, before choosing
    found: list[list[Face]] = field(default_factory=list)
    numbers: list[list[int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: each found face's number: None for list positions (pictures), else a clip's track ids
    found_numbers: list[list[int]] | None = None

    @property
    def counts(self) -> list[int]:
        return [len(f) for f in self.faces]

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def frame_index(self) -> np.ndarray:
        """The frame of each face of the flat batch."""
        return np.repeat(np.arange(len(self.faces)), self.counts).astype(np.int64)

    @property
    def flat_faces(self) -> list[Face]:
        return [f for fs in self.faces for f in fs]

    @property
    def flat_numbers(self) -> np.ndarray:
        """Each face's number (a tracked clip's: its track id), frame after frame."""
        return np.array([k for ks in self.numbers for k in ks], np.int64)

    @property
    def flat_affines(self) -> np.ndarray:
        return np.concatenate(self.affines) if self.total else np.zeros((0, 2, 3))

    def frames_between(self, start: int, stop: int) -> "FaceSet":
        """The faces of frames ``start`` … ``stop - 1`` (a chunk of a clip chosen as a whole)."""
        part = slice(start, stop)
        notes = [] if start or stop < len(self.faces) else list(self.notes)
        return FaceSet(self.faces[part], self.affines[part], self.frame_sizes[part], self.face_size,
                       self.detected[part], self.found[part], self.numbers[part], notes,
                       None if self.found_numbers is None else self.found_numbers[part])

    def split(self, crops: np.ndarray) -> list[np.ndarray]:
        """A flat crop batch → one array per frame."""
        if len(crops) != self.total:
            raise InvalidImageError(f"got {len(crops)} face crops, but these faces need {self.total} "
                                    f"({', '.join(map(str, self.counts))} per frame)")
        bounds = np.cumsum([0, *self.counts])
        return [crops[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def detect_frames(detector, frames: Sequence[np.ndarray], *, score_threshold: float | None = None,
                  max_side: int | None = 1280, min_size: float = 0, min_eye_distance: float = MIN_EYE_DISTANCE,
                  on_frame: Callable[[int], None] | None = None) -> list[list[Face]]:
    """Stage 1: every face of every frame (any layout :func:`~gfp_core.face.detection.detect_faces`
    takes), in reading order: a face's list position is its number (what 'indices' choose)."""
    from . import options as o
    from .face.detection import detect_faces
    from .face.select import reading_order

    o.MIN_FACE_SIZE.check(min_size)  # before the first frame (detect_faces checks the others)
    o.EYE_DISTANCE.check(min_eye_distance)
    found = []
    for i, frame in enumerate(frames):
        if on_frame is not None:
            on_frame(i)
        found.append(reading_order(detect_faces(detector, frame, score_threshold=score_threshold,
                                                max_side=max_side, min_size=min_size,
                                                min_eye_distance=min_eye_distance)))
    return found


def _alignments(per_frame: Sequence[Sequence[Face]], face_size: int) -> list[np.ndarray]:
    """Each frame's faces' alignments to the ``face_size`` crop (``[n_i, 2, 3]``)."""
    from .face.align import estimate_alignment

    return [np.stack([estimate_alignment(f.landmarks, face_size) for f in fs]) if fs else np.zeros((0, 2, 3))
            for fs in per_frame]


def choose_faces(found: Sequence[Sequence[Face]], frame_sizes: Sequence[tuple[int, int]], *, select: str = "all",
                 indices: Sequence[int] | None = None, max_faces: int | None = None,
                 face_limit: int | None = None, limit_reason: str = "the face limit",
                 face_size: int = 512, passed: str = "unchanged") -> FaceSet:
    """Stage 2: the faces to restore, per frame, and their alignments.

    The choice (:func:`~gfp_core.face.select.select_faces`) applies to each frame that has faces; an
    index beyond one frame's faces is skipped there, and only an index that no frame has is an error
    (:class:`FaceSelectionError`). ``face_limit`` then keeps at most that many faces per frame, the
    largest. What a user should know (faceless frames, skipped indices, the limit) goes to ``notes``;
    ``passed`` says what happens to a faceless frame ('unchanged', or e.g. 'only upscaled').
    """
    from .face.select import select_faces

    found = [list(fs) for fs in found]
    n = len(found)
    counts = [len(fs) for fs in found]
    notes: list[str] = []
    if select == "indices":
        if not indices:
            raise FaceSelectionError("face choice 'indices' needs at least one index")
        most = max(counts, default=0)
        missing = [i for i in indices if not -most <= i < most]
        if missing and most:
            if n == 1:
                select_faces(found[0], frame_sizes[0], select, indices, max_faces)  # raises its own message
            raise FaceSelectionError(
                f"face index {missing[0]} is out of range in every frame: the most faces found in one frame "
                f"is {most} (indices 0 to {most - 1})")
    chosen_numbers: list[list[int]] = []
    short_frames: list[int] = []
    for i, (fs, size) in enumerate(zip(found, frame_sizes)):
        if not fs:
            chosen_numbers.append([])
            continue
        usable = indices
        if select == "indices":
            usable = [k for k in indices if -len(fs) <= k < len(fs)]
            if len(usable) < len(indices):
                short_frames.append(i)
            if not usable:
                chosen_numbers.append([])
                continue
        chosen = select_faces(fs, size, select, usable, max_faces)
        if face_limit is not None and len(chosen) > face_limit:
            what = "found" if len(chosen) == len(fs) else "chosen"
            where = f"frame {i}: " if n > 1 else ""
            notes.append(f"{where}{len(chosen)} faces {what}; the {face_limit} largest were restored ({limit_reason})")
            chosen = select_faces(chosen, size, max_faces=face_limit)
        chosen_numbers.append([next(k for k, f in enumerate(fs) if f is c) for c in chosen])
    faceless = counts.count(0)
    if faceless:
        notes.insert(0, f"{faceless} of {n} frames had no face and were passed through {passed}"
                     if n > 1 else f"No face was found; the picture was passed through {passed}")
    if short_frames:
        listed = ", ".join(map(str, short_frames[:10])) + (", …" if len(short_frames) > 10 else "")
        notes.append(f"{len(short_frames)} of {n} frames had fewer faces than the indices asked for "
                     f"(frame {listed}); the missing indices were skipped there")
    faces = [[fs[k] for k in ks] for fs, ks in zip(found, chosen_numbers)]
    affines = _alignments(faces, face_size)
    return FaceSet(faces, affines, [tuple(s) for s in frame_sizes], face_size, counts, found, chosen_numbers, notes)


def given_faces(faces: Sequence[Face] | Sequence[Sequence[Face]], frame_sizes: Sequence[tuple[int, int]],
                face_size: int = 512) -> FaceSet:
    """A :class:`FaceSet` of faces the caller chose (a list per frame, or one list for one frame),
    all of them restored, in the order given."""

    per_frame = [list(faces)] if not faces or isinstance(faces[0], Face) else [list(fs) for fs in faces]
    if len(per_frame) != len(frame_sizes):
        raise InvalidImageError(f"got faces for {len(per_frame)} frame(s), but there are {len(frame_sizes)}")
    affines = _alignments(per_frame, face_size)
    return FaceSet(per_frame, affines, [tuple(s) for s in frame_sizes], face_size, [len(fs) for fs in per_frame],
                   per_frame, [list(range(len(fs))) for fs in per_frame])


def track_faces(found: Sequence[Sequence[Face]], *, smoothing: float = 0.5, fps: float | None = None) -> Tracks:
    """Stage 1b, for the frames of a clip: the faces linked into tracks with stable ids (a few
    missed frames filled in) and their alignment smoothed in time (:mod:`gfp_core.face.track`)."""
    from .face.track import link_tracks, smooth_tracks

    return smooth_tracks(link_tracks(found), smoothing, fps)


def choose_tracks(tracks: Tracks, frame_sizes: Sequence[tuple[int, int]], *, select: str = "all",
                  indices: Sequence[int] | None = None, max_faces: int | None = None,
                  face_limit: int | None = None, limit_reason: str = "the face limit",
                  face_size: int = 512, passed: str = "unchanged") -> FaceSet:
    """Stage 2 for a clip: the choice applies to whole tracks, so "face 0" is the same person in
    every frame. A face's number is its track's id (numbered by first appearance, then in reading
    order). 'largest' and 'center' rank the tracks by their median box over the clip; ``indices``
    beyond the clip's tracks are an error; ``face_limit`` keeps at most that many per frame."""
    from .face.select import select_faces

    n = len(frame_sizes)
    if tracks.frames != n:
        raise InvalidImageError(f"got face tracks of {tracks.frames} frame(s), but there are {n}")
    count = len(tracks)
    if select == "indices":
        if not indices:
            raise FaceSelectionError("{setting} 'indices' needs at least one face index", setting="select",
                                     value=indices)
        bad = [i for i in indices if not -count <= i < count]
        if bad and count:
            raise FaceSelectionError(f"face index {bad[0]} is out of range: {count} faces were followed through "
                                     f"the clip (numbers 0 to {count - 1})", setting="indices", value=bad[0],
                                     allowed=(-count, count - 1))
        chosen_ids = {tracks.tracks[i].id for i in indices if -count <= i < count}
    elif select == "all" and not max_faces:
        chosen_ids = {t.id for t in tracks}
    else:
        stand_ins = [_median_face(t) for t in tracks]  # one face per track, where it mostly is
        picked = {id(f) for f in select_faces(stand_ins, frame_sizes[0], select, None, max_faces)}
        chosen_ids = {t.id for t, f in zip(tracks, stand_ins) if id(f) in picked}
    found, found_numbers, faces, numbers, notes = [], [], [], [], []
    for i, entries in enumerate(tracks.per_frame()):
        found.append([e.face for e in entries])
        found_numbers.append([e.track for e in entries])
        keep = [e for e in entries if e.track in chosen_ids]
        if face_limit is not None and len(keep) > face_limit:
            notes.append(f"frame {i}: {len(keep)} faces chosen; the {face_limit} largest were restored ({limit_reason})")
            keep = sorted(sorted(keep, key=lambda e: -e.face.area)[:face_limit], key=lambda e: e.track)
        faces.append([e.face for e in keep])
        numbers.append([e.track for e in keep])
    faceless = sum(1 for fs in found if not fs)
    if faceless:
        notes.insert(0, f"{faceless} of {n} frames had no face and were passed through {passed}")
    affines = _alignments(faces, face_size)
    return FaceSet(faces, affines, [tuple(s) for s in frame_sizes], face_size, [len(fs) for fs in found], found,
                   numbers, notes, found_numbers)


def _median_face(track: Track) -> Face:
    return Face(np.median(track.boxes, axis=0).astype(np.float32),
                np.median(track.landmarks, axis=0).astype(np.float32), 1.0)


def check_frames(frames: Sequence[np.ndarray], faces: FaceSet) -> None:
    """Refuse frames that are not the ones ``faces`` were found in (their number or sizes differ)."""
    sizes = [tuple(np.shape(f)[:2]) for f in frames]
    if len(frames) != len(faces.faces) or any(tuple(a) != tuple(b) for a, b in zip(sizes, faces.frame_sizes)):
        raise InvalidImageError(f"these faces were found in {len(faces.faces)} frame(s) of size(s) "
                                f"{sorted(set(faces.frame_sizes))}, but the images are {len(frames)} frame(s) "
                                f"of size(s) {sorted(set(sizes))}")


def crop_faces(frames: Sequence[np.ndarray], faces: FaceSet) -> np.ndarray:
    """Stage 3: aligned crops of every chosen face, frame after frame: ``[total, S, S, 3]`` in the
    frames' dtype (RGB ``H×W×3`` frames)."""
    from .face.align import warp_face

    check_frames(frames, faces)
    s = faces.face_size
    # the alignments were estimated when the faces were chosen: warp with them
    crops = [warp_face(frame, a, s) for frame, affines in zip(frames, faces.affines) for a in affines]
    dtype = np.asarray(frames[0]).dtype if len(frames) else np.uint8
    return np.stack(crops) if crops else np.zeros((0, s, s, 3), dtype)


def restore_crops(model, crops: np.ndarray, *, fidelity: float = 1.0, batch_size: int = 1,
                  on_batch: Callable[[int], None] | None = None,
                  should_stop: Callable[[], None] | None = None) -> np.ndarray:
    """Stage 4: the model on aligned crops, ``batch_size`` faces per forward pass → uint8 crops.
    ``should_stop()`` raises to cancel; it is asked between the blocks of each forward pass."""
    from .restore import restore_aligned

    return restore_aligned(model, crops, fidelity=fidelity, batch_size=batch_size, on_batch=on_batch,
                           should_stop=should_stop)


def faces_per_budget(model, budget_mb: int | None) -> int:
    """Faces per forward pass for a memory budget (None: one at a time on a CPU, which is fastest
    there — bench/bench_forward.py: 1.84 s/face at batch 1, 2.36 s at batch 4 — and 4 GiB worth on
    an accelerator)."""
    param = next(model.parameters())
    if budget_mb is None:
        if param.device.type == "cpu":
            return 1
        budget_mb = 4096
    return max(1, int(budget_mb // (FACE_FORWARD_MIB * param.element_size() / 4)))


def mask_faces(faces: FaceSet, restored: np.ndarray, *, mode: str = "box", upscale: float = 1.0, parser=None,
               feather: float = 0.0, parse_size: int | None = None) -> np.ndarray:
    """Stage 5: one crop-space paste mask per face (``[total, S, S]`` float32 in [0, 1]); 'parsing'
    masks parse at ``parse_size`` (None: ``gfp_core.face.masks.DEFAULT_PARSE_SIZE``)."""
    from .face.masks import DEFAULT_PARSE_SIZE, face_masks

    return face_masks(mode, faces.flat_faces, faces.flat_affines, restored, face_size=faces.face_size,
                      upscale=upscale, parser=parser, feather=feather,
                      parse_size=DEFAULT_PARSE_SIZE if parse_size is None else parse_size)


def background_frames(frames: Sequence[np.ndarray], upscale: float = 1.0, upsampler=None) -> list[np.ndarray]:
    """Stage 6: the backgrounds faces are pasted into: copies at ``upscale`` 1, else resized with
    Lanczos or ``upsampler`` (a :class:`~gfp_core.background.BackgroundUpsampler`); dtype kept."""
    from .background import upscale_background

    if upscale == 1 and upsampler is None:
        return [np.array(f, copy=True) for f in frames]
    return [upscale_background(f, upscale, upsampler) for f in frames]


def paste_frames(backgrounds: Sequence[np.ndarray], faces: FaceSet, crops: np.ndarray, masks: np.ndarray, *,
                 visibility: float = 1.0, upscale: float = 1.0,
                 coverage: bool = False) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Stage 7: blend the crops into their frames' backgrounds (in place) with their masks.

    Returns the frames and, with ``coverage``, per frame how much of each output pixel is the pasted
    face (``H×W`` float32 in [0, 1]). Crops of another size than the set's are resized first.
    """
    import cv2

    from .face.align import inverse_alignment
    from .face.paste import paste_faces

    s = faces.face_size
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise InvalidImageError(f"face crops must be a batch of RGB images [N, H, W, 3], got {list(crops.shape)}")
    if crops.shape[1:3] != (s, s):
        crops = np.stack([cv2.resize(c, (s, s), interpolation=cv2.INTER_AREA if c.shape[0] > s
                                     else cv2.INTER_LINEAR) for c in crops]) if len(crops) else \
            np.zeros((0, s, s, 3), crops.dtype)
    per_frame_crops = faces.split(crops)
    per_frame_masks = faces.split(np.asarray(masks)) if len(masks) else [np.zeros((0, s, s), np.float32)] * len(
        faces.faces)
    images, cover = [], [] if coverage else None
    for background, affines, frame_crops, frame_masks in zip(backgrounds, faces.affines, per_frame_crops,
                                                             per_frame_masks):
        h, w = background.shape[:2]
        if len(frame_crops) == 0:
            images.append(background)
            if coverage:
                cover.append(np.zeros((h, w), np.float32))
            continue
        inverse = [inverse_alignment(a, upscale=upscale) for a in affines]
        images.append(paste_faces(background, list(frame_crops), inverse, list(frame_masks), visibility=visibility,
                                  upscale=upscale, inplace=True))
        if coverage:
            ones = np.ones((len(frame_crops), s, s, 3), np.float32)
            c = paste_faces(np.zeros((h, w, 3), np.float32), ones, inverse, list(frame_masks), visibility=visibility,
                            inplace=True)
            cover.append(c[..., 0])
    return images, cover


# --------------------------------------------------------------------------------------------
# all of it


@dataclass(frozen=True)
class EngineOptions:
    """What :class:`Engine` does. ``select``/``indices``/``max_faces``: see
    :func:`~gfp_core.face.select.select_faces`; ``face_limit``: at most that many faces restored per
    frame (the largest), with ``limit_reason`` in the note that says so. ``mask``: 'box', 'ellipse'
    or 'parsing' (needs a parser); ``feather`` softens its edge. ``coverage``: also give, per frame,
    how much of each pixel is the restored face. ``smoothing`` > 0: a batch of frames
    (``N×H×W×C``) is a clip: its faces are followed from frame to frame (a face's number is its
    track's, the same person in every frame, and the choice applies to whole tracks) and their
    alignment is smoothed in time with that strength (:mod:`gfp_core.face.track`; ``fps``: the clip's
    rate, None for 30); 0: every frame on its own, as the official code. ``steady`` > 0 (on such a clip):
    each restored face is blended with its track's steadied face of the frame before while the face
    stands still (:mod:`gfp_core.face.steady`; 0: every restored face as the model gave it); a clip
    restored in chunks passes each chunk's :attr:`EngineResult.steady_last` to the next
    (``Engine.run(..., steady_from=...)``). ``memory_budget_mb``: bounds one forward pass (see
    :func:`faces_per_budget`). ``max_output_pixels``: a frame whose result would be larger is refused
    before any work."""

    upscale: float = 1.0
    fidelity: float = 1.0
    visibility: float = 1.0
    mask: str = "box"
    feather: float = 0.0
    colour_match: bool = False
    score_threshold: float | None = None
    detect_max_side: int | None = 1280
    min_face_size: float = 0
    min_eye_distance: float = MIN_EYE_DISTANCE
    select: str = "all"
    indices: tuple[int, ...] | None = None
    max_faces: int | None = None
    face_limit: int | None = None
    limit_reason: str = "the face limit"
    coverage: bool = False
    smoothing: float = 0.0
    steady: float = 0.0
    fps: float | None = None
    memory_budget_mb: int | None = None
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS

    def __post_init__(self) -> None:
        """Every option checked by :mod:`gfp_core.options` (one policy for every front end); a bad
        one raises :class:`InvalidOptionError` naming its canonical setting (``exc.setting``)."""
        from . import options as o

        o.MASKS.check(self.mask)
        o.FEATHER.check(self.feather)
        o.VISIBILITY.check(self.visibility)
        o.UPSCALE.check(self.upscale)
        if self.score_threshold is not None:
            o.THRESHOLD.check(self.score_threshold)
        o.DETECT_MAX_SIDE.check(self.detect_max_side)
        o.MIN_FACE_SIZE.check(self.min_face_size)
        o.EYE_DISTANCE.check(self.min_eye_distance)
        o.MAX_OUTPUT_PIXELS.check(self.max_output_pixels)
        o.FIDELITY.check(self.fidelity)
        o.SELECTS.check(self.select)
        o.MAX_FACES.check(self.max_faces)
        o.FACE_LIMIT.check(self.face_limit)
        o.MEMORY_BUDGET_MB.check(self.memory_budget_mb)
        o.SMOOTHING.check(self.smoothing)
        o.STEADY.check(self.steady)
        o.FPS.check(self.fps)
        if self.indices is not None:
            try:
                object.__setattr__(self, "indices", tuple(int(i) for i in self.indices))
            except (TypeError, ValueError):
                raise FaceSelectionError("face indices must be whole numbers, got " + o.shown(self.indices),
                                         setting="indices", value=self.indices) from None


@dataclass
class EngineResult:
    """What :meth:`Engine.run` found and did.

    ``frames``: the output frames, each in its input's layout and dtype (``upscale`` times larger);
    ``images`` stacks them (a batch in gives a batch out), ``image`` is the first (one picture in).
    ``found[i]``: every face found in frame ``i`` in reading order, ``found_numbers[i]`` their numbers
    (list positions, as the preview draws them; for a tracked clip, the tracks' ids, the same person
    in every frame); ``chosen[i]``: the numbers of the faces restored there.
    Flat over the batch, one row per restored face, frame after frame: ``faces``, ``frame_index``,
    ``numbers``, ``crops`` and ``restored`` (aligned ``S×S×3`` uint8), ``affines`` (frame → crop),
    ``masks`` (crop-space paste masks in [0, 1]). ``coverage`` (if asked): per frame, how much of
    each output pixel is a restored face. ``notes``: sentences for the user. ``steady_last``: for a
    clip steadied in chunks, what the next chunk continues from (``Engine.run(..., steady_from=)``).
    """

    frames: list[np.ndarray]
    found: list[list[Face]]
    chosen: list[list[int]]
    faces: list[Face]
    frame_index: np.ndarray
    numbers: np.ndarray
    crops: np.ndarray
    restored: np.ndarray
    affines: np.ndarray
    masks: np.ndarray
    notes: list[str] = field(default_factory=list)
    coverage: list[np.ndarray] | None = None
    kind: str = "picture"
    found_numbers: list[list[int]] = field(default_factory=list)
    steady_last: dict[int, Last] = field(default_factory=dict)

    @property
    def num_found(self) -> list[int]:
        return [len(f) for f in self.found]

    @property
    def num_restored(self) -> list[int]:
        return [len(c) for c in self.chosen]

    @property
    def image(self) -> np.ndarray:
        return self.frames[0]

    @property
    def images(self) -> np.ndarray | list[np.ndarray]:
        """A batch in, an ``N×H×W×C`` batch out; a list in, a list out; one picture in, that picture."""
        if self.kind == "batch":
            return np.stack(self.frames)
        return list(self.frames) if self.kind == "list" else self.frames[0]


class Engine:
    """The one orchestrator. ``model``: a loaded GFPGAN (:func:`gfp_core.weights.load_model`; None
for an engine that only pastes crops restored elsewhere, :meth:`paste_crops`);
    ``detector``: a :class:`~gfp_core.face.detection.FaceDetector` or a function that gives one (called
    only when faces must be found); ``parser``: the same for the 'parsing' mask; ``background``: a
    :class:`~gfp_core.background.BackgroundUpsampler` or None (Lanczos). Options: an
    :class:`EngineOptions`, or its fields as keywords. The engine never changes the models.
    """

    def __init__(self, model, *, detector=None, parser=None, background=None, options: EngineOptions | None = None,
                 **overrides: Any) -> None:
        self.model = model
        self.options = replace(options or EngineOptions(), **overrides) if overrides else (options or EngineOptions())
        self._detector = detector
        self._parser = parser
        self.background_upsampler = background
        self.face_size: int = getattr(model, "out_size", 512)
        self.batch_size = faces_per_budget(model, self.options.memory_budget_mb) if model is not None else 1

    @property
    def detector(self):
        if callable(self._detector) and not hasattr(self._detector, "raw_outputs"):
            self._detector = self._detector()
        if self._detector is None:
            from .face.detection import load_detector

            self._detector = load_detector("embedded")
        return self._detector

    @property
    def parser(self):
        if self.options.mask != "parsing":
            return None
        if self._parser is not None and not hasattr(self._parser, "parameters"):
            self._parser = self._parser()
        return self._parser

    def check_output_size(self, input_size: tuple[int, int]) -> None:
        """Refuse, before any work, an input ``(height, width)`` whose result would be over
        ``max_output_pixels``."""
        from .background import output_size

        limit = self.options.max_output_pixels
        height, width = output_size(tuple(input_size), self.options.upscale)
        if height * width <= limit:
            return
        fits = (limit / (input_size[0] * input_size[1])) ** 0.5
        raise ImageTooLargeError(
            f"the result would be {width}x{height}, {megapixels(height * width)} megapixels, over the output limit "
            f"of {megapixels(limit)}", setting="max_output_pixels",
            remedy=f"use an upscale of at most {int(fits * 100) / 100:g}" if fits >= 1 else "use a smaller image")

    # --- the stages with this engine's models and options -----------------------------------

    def detect(self, frames: Sequence[np.ndarray], on_frame: Callable[[int], None] | None = None) -> list[list[Face]]:
        o = self.options
        return detect_frames(self.detector, frames, score_threshold=o.score_threshold, max_side=o.detect_max_side,
                             min_size=o.min_face_size, min_eye_distance=o.min_eye_distance, on_frame=on_frame)

    def choose(self, found: Sequence[Sequence[Face]], frame_sizes: Sequence[tuple[int, int]]) -> FaceSet:
        o = self.options
        return choose_faces(found, frame_sizes, select=o.select, indices=o.indices, max_faces=o.max_faces,
                            face_limit=o.face_limit, limit_reason=o.limit_reason, face_size=self.face_size,
                            passed=self._passed())

    def track(self, found: Sequence[Sequence[Face]], fps: float | None = None) -> Tracks:
        """``fps``: the clip's own frame rate (a video file's), used when the options set none."""
        return track_faces(found, smoothing=self.options.smoothing, fps=self.options.fps or fps)

    def choose_tracked(self, tracks: Tracks, frame_sizes: Sequence[tuple[int, int]]) -> FaceSet:
        o = self.options
        return choose_tracks(tracks, frame_sizes, select=o.select, indices=o.indices, max_faces=o.max_faces,
                             face_limit=o.face_limit, limit_reason=o.limit_reason, face_size=self.face_size,
                             passed=self._passed())

    def choose_found(self, found: Sequence[Sequence[Face]], frame_sizes: Sequence[tuple[int, int]], *,
                     batch: bool = True, fps: float | None = None) -> FaceSet:
        """Stage 2 for what :meth:`detect` found: a clip (smoothing > 0, several frames of a batch)
        by track (:meth:`track`, :meth:`choose_tracked`), anything else frame by frame (:meth:`choose`)."""
        if self.options.smoothing > 0 and batch and len(found) > 1:
            return self.choose_tracked(self.track(found, fps), frame_sizes)
        return self.choose(found, frame_sizes)

    def _passed(self) -> str:
        return "unchanged" if self.options.upscale == 1 and self.background_upsampler is None \
            else "with only the background upscaled"

    def crop(self, frames: Sequence[np.ndarray], faces: FaceSet) -> np.ndarray:
        return crop_faces(frames, faces)

    def restore_crops(self, crops: np.ndarray, on_batch: Callable[[int], None] | None = None,
                      should_stop: Callable[[], None] | None = None) -> np.ndarray:
        return restore_crops(self.model, crops, fidelity=self.options.fidelity, batch_size=self.batch_size,
                             on_batch=on_batch, should_stop=should_stop)

    def masks_for(self, faces: FaceSet, restored: np.ndarray) -> np.ndarray:
        o = self.options
        return mask_faces(faces, restored, mode=o.mask, upscale=o.upscale, parser=self.parser, feather=o.feather)

    def backgrounds(self, bases: Sequence[np.ndarray]) -> list[np.ndarray]:
        return background_frames(bases, self.options.upscale, self.background_upsampler)

    def paste(self, backgrounds: Sequence[np.ndarray], faces: FaceSet, restored: np.ndarray,
              masks: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        o = self.options
        return paste_frames(backgrounds, faces, restored, masks, visibility=o.visibility, upscale=o.upscale,
                            coverage=o.coverage)

    # --- all of it ----------------------------------------------------------------------------

    def run(self, images: Any, faces: FaceSet | Sequence[Face] | Sequence[Sequence[Face]] | None = None,
            on_progress: Progress | None = None, should_stop: Callable[[], None] | None = None,
            steady_from: Mapping[int, Last] | None = None) -> EngineResult:
        """Restore the chosen faces of one picture or a batch of frames (see the module's docstring
        for what ``images`` may be). ``faces``: restore these (a list per frame, or one list for one
        picture, or a :class:`FaceSet` already chosen, e.g. a chunk of a clip's:
        :meth:`FaceSet.frames_between`) instead of detecting and choosing. Frames without faces come back unchanged
        (upscaled if asked) and are counted in ``notes``; no frame fails the batch.

        ``should_stop()`` raises to cancel the run (a host's interrupt, a deadline): it is asked at
        every stage and between the blocks of every forward pass, so a stop lands within a small
        part of one face's restoration (bench/bench_interrupt.py). ``steady_from``: the chunk
        before's :attr:`EngineResult.steady_last` (a clip restored in chunks, ``steady`` > 0)."""

        def report(stage: str, fraction: float, n: int = 0) -> None:
            if on_progress is not None:
                on_progress(stage, fraction, n)
            if should_stop is not None:
                should_stop()

        frames, kind = to_frames(images)
        for frame in frames:  # before any heavy work
            self.check_output_size(frame.size)
        sizes = [f.size for f in frames]
        rgb8 = [f.rgb8 for f in frames]
        if faces is None:
            report("detect", 0.0)
            found = self.detect(rgb8, on_frame=lambda i: report("detect", 0.1 * i / len(frames)) if i else None)
            face_set = self.choose_found(found, sizes, batch=kind == "batch")
        elif isinstance(faces, FaceSet):
            check_frames(rgb8, faces)
            face_set = faces
        else:
            face_set = given_faces(faces, sizes, self.face_size)
        total = face_set.total
        report("restore", 0.1, total)
        crops = self.crop(rgb8, face_set)
        done = 0

        def restored_some(n: int) -> None:
            nonlocal done
            done += n
            report("restore", 0.1 + 0.8 * done / total, total)

        restored = self.restore_crops(crops, on_batch=restored_some, should_stop=should_stop) if total \
            else crops.copy()
        report("paste", 0.9, total)
        return self._blend(frames, kind, face_set, crops, restored, steady_from)

    def paste_crops(self, images: Any, faces: FaceSet, crops: np.ndarray,
                    should_stop: Callable[[], None] | None = None,
                    steady_from: Mapping[int, Last] | None = None) -> EngineResult:
        """The stages after restoration (mask, colour match, background, paste) for crops that come
        from elsewhere: restored or edited by other means, one per face of ``faces`` (found in these
        ``images`` by :meth:`detect` and :meth:`choose`, or :func:`detect_frames` and
        :func:`choose_faces`), frame after frame. ``crops``: ``[N, h, w, 3]`` (or ``[N, h, w, 1]``)
        uint8 or float in [0, 1]; crops of another size than the faces' are resized. A tracked
        clip's crops are steadied as in :meth:`run` (``steady``, ``steady_from``)."""
        import cv2

        frames, kind = to_frames(images)
        check_frames([f.rgb8 for f in frames], faces)
        for frame in frames:
            self.check_output_size(frame.size)
        crops = np.asarray(crops)
        if crops.ndim == 4 and crops.shape[-1] == 1:
            crops = np.repeat(crops, 3, axis=-1)
        if crops.ndim != 4 or crops.shape[-1] not in (3, 4):
            raise InvalidImageError(f"face crops must be a batch of RGB images [N, H, W, 3], got {list(crops.shape)}")
        crops = crops[..., :3]
        if faces.total == 0 and len(crops) == 1:
            crops = crops[:0]  # the stand-in crop a host passes for a batch without faces
        s = faces.face_size
        if crops.shape[1:3] != (s, s) and len(crops):  # masks are made at the faces' crop size
            crops = np.stack([cv2.resize(c, (s, s), interpolation=cv2.INTER_AREA if c.shape[0] > s
                                         else cv2.INTER_LINEAR) for c in crops])
        faces.split(crops)  # a wrong number of crops is refused before any work
        if should_stop is not None:
            should_stop()
        originals = self.crop([f.rgb8 for f in frames], faces) if self.options.colour_match else None
        return self._blend(frames, kind, faces, originals, crops, steady_from)

    def steady(self, faces: FaceSet, restored: np.ndarray, previous: Mapping[int, Last] | None = None,
               frames: int | None = None) -> tuple[np.ndarray, dict[int, Last]]:
        """A tracked clip's restored crops steadied in time (``steady`` > 0; anything else is given
        back as it is), and what the next chunk continues from (``frames``: this chunk's length)."""
        if self.options.steady == 0 or faces.found_numbers is None or not faces.total:
            return restored, {}
        from .face.steady import last_of_tracks, steady_tracks

        landmarks = np.stack([f.landmarks for f in faces.flat_faces])
        ids = faces.flat_numbers
        # in float, so that the next chunk continues from what a whole clip would (nothing rounded between)
        steadied = steady_tracks(restored.astype(np.float32), faces.flat_affines, landmarks, faces.frame_index, ids,
                                 self.options.steady, full_scale=255.0 if restored.dtype == np.uint8 else 1.0,
                                 previous=previous)
        last = last_of_tracks(steadied, faces.flat_affines, landmarks, faces.frame_index, ids,
                              len(faces.faces) - 1 if frames is None else frames - 1)
        if restored.dtype == np.uint8:
            steadied = np.clip(np.rint(steadied), 0, 255).astype(np.uint8)
        return steadied, last

    def _blend(self, frames: list[Frame], kind: str, face_set: FaceSet, crops: np.ndarray | None,
               restored: np.ndarray, steady_from: Mapping[int, Last] | None = None) -> EngineResult:
        """Steady (a clip), mask, colour-match (against ``crops``, the original faces), background
        and paste: the end of :meth:`run` and all of :meth:`paste_crops`."""
        o = self.options
        total = face_set.total
        s = face_set.face_size
        restored, steady_last = self.steady(face_set, restored, steady_from, len(frames))
        masks = self.masks_for(face_set, restored) if total else np.zeros((0, s, s), np.float32)
        if o.colour_match and total:
            from .face.colour import match_colour

            restored = np.stack([match_colour(r, c, m) for r, c, m in zip(restored, crops, masks)])
        backgrounds = self.backgrounds([f.base for f in frames])
        pasted, coverage = self.paste(backgrounds, face_set, restored, masks)
        for note in face_set.notes:
            log.info("%s", note)
        return EngineResult(
            frames=[f.rebuild(p) for f, p in zip(frames, pasted)], found=face_set.found, chosen=face_set.numbers,
            found_numbers=face_set.found_numbers or [list(range(len(fs))) for fs in face_set.found],
            faces=face_set.flat_faces, frame_index=face_set.frame_index,
            numbers=face_set.flat_numbers,
            crops=crops if crops is not None else np.zeros((0, s, s, 3), np.uint8), restored=restored,
            affines=face_set.flat_affines, masks=masks, notes=list(face_set.notes), coverage=coverage, kind=kind,
            steady_last=steady_last)


def restore_frames(model, images: Any, *, detector=None, parser=None, background=None,
                   on_progress: Progress | None = None, **options: Any) -> EngineResult:
    """One call: ``Engine(model, detector=…, **options).run(images)``."""
    return Engine(model, detector=detector, parser=parser, background=background, **options).run(
        images, on_progress=on_progress)


__all__ = ["Engine", "EngineOptions", "EngineResult", "FaceSet", "Frame", "background_frames", "choose_faces",
           "check_frames", "choose_tracks", "crop_faces", "detect_frames", "track_faces", "faces_per_budget", "given_faces", "mask_faces", "paste_frames",
           "restore_crops", "restore_frames", "to_frames"]
