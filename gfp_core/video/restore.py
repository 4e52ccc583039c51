"""The faces of a video file restored: two passes over the clip, bounded memory, resumable.

* **Pass 1** decodes the clip and detects the faces of every frame, keeping only the faces. The
  clip's faces are then followed and chosen as :meth:`Engine.run <gfp_core.engine.Engine.run>`
  does for a batch of frames: linked into tracks and smoothed (``smoothing`` > 0; a face's number is
  its track's, and the choice applies to whole tracks), or every frame on its own (0).
* **Pass 2** decodes the clip again and restores it ``chunk_frames`` frames at a time with those
  faces (``engine.run(chunk, faces=face_set.frames_between(a, b))``), so memory does not grow with
  the clip's length. Frames keep the source's timestamps; they are encoded in segments of
  ``segment_frames`` frames, which are joined packet for packet (no second encoding) into the
  result, with the source's audio.

Work in progress lives in a hidden folder beside the result, ``.NAME.parts/``: the faces found
(``faces.npz``, saved as detection goes) and every finished segment, each written atomically. An
interrupted run (Ctrl-C, or ``should_stop`` raising) leaves that folder and nothing at the
destination; the same call again skips the detection done and the finished segments. The work is
keyed by the source file (size, modification time, a hash of its first MiB) and by everything that
changes the pixels (the models' weights, the options, codec and quality), so a changed input or
option starts afresh. The folder is removed once the result is in place. With ``steady`` > 0 each
chunk's steadied faces carry into the next (:attr:`EngineResult.steady_last`), and each segment
keeps where its faces ended (``….steady.npz``), so a resumed clip comes out as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import weakref
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import InvalidVideoError
from ..face.types import Face
from ..image import write_image
from .join import join_videos
from .probe import VideoInfo, probe_video
from .reader import VideoFrame, read_frames
from .writer import VideoWriter, check_output

if TYPE_CHECKING:
    from ..engine import Engine, FaceSet
    from ..face.steady import Last

#: frames held by one call of the engine in pass 2
DEFAULT_CHUNK_FRAMES = 8
#: frames per segment: x264's own key-frame interval, so segments cost next to nothing in file size
DEFAULT_SEGMENT_FRAMES = 250
#: what the work folder holds; raised when that changes, so older folders are not misread
_WORK_FORMAT = 1
_FACES = "faces.npz"

#: ``on_progress(stage, done_frames, total_frames)``: stage 'detect' (pass 1; the total is the
#: container's count, an estimate for some formats) or 'restore' (pass 2; frames finished by an
#: earlier run count as done from the start). Raising in it stops the work.
VideoProgress = Callable[[str, int, int], None]


@dataclass
class VideoOutcome:
    """What :func:`restore_video` did. ``faces``: faces restored, summed over the frames;
    ``frames_without_faces``: frames where none was found (passed through, upscaled if asked);
    ``detected_frames`` / ``restored_frames``: frames detected and restored by this call (fewer
    than ``frames`` when an earlier run's work was kept); ``largest_chunk``: the most frames the
    engine was given at once; ``size``: (width, height) written; ``audio``: 'copy', the codec it
    was re-encoded to, or None (no audio); ``seconds``: this call's wall time."""

    path: Path
    frames: int
    faces: int
    frames_without_faces: int
    detected_frames: int
    restored_frames: int
    largest_chunk: int
    size: tuple[int, int]
    fps: Fraction
    audio: str | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def resumed_frames(self) -> int:
        """Frames whose restoration an earlier, interrupted run had finished."""
        return self.frames - self.restored_frames


def work_folder(dst: str | Path) -> Path:
    """The hidden folder beside ``dst`` where its restoration keeps what a rerun resumes from."""
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.parts")


def frame_name(index: int) -> str:
    """The PNG file of frame ``index`` (from 0) in ``frames_dir``: ``frame_000001.png`` is the first."""
    return f"frame_{index + 1:06d}.png"


def restore_video(engine: Engine, src: str | Path, dst: str | Path, *, frames_dir: str | Path | None = None,
                  chunk_frames: int = DEFAULT_CHUNK_FRAMES, segment_frames: int = DEFAULT_SEGMENT_FRAMES,
                  codec: str | None = None, crf: int | None = None, on_progress: VideoProgress | None = None,
                  should_stop: Callable[[], None] | None = None, resume: bool = True) -> VideoOutcome:
    """Restore the faces of the video ``src`` with ``engine`` into ``dst`` (its container follows
    the suffix: .mp4, .m4v, .mov, .mkv (H.264), .webm (VP9); ``codec``/``crf`` as
    :class:`~gfp_core.video.VideoWriter` takes them). Same frame count, frame rate and timestamps;
    the audio is copied (re-encoded only when the container does not take its codec);
    ``engine.options.upscale`` > 1 makes a larger video. ``frames_dir``: also write every output frame
    there as PNG (:func:`frame_name`), each atomically.

    ``resume``: keep the work of an earlier, interrupted call with the same input and options (see
    the module's docstring); False starts afresh. ``should_stop()`` raises to cancel; it is asked
    for every frame detected and within every chunk restored. An interrupted call leaves ``dst`` as
    it was.

    Raises :class:`~gfp_core.errors.InvalidVideoError` for a file that is no readable video (or
    turns out damaged or cut short while decoding), an output name or codec that cannot be
    written, and :class:`~gfp_core.errors.ImageTooLargeError` for frames whose result would be over
    the engine's output limit, both before any work where they can be known then.
    """
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if chunk_frames < 1 or segment_frames < 1:
        raise ValueError(f"chunk_frames and segment_frames must be at least 1, got {chunk_frames}, {segment_frames}")
    info = probe_video(src)
    codec = check_output(dst, codec, crf)
    engine.check_output_size((info.height, info.width))

    def report(stage: str, done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(stage, done, total)
        if should_stop is not None:
            should_stop()

    work = work_folder(dst)
    if not resume:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    source = _source_key(src)
    detect_key = _key({"format": _WORK_FORMAT, "source": source, "detection": _detection_settings(engine)})
    rate = min(float(info.fps), 1000.0)  # the tracks' time constants are in seconds
    restore_key = _key({"detect": detect_key, "pixels": _pixel_settings(engine, rate), "codec": codec, "crf": crf,
                        "chunk_frames": chunk_frames, "segment_frames": segment_frames,
                        "container": dst.suffix.lower(), "av": _av_version()})
    _tidy(work, restore_key)
    try:
        # pass 1: the faces of every frame
        found, sizes, complete = _load_faces(work / _FACES, detect_key)
        already = len(found)
        if not complete:
            _detect(engine, info, found, sizes, work / _FACES, detect_key, segment_frames, report)
        n = len(found)
        detected_frames = n - already if not complete else 0
        report("detect", n, n)
        face_set = engine.choose_found(found, sizes, fps=rate)  # as Engine.run chooses for a batch of frames

        # pass 2: restored a chunk at a time, encoded in segments
        spans = [(a, min(a + segment_frames, n)) for a in range(0, n, segment_frames)]
        parts = [work / f"{restore_key}-{i:06d}{dst.suffix.lower()}" for i in range(len(spans))]
        frames_path = Path(frames_dir) if frames_dir is not None else None
        steadied = engine.options.steady > 0
        finished = [_finished(part, b - a, frames_path, a, b, steadied) for part, (a, b) in zip(parts, spans)]
        kept = sum(b - a for (a, b), ok in zip(spans, finished) if ok)
        restored_frames, largest = _restore_segments(engine, info, face_set, spans, parts, finished, chunk_frames,
                                                     frames_path, codec, crf, should_stop, report)
        written, audio = join_videos(parts, dst, fps=info.fps, audio_from=src)
        if written != n:  # never expected: the pieces were counted when kept
            raise InvalidVideoError(f"{dst}: {written} frames were joined, but the clip has {n}; run again")
    except InvalidVideoError:  # a damaged or changed source: nothing here can be used again
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    out = probe_video(dst)
    notes = list(face_set.notes)
    if kept:
        notes.append(f"{kept} of {n} frames were restored by an earlier run and kept")
    if audio not in (None, "copy"):
        notes.append(f"the audio was re-encoded to {audio}: a {dst.suffix} file cannot hold "
                     f"{', '.join(info.audio_codecs)}")
    return VideoOutcome(
        path=dst, frames=n, faces=face_set.total, frames_without_faces=sum(1 for d in face_set.detected if d == 0),
        detected_frames=detected_frames, restored_frames=restored_frames, largest_chunk=largest,
        size=(out.width, out.height), fps=info.fps, audio=audio, seconds=time.perf_counter() - started, notes=notes)


# --------------------------------------------------------------------------------------------
# the two passes


def _detect(engine: Engine, info: VideoInfo, found: list[list[Face]], sizes: list[tuple[int, int]], store: Path,
            key: str, save_every: int, report: Callable[[str, int, int], None]) -> None:
    """Detect the frames after those in ``found`` (an earlier run's), adding to ``found`` and
    ``sizes``; what is found is saved every ``save_every`` frames and at the end."""
    frames = read_frames(info.path, info)
    try:
        _skip(frames, len(found), info.path)
        report("detect", len(found), max(info.frame_count, len(found)))
        for frame in frames:
            found.append(engine.detect([frame.image])[0])
            sizes.append(frame.image.shape[:2])
            if len(found) % save_every == 0:
                _save_faces(store, key, found, sizes, complete=False)
            report("detect", len(found), max(info.frame_count, len(found)))
    finally:
        frames.close()
    _save_faces(store, key, found, sizes, complete=True)


def _restore_segments(engine: Engine, info: VideoInfo, face_set: FaceSet, spans: Sequence[tuple[int, int]],
                      parts: Sequence[Path], finished: Sequence[bool], chunk_frames: int, frames_dir: Path | None,
                      codec: str, crf: int | None, should_stop: Callable[[], None] | None,
                      report: Callable[[str, int, int], None]) -> tuple[int, int]:
    """Pass 2: each segment not ``finished`` restored ``chunk_frames`` frames at a time into its
    part, atomically. Returns (frames restored, the most frames given to the engine at once)."""
    n = spans[-1][1]
    done = sum(b - a for (a, b), ok in zip(spans, finished) if ok)
    restored, largest = 0, 0
    report("restore", done, n)
    frames = read_frames(info.path, info)
    steadied = engine.options.steady > 0
    last: dict[int, Last] = {}  # the steadied faces the next chunk continues from
    try:
        for i, ((a, b), part, ok) in enumerate(zip(spans, parts, finished)):
            if ok:
                _skip(frames, b - a, info.path)
                continue
            if steadied and i and finished[i - 1]:  # the segment before was kept from an earlier run
                last = _load_steady(parts[i - 1])
            with VideoWriter(part, info.fps, codec=codec, crf=crf, time_base=info.time_base) as writer:
                for start in range(a, b, chunk_frames):
                    if start > a:  # the chunk before; the segment's last is told once the segment is kept
                        report("restore", done, n)
                    chunk = _take(frames, min(chunk_frames, b - start), info.path)
                    result = engine.run([f.image for f in chunk], should_stop=should_stop,
                                        faces=face_set.frames_between(start, start + len(chunk)), steady_from=last)
                    last = result.steady_last
                    largest = max(largest, len(chunk))
                    for k, (frame, image) in enumerate(zip(chunk, result.frames)):
                        writer.write(image, frame.time, frame.duration)
                        if frames_dir is not None:
                            write_image(frames_dir / frame_name(start + k), image)
                    restored += len(chunk)
                    done += len(chunk)
                    del chunk, result  # before the next chunk is decoded
                if steadied:  # before the segment counts as finished
                    _save_steady(part, last)
            if frames_dir is not None:
                _frames_marker(part).touch()
            report("restore", done, n)
    finally:
        frames.close()
    return restored, largest


def _take(frames: Iterator[VideoFrame], count: int, src: Path) -> list[VideoFrame]:
    chunk = [frame for _, frame in zip(range(count), frames)]
    if len(chunk) < count:
        raise InvalidVideoError(f"{src}: fewer frames than when its faces were found; was the file changed? "
                                f"Run again")
    return chunk


def _skip(frames: Iterator[VideoFrame], count: int, src: Path) -> None:
    """Decode past ``count`` frames (their work is done): exact, where seeking lands on key frames."""
    for _ in range(count):
        if next(frames, None) is None:
            raise InvalidVideoError(f"{src}: fewer frames than an earlier run found; was the file changed? "
                                    f"Run again")


# --------------------------------------------------------------------------------------------
# the work folder


def _finished(part: Path, count: int, frames_dir: Path | None, a: int, b: int, steadied: bool = False) -> bool:
    """Whether an earlier run finished this segment: its file holds all its frames and, when PNG
    frames are asked for, they were written; steadied, where its faces ended was kept. A segment
    that is not finished is removed."""
    if not part.is_file():
        return False
    ok = _packet_count(part) == count and (not steadied or _steady_file(part).is_file())
    if ok and frames_dir is not None:
        ok = _frames_marker(part).is_file() and all((frames_dir / frame_name(i)).is_file() for i in range(a, b))
    if not ok:
        for leftover in (part, _frames_marker(part), _steady_file(part)):
            leftover.unlink(missing_ok=True)
    return ok


def _frames_marker(part: Path) -> Path:
    return part.with_name(part.name + ".frames")


def _steady_file(part: Path) -> Path:
    return part.with_name(part.name + ".steady.npz")


def _save_steady(part: Path, last: dict[int, Last]) -> None:
    """Where a segment's steadied faces ended (arrays, no pickle), written atomically."""
    ids = sorted(last)
    arrays = {"tracks": np.array(ids, np.int64),
              "crops": np.stack([last[k].crop for k in ids]) if ids else np.zeros((0, 1, 1, 3), np.float32),
              "affines": np.array([last[k].affine for k in ids], np.float64).reshape(-1, 2, 3),
              "landmarks": np.array([last[k].landmarks for k in ids], np.float64).reshape(-1, 5, 2)}
    _write_arrays(_steady_file(part), arrays)


def _load_steady(part: Path) -> dict[int, Last]:
    """What :func:`_save_steady` kept for the segment before (nothing if it is unreadable: the
    faces then start afresh, as after a cut)."""
    from ..face.steady import Last

    try:
        with np.load(_steady_file(part), allow_pickle=False) as data:
            return {int(k): Last(c, a, lm) for k, c, a, lm in
                    zip(data["tracks"], data["crops"], data["affines"], data["landmarks"])}
    except (OSError, ValueError, KeyError):
        return {}


def _packet_count(part: Path) -> int:
    import av

    try:
        with av.open(str(part)) as box:
            return sum(1 for p in box.demux(box.streams.video[0]) if p.size)
    except (av.FFmpegError, IndexError):
        return -1


def _tidy(work: Path, restore_key: str) -> None:
    """Remove what other inputs or options left (their segments) and what a killed process left
    half-written (hidden partial files)."""
    for entry in work.iterdir():
        if entry.name == _FACES or entry.name.startswith(f"{restore_key}-"):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _save_faces(store: Path, key: str, found: Sequence[Sequence[Face]], sizes: Sequence[tuple[int, int]],
                complete: bool) -> None:
    """The faces of every frame so far as arrays (no pickle), written atomically."""
    faces = [f for fs in found for f in fs]
    arrays = {
        "key": np.array(key), "complete": np.array(complete),
        "counts": np.array([len(fs) for fs in found], np.int32), "sizes": np.array(sizes, np.int32).reshape(-1, 2),
        "boxes": np.array([f.box for f in faces], np.float32).reshape(-1, 4),
        "landmarks": np.array([f.landmarks for f in faces], np.float32).reshape(-1, 5, 2),
        "scores": np.array([f.score for f in faces], np.float32)}
    _write_arrays(store, arrays)


def _write_arrays(store: Path, arrays: dict[str, np.ndarray]) -> None:
    """``arrays`` as an .npz file (no pickle), written atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    temporary = store.with_name(f".{store.name}.{os.getpid()}.partial")
    temporary.write_bytes(buffer.getvalue())
    os.replace(temporary, store)


def _load_faces(store: Path, key: str) -> tuple[list[list[Face]], list[tuple[int, int]], bool]:
    """(faces per frame, frame sizes, whether every frame was detected) an earlier run saved for
    ``key``; nothing when there is no such file, or it is another input's or unreadable."""
    try:
        with np.load(store, allow_pickle=False) as data:
            if str(data["key"]) != key:
                raise ValueError("another input's faces")
            counts, boxes, landmarks, scores = data["counts"], data["boxes"], data["landmarks"], data["scores"]
            sizes = [(int(h), int(w)) for h, w in data["sizes"]]
            complete = bool(data["complete"])
    except (OSError, ValueError, KeyError):
        store.unlink(missing_ok=True)
        return [], [], False
    found, at = [], 0
    for count in counts:
        found.append([Face(boxes[i].copy(), landmarks[i].copy(), float(scores[i])) for i in range(at, at + count)])
        at += count
    return found, sizes, complete


# --------------------------------------------------------------------------------------------
# what the work depends on


def _key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _source_key(src: Path) -> dict[str, Any]:
    stat = src.stat()
    with open(src, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head": head}


def _detection_settings(engine: Engine) -> dict[str, Any]:
    o = engine.options
    detector = engine.detector
    return {"detector": getattr(detector, "name", type(detector).__name__), "weights": _digest(detector),
            "score_threshold": o.score_threshold, "detect_max_side": o.detect_max_side,
            "min_face_size": o.min_face_size, "min_eye_distance": o.min_eye_distance}


def _pixel_settings(engine: Engine, fps: float) -> dict[str, Any]:
    """Everything besides detection that changes a restored frame's pixels."""
    options = asdict(engine.options)
    for only_reports in ("coverage", "limit_reason", "max_output_pixels", "memory_budget_mb"):
        options.pop(only_reports)
    options["fps"] = options["fps"] or fps
    model = engine.model
    param = next(model.parameters())
    background = engine.background_upsampler
    return {
        "options": options, "model": _digest(model), "model_class": type(model).__name__,
        "device": param.device.type, "dtype": str(param.dtype), "fast_kernels": getattr(model, "fast_kernels", None),
        "face_size": engine.face_size, "batch_size": engine.batch_size,
        "parser": _digest(engine.parser) if engine.options.mask == "parsing" else None,
        "background": None if background is None else {
            "model": _digest(background.model), "scale": background.scale, "tile": background.tile,
            "tile_pad": background.tile_pad, "pre_pad": background.pre_pad}}


_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _digest(thing: Any) -> str | None:
    """A hash of a model's weights (a detector's through the module it runs, when it has one);
    remembered per module, which the engine never changes."""
    import torch

    module = thing if isinstance(thing, torch.nn.Module) else getattr(thing, "model", None)
    if not isinstance(module, torch.nn.Module):
        return None
    try:
        return _DIGESTS[module]
    except KeyError:
        pass
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    _DIGESTS[module] = digest = h.hexdigest()[:20]
    return digest


def _av_version() -> str:
    import av

    return av.__version__
