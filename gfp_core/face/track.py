"""Faces across video frames: linked into tracks with stable ids, their alignment smoothed in time.

Each frame is detected on its own, and the detector's landmarks move by a pixel or so between frames
even when the face does not; the aligned crop, the restored face and its paste mask then shake.

* **Linking** (:func:`link_tracks`): the faces of each frame are matched to the tracks of the
  frames before by box overlap and landmark distance (normalised by the face's size), with an exact
  minimum-cost assignment. A track may miss up to ``max_gap`` frames; the missing faces are filled
  in linearly between the detections on both sides (``interpolated``, score 0). Ids are numbered from
  0 by the frame a track first appears in, then in reading order
  (:func:`gfp_core.face.select.reading_order`), so "face 0" stays the same person all clip long.
* **Smoothing** (:func:`smooth_tracks`): each frame's 5 landmarks and box are replaced by a local
  quadratic fit over the frames around it (a LOESS with a tricube kernel, ``strength`` × 0.27 s each
  side: 4 frames at 30 fps at the default strength). A centred fit has no lag, and a quadratic
  follows a face that speeds up or turns, so a moving face loses its detector jitter as a still one
  does; a face that jumps (more than 0.15 face sizes in a frame) cuts the window there, so the jump
  is followed in the same frame and nothing is smeared across it. All 14 numbers share one window
  (the face moves as one), and the fit keeps the landmarks a face shape for the ellipse mask. A
  frame's result reads only ``look_ahead`` frames ahead, so a long clip streamed in chunks
  (:class:`FaceTracker`) comes out bit for bit as the whole clip at once. ``strength`` 0 leaves
  every face as detected (each frame on its own, as the official code); 1 smooths most. The window
  is in seconds (``fps``).

Only the landmarks and boxes change: the engine derives the alignment from the landmarks, and from
the alignment the box mask's place and size and the ellipse mask's shape, so smoothing the faces
smooths the crop and the paste mask alike; nothing else needs to be filtered.

Per frame batch::

    tracks = smooth_tracks(link_tracks(found), strength, fps)
    for frame, entries in enumerate(tracks.per_frame()):   # [TrackedFace(track, face, interpolated)]
        ...

Streaming a long clip in chunks gives the same faces, ``tracker.delay`` frames later::

    tracker = FaceTracker(strength, fps)
    for faces_of_frame in detections:
        for index, entries in tracker.push(faces_of_frame):   # frames that became final, oldest first
            ...
    for index, entries in tracker.finish():
        ...
"""
from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..options import SMOOTHING, Range
from .select import reading_order
from .types import Face

#: the default smoothing strength (4 frames each side at 30 fps). bench/bench_video_jitter.py has the
#: measurements: the aligned crop shakes several times less, still or moving, and a jump is followed
#: in its frame; stronger settings smooth more but stray from a fast-moving face (8 frames at 1)
DEFAULT_STRENGTH = 0.5
#: frames a track may miss (a blink of the detector, a hand passing) and still go on
DEFAULT_MAX_GAP = 5
#: the frame rate assumed when none is given
DEFAULT_FPS = 30.0
#: a face that moved more than this (mean landmark distance, in face sizes) is another face
MAX_DISTANCE = 1.0
#: what a track may miss (not a user option yet; checked the options' way)
MAX_GAP = Range("max_gap", 0, whole=True, what="frames a face track may miss and still go on")

# Smoothing parameters (bench/bench_video_jitter.py). The window grows with strength up to
# _HALF_WINDOW_S each side (8 frames at 30 fps); a quadratic follows a face that speeds up, slows down
# or turns where a straight line would cut the corner (at 8 frames each side a straight line strayed
# 7x further from a fast-moving face than a quadratic), and a cubic removed less jitter for no gain.
_HALF_WINDOW_S = 0.27
_DEGREE = 2
#: a face that moved more than this (RMS landmark step, in face sizes) between two frames jumped:
#: the window stops at the jump, so it is followed at once, with nothing smeared across it. Real
#: motion rarely comes near (0.15 face sizes a frame is 4.5 face sizes a second at 30 fps), and
#: where it does the fit is only cut short there.
_JUMP = 0.15


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """One face of one frame: its track's id, the face, and whether it was filled in (not detected)."""

    track: int
    face: Face
    interpolated: bool = False


@dataclass(frozen=True, eq=False)
class Track:
    """One face through consecutive frames ``first`` … ``last``: one :class:`Face` per frame, the
    ones filled in between detections marked in ``interpolated``."""

    id: int
    first: int
    faces: tuple[Face, ...]
    interpolated: tuple[bool, ...]

    @property
    def last(self) -> int:
        return self.first + len(self.faces) - 1

    def __len__(self) -> int:
        return len(self.faces)

    def face_at(self, frame: int) -> Face | None:
        return self.faces[frame - self.first] if self.first <= frame <= self.last else None

    @property
    def landmarks(self) -> np.ndarray:
        """``[T, 5, 2]``, one row per frame from ``first``."""
        return np.stack([f.landmarks for f in self.faces])

    @property
    def boxes(self) -> np.ndarray:
        """``[T, 4]``."""
        return np.stack([f.box for f in self.faces])


@dataclass(frozen=True, eq=False)
class Tracks:
    """The tracks of a clip of ``frames`` frames, in id order (``tracks[i].id == i``)."""

    tracks: tuple[Track, ...]
    frames: int

    def __len__(self) -> int:
        return len(self.tracks)

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)

    def frame(self, index: int) -> list[TrackedFace]:
        """The faces of one frame, by track id."""
        return [TrackedFace(t.id, t.faces[index - t.first], t.interpolated[index - t.first])
                for t in self.tracks if t.first <= index <= t.last]

    def per_frame(self) -> list[list[TrackedFace]]:
        """Every frame's faces, by track id (interpolated ones included)."""
        out: list[list[TrackedFace]] = [[] for _ in range(self.frames)]
        for t in self.tracks:
            for k, (face, filled) in enumerate(zip(t.faces, t.interpolated)):
                out[t.first + k].append(TrackedFace(t.id, face, filled))
        return out


# --------------------------------------------------------------------------------------------
# linking


def _size(face: Face) -> float:
    return max(math.sqrt(face.area), 1.0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(float(w), 0.0) * max(float(h), 0.0)
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def _hungarian(cost: list[list[float]]) -> list[int]:
    """Minimum-cost perfect assignment of a square matrix (the O(n³) potentials method): the column
    of each row. The faces of a frame are few; scipy is not needed for that."""
    n = len(cost)
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (n + 1)
    p, way = [0] * (n + 1), [0] * (n + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [inf] * (n + 1), [False] * (n + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, n + 1):
                if not used[j]:
                    cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    column = [0] * n
    for j in range(1, n + 1):
        if p[j]:
            column[p[j] - 1] = j - 1
    return column


def match_faces(previous: Sequence[Face], current: Sequence[Face],
                max_distance: float = MAX_DISTANCE) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``: ``previous[i]`` is ``current[j]`` one step later.

    Cost of a pair: mean landmark distance in units of the earlier face's size (√ box area), plus
    1 − the boxes' IoU; pairs further apart than ``max_distance`` face sizes are never matched. The
    assignment minimises the total cost over all pairs, with as many pairs as possible.
    """
    n, m = len(previous), len(current)
    if not n or not m:
        return []
    refuse = 1e6    # a pair over the distance limit
    alone = 1e3     # a face left unmatched: dearer than any allowed pair, cheaper than a refused one
    cost = [[refuse] * (n + m) for _ in range(n + m)]
    for i, a in enumerate(previous):
        for j, b in enumerate(current):
            d = float(np.mean(np.linalg.norm(b.landmarks.astype(np.float64) - a.landmarks, axis=1))) / _size(a)
            if d <= max_distance:
                cost[i][j] = d + 1.0 - _iou(a.box, b.box)
        cost[i][m + i] = alone           # previous[i] ends here
    for j in range(m):
        cost[n + j][j] = alone           # current[j] starts a track
        for k in range(n):
            cost[n + j][m + k] = 0.0     # dummy to dummy
    column = _hungarian(cost)
    return [(i, column[i]) for i in range(n) if column[i] < m and cost[i][column[i]] < refuse]


def _between(a: Face, b: Face, w: float) -> Face:
    """The face a fraction ``w`` of the way from ``a`` to ``b``, not detected (score 0)."""
    box = ((1 - w) * a.box.astype(np.float64) + w * b.box).astype(np.float32)
    landmarks = ((1 - w) * a.landmarks.astype(np.float64) + w * b.landmarks).astype(np.float32)
    return Face(box, landmarks, 0.0)


@dataclass
class _Live:
    id: int
    last_frame: int
    last: Face


@dataclass
class _Linker:
    """Links one frame at a time; what :func:`link_tracks` and :class:`FaceTracker` share."""

    max_gap: int
    max_distance: float
    frame: int = 0                                   # the next frame's index
    next_id: int = 0
    live: list[_Live] = field(default_factory=list)  # tracks that may still continue

    def step(self, faces: Sequence[Face]) -> list[tuple[int, int, Face, bool]]:
        """Link the faces of the next frame: ``(track id, frame, face, interpolated)`` for each face
        and for each face filled into a gap that a face of this frame closed (earlier frames)."""
        f = self.frame
        self.frame += 1
        self.live = [t for t in self.live if f - t.last_frame <= self.max_gap + 1]
        ordered = reading_order(faces)
        pairs = match_faces([t.last for t in self.live], ordered, self.max_distance)
        out: list[tuple[int, int, Face, bool]] = []
        taken = set()
        for i, j in pairs:
            track, face = self.live[i], ordered[j]
            span = f - track.last_frame
            for k in range(1, span):
                out.append((track.id, track.last_frame + k, _between(track.last, face, k / span), True))
            out.append((track.id, f, face, False))
            track.last_frame, track.last = f, face
            taken.add(j)
        for j, face in enumerate(ordered):  # new tracks, in reading order
            if j not in taken:
                self.live.append(_Live(self.next_id, f, face))
                out.append((self.next_id, f, face, False))
                self.next_id += 1
        return out

    def may_continue(self, track_id: int) -> bool:
        """Whether the track could still get a face in the next frame."""
        return any(t.id == track_id and self.frame - t.last_frame <= self.max_gap + 1 for t in self.live)


def _check_link(max_gap: int, max_distance: float) -> None:
    from ..errors import InvalidOptionError

    MAX_GAP.check(max_gap)
    if not (isinstance(max_distance, (int, float)) and max_distance > 0):
        raise InvalidOptionError(f"max_distance must be a positive number of face sizes, got {max_distance!r}",
                                 setting="max_distance", value=max_distance, allowed=(0, None))


def link_tracks(found: Sequence[Sequence[Face]], *, max_gap: int = DEFAULT_MAX_GAP,
                max_distance: float = MAX_DISTANCE) -> Tracks:
    """The faces found per frame (any order within a frame), linked into tracks.

    A track that misses at most ``max_gap`` frames goes on, the missing faces filled in linearly
    (``interpolated``, score 0); after a longer gap the face starts a new track. Ids from 0: by the
    frame a track starts in, then in reading order.
    """
    _check_link(max_gap, max_distance)
    linker = _Linker(max_gap, max_distance)
    rows: dict[int, dict[int, tuple[Face, bool]]] = {}
    for faces in found:
        for track_id, frame, face, filled in linker.step(faces):
            rows.setdefault(track_id, {})[frame] = (face, filled)
    tracks = []
    for track_id in range(linker.next_id):
        frames = rows[track_id]
        first = min(frames)
        ordered = [frames[k] for k in range(first, first + len(frames))]  # contiguous: gaps were filled
        tracks.append(Track(track_id, first, tuple(f for f, _ in ordered), tuple(i for _, i in ordered)))
    return Tracks(tuple(tracks), len(found))


# --------------------------------------------------------------------------------------------
# smoothing


@lru_cache(maxsize=512)
def _fit_weights(left: int, right: int, half: int, degree: int) -> np.ndarray:
    """Weights that give a local polynomial fit's value at the middle frame from the ``left`` frames
    before it, itself and the ``right`` frames after (tricube kernel of half-width ``half`` + 1)."""
    t = np.arange(-left, right + 1, dtype=np.float64)
    kernel = np.sqrt((1.0 - (np.abs(t) / (half + 1)) ** 3) ** 3)
    powers = np.vander(t, min(degree, len(t) - 1) + 1, increasing=True)
    # least squares of kernel·(powers @ c − x): c = pinv(kernel·powers) @ (kernel·x); the value at 0 is c[0]
    weights = np.linalg.pinv(kernel[:, None] * powers)[0] * kernel
    weights.flags.writeable = False
    return weights


@dataclass(frozen=True)
class _LocalFit:
    """Local polynomial regression (LOESS) of a face's 14 numbers (5 landmarks, then the box) over a
    window of ``half`` frames each side, cut where the face jumped (:data:`_JUMP`)."""

    half: int     # frames each side; 0: every face as detected
    degree: int

    @property
    def window(self) -> int:
        """Frames after a frame that its estimate reads."""
        return self.half

    @staticmethod
    def jumps(x: np.ndarray, size: np.ndarray) -> np.ndarray:
        """``[T-1]``: whether the face jumped between rows ``t`` and ``t+1`` (elementwise per row, so
        the same rows give the same answer in any chunk)."""
        step = x[1:, :10] - x[:-1, :10]
        moved = np.sqrt(np.mean(step[:, 0::2] ** 2 + step[:, 1::2] ** 2, axis=1))
        return moved > _JUMP * size[:-1, 0]

    def rows(self, x: np.ndarray, size: np.ndarray, first: int, count: int) -> np.ndarray:
        """Estimates of rows ``first … first+count-1`` of ``x`` (``[T, 14]``). ``x`` must hold the
        ``half`` rows before ``first`` (or from the track's start) and the ``half`` rows after the
        last (or to the track's end); a row's estimate depends on nothing else."""
        jumped = self.jumps(x, size)
        out = np.empty((count, x.shape[1]))
        for i, t in enumerate(range(first, first + count)):
            left = 0
            while left < self.half and t - left > 0 and not jumped[t - left - 1]:
                left += 1
            right = 0
            while right < self.half and t + right + 1 < len(x) and not jumped[t + right]:
                right += 1
            out[i] = _fit_weights(left, right, self.half, self.degree) @ x[t - left: t + right + 1]
        return out


def _as_rows(faces: Iterable[Face]) -> tuple[np.ndarray, np.ndarray]:
    """Faces as ``[T, 14]`` float64 rows (landmarks, box) and their sizes ``[T, 1]``."""
    faces = list(faces)
    x = np.array([np.concatenate([f.landmarks.reshape(-1), f.box]) for f in faces], np.float64).reshape(-1, 14)
    return x, np.array([[_size(f)] for f in faces], np.float64).reshape(-1, 1)


def _as_face(row: np.ndarray, like: Face) -> Face:
    return Face(row[10:14].astype(np.float32), row[:10].reshape(5, 2).astype(np.float32), like.score)


def check_strength(strength: float) -> float:
    """A smoothing strength in [0, 1] (:data:`gfp_core.options.SMOOTHING`)."""
    return SMOOTHING.check(strength)


def _filter_for(strength: float, fps: float | None) -> _LocalFit:
    from ..errors import InvalidOptionError

    rate = DEFAULT_FPS if fps is None else fps
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)) or not rate > 0 \
            or not math.isfinite(rate):
        raise InvalidOptionError(f"fps must be a positive number of frames per second, got {fps!r}",
                                 setting="fps", value=fps, allowed=(0, None))
    strength = check_strength(strength)
    half = 0 if strength == 0 else max(1, round(strength * _HALF_WINDOW_S * float(rate)))
    return _LocalFit(half, _DEGREE)


def look_ahead_frames(strength: float = DEFAULT_STRENGTH, fps: float | None = None) -> int:
    """How many frames past a frame its smoothing looks at (0 at strength 0)."""
    return _filter_for(strength, fps).window


def smooth_tracks(tracks: Tracks, strength: float = DEFAULT_STRENGTH, fps: float | None = None) -> Tracks:
    """The tracks with their landmarks and boxes smoothed in time (scores and flags unchanged).

    ``strength`` in [0, 1]: 0 gives ``tracks`` back untouched (every face as detected), 1 smooths
    most. ``fps``: the clip's frame rate (None: 30); the window is in seconds, so a clip smooths
    alike at any frame rate. The same numbers come from :class:`FaceTracker`.
    """
    f = _filter_for(strength, fps)
    if f.half == 0:
        return tracks
    out = []
    for track in tracks:
        x, size = _as_rows(track.faces)
        smooth = f.rows(x, size, 0, len(x))
        out.append(Track(track.id, track.first, tuple(_as_face(r, face) for r, face in zip(smooth, track.faces)),
                         track.interpolated))
    return Tracks(tuple(out), tracks.frames)


# --------------------------------------------------------------------------------------------
# streaming


@dataclass
class _Buffer:
    """A track's rows from frame ``base``: the first ``done`` already given out (kept for the fit's
    window behind the next ones), then those not yet given out."""

    base: int
    done: int = 0
    faces: list[Face] = field(default_factory=list)
    filled: list[bool] = field(default_factory=list)
    x: list[np.ndarray] = field(default_factory=list)
    size: list[np.ndarray] = field(default_factory=list)

    @property
    def end(self) -> int:  # one past the last known frame
        return self.base + len(self.faces)

    @property
    def pending(self) -> int:
        return len(self.faces) - self.done


class FaceTracker:
    """:func:`link_tracks` and :func:`smooth_tracks` for a clip streamed frame by frame.

    :meth:`push` takes the faces found in the next frame and returns the frames that became final,
    oldest first, each as its index and its faces by track id (as :meth:`Tracks.frame`); a frame is final
    ``delay`` frames after it was pushed (the gap a track may bridge plus the smoothing's
    look-ahead). :meth:`finish` returns the rest at the end of the clip. Memory stays bounded by
    ``delay`` frames of faces (and the smoothing window behind them), however long the clip; the
    faces are the same as from the whole clip at once.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, fps: float | None = None, *,
                 max_gap: int = DEFAULT_MAX_GAP, max_distance: float = MAX_DISTANCE) -> None:
        _check_link(max_gap, max_distance)
        self._filter = _filter_for(strength, fps)
        self._linker = _Linker(max_gap, max_distance)
        self._buffers: dict[int, _Buffer] = {}
        self._emitted = 0                  # frames given out
        self.look_ahead = self._filter.window
        self.delay = max_gap + self.look_ahead

    @property
    def emitted(self) -> int:
        """Frames given out so far."""
        return self._emitted

    def push(self, faces: Sequence[Face]) -> list[tuple[int, list[TrackedFace]]]:
        """The faces found in the next frame in; the frames that became final out, as
        ``(frame index, faces by track id)``, oldest first."""
        entries = sorted(self._linker.step(faces), key=lambda e: (e[0], e[1]))
        for track_id, frame, face, filled in entries:
            buf = self._buffers.setdefault(track_id, _Buffer(frame))
            assert frame == buf.end, "a track's faces arrive frame after frame"
            x, size = _as_rows([face])
            buf.faces.append(face)
            buf.filled.append(filled)
            buf.x.append(x[0])
            buf.size.append(size[0])
        return self._give(self._linker.frame - self.delay)

    def finish(self) -> list[tuple[int, list[TrackedFace]]]:
        """The frames still held back, at the end of the clip."""
        return self._give(self._linker.frame, final=True)

    def _give(self, upto: int, final: bool = False) -> list[tuple[int, list[TrackedFace]]]:
        """Frames ``_emitted`` … ``upto - 1``."""
        if upto <= self._emitted:
            return []
        half = self._filter.half
        out: list[list[TrackedFace]] = [[] for _ in range(upto - self._emitted)]
        for track_id in sorted(self._buffers):
            buf = self._buffers[track_id]
            start = buf.base + buf.done                  # this track's first frame not given out
            count = min(upto, buf.end) - start
            if count <= 0:
                continue
            faces = buf.faces[buf.done: buf.done + count]
            if half:
                # an ongoing track has `look_ahead` known frames past these (see `delay`)
                assert final or not self._linker.may_continue(track_id) or buf.pending >= count + half
                smooth = self._filter.rows(np.array(buf.x), np.array(buf.size), buf.done, count)
                faces = [_as_face(r, f) for r, f in zip(smooth, faces)]
            for k in range(count):
                out[start + k - self._emitted].append(TrackedFace(track_id, faces[k], buf.filled[buf.done + k]))
            buf.done += count
            drop = max(0, buf.done - half)                # keep `half` given-out rows for the next window
            for name in ("faces", "filled", "x", "size"):
                del getattr(buf, name)[:drop]
            buf.base, buf.done = buf.base + drop, buf.done - drop
        first, self._emitted = self._emitted, upto
        self._buffers = {k: b for k, b in self._buffers.items()
                         if b.pending or (not final and self._linker.may_continue(k))}
        return list(enumerate(out, start=first))
