"""What the demo does with one photo or one clip, without any Gradio: load (and keep) the models, run
:class:`gfp_core.engine.Engine` on a photo (or :func:`gfp_core.video.restore_video` on a clip), and
turn the result into what the page shows and offers for download.

The models are loaded once and shared by every request; each request gets its own light ``Engine``
around them, so concurrent requests with different settings never interfere.
"""
from __future__ import annotations

import io
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from gfp_core.errors import GFPError, InvalidImageError, InvalidOptionError, WeightsNotFoundError
from gfp_core.engine import Engine, EngineResult, detect_frames
from gfp_core import options, video
from gfp_core.face.detection import EmbeddedRetinaFace, load_detector
from gfp_core.face.preview import draw_faces
from gfp_core.face.select import parse_indices
from gfp_core.face.steady import DEFAULT_STRENGTH as DEFAULT_STEADY
from gfp_core.image import DEFAULT_MAX_PIXELS, read_picture, to_picture, write_image
from gfp_core.weights import LoadedModel, ModelInfo, load_model, load_model_with_info

from .models import model_choices, model_title
from .video_limits import VideoLimits

log = logging.getLogger("web.engine")

# the page's choices are gfp_core.options' (one list for every front end)
#: the GFPGAN versions, and the other face restorers whose weights are here when the server starts
MODEL_OPTIONS = model_choices()
MODEL_CHOICES = MODEL_OPTIONS.names
FACE_CHOICES = options.SELECTS.names
BACKGROUND_CHOICES = options.BACKGROUNDS.names
FORMAT_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
OUTPUT_FORMATS = options.Choices("output_format", (
    options.Choice("png", "lossless, keeps 16-bit and alpha"), options.Choice("jpeg", "small, lossy"),
    options.Choice("webp", "small, lossy, keeps alpha")), what="the download's file format")
assert OUTPUT_FORMATS.names == tuple(FORMAT_SUFFIXES)
#: canonical option names → the page's control labels: a refused option is named by its control
LABELS = {"model": "Face model", "fidelity": "Fidelity", "visibility": "Visibility", "upscale": "Upscale",
          "detector": "Face detector", "threshold": "Detection threshold", "select": "Which faces",
          "indices": "Face numbers to restore", "mask": "Blending mask", "background": "Background",
          "output_format": "Download format", "smoothing": "Smoothing", "steady": "Steady faces"}
#: the words messages use for settings: the controls' labels; the image limits are the server's (None:
#: a visitor cannot raise them, so a message over a limit says what else to do)
MESSAGE_WORDS = {**LABELS, "max_pixels": None, "max_output_pixels": None}
PREVIEW_MAX_SIDE = 2048  # the page shows at most this; the download has every pixel
MAX_INDICES_CHARS = 200  # 'Face numbers' longer than this cannot be a real list of faces
#: the models the page's defaults use, loaded when the server starts rather than on the first visit
DEFAULT_MODELS = ("v1.4",)
#: frames a clip is restored at a time: memory stays that of a few frames, and progress comes that often
VIDEO_CHUNK_FRAMES = 4
MAX_CLIP_NOTES = 6  # a crowd over the face limit gives a note per frame: the page shows the first few
MAX_FPS = options.FPS.high  # the tracks' highest rate (a broken header can claim any)


class TimeLimitError(GFPError, TimeoutError):
    """A request that worked longer than the server allows; it was stopped."""


def short(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: messages name a bad input without echoing all of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class RestoreOptions:
    """Every control of the page. The defaults are what the page starts with."""

    model: str = "v1.4"
    fidelity: float = 1.0
    visibility: float = 1.0
    upscale: int = 2
    detector: str = "retinaface_resnet50"
    threshold: float = 0.9
    faces: str = "all"
    indices: str = ""
    mask: str = "parsing"
    background: str = "lanczos"
    output_format: str = "png"

    def check(self) -> None:
        """Refuse impossible settings with a message a person can act on (API callers can send anything):
        gfp_core.options' checks (the page's narrower upscale and threshold ranges), the message naming
        the control by its label (:data:`LABELS`)."""
        with options.speaking(LABELS):
            MODEL_OPTIONS.check(self.model)
            options.FIDELITY.check(self.fidelity)
            options.VISIBILITY.check(self.visibility)
            options.WEB_UPSCALE.check(self.upscale)  # 3.5 would silently become 3: refused instead
            options.DETECTORS.check(self.detector)
            options.WEB_THRESHOLD.check(self.threshold)
            options.SELECTS.check(self.faces)
            options.MASKS.check(self.mask)
            options.BACKGROUNDS.check(self.background)
            OUTPUT_FORMATS.check(self.output_format)
            if not isinstance(self.indices, str) or len(self.indices) > MAX_INDICES_CHARS:
                raise InvalidOptionError(f"{{setting}} must be a short list such as 0, 2 (at most {MAX_INDICES_CHARS} "
                                         f"characters), got {short(self.indices)}", setting="indices",
                                         value=self.indices)


@dataclass(frozen=True)
class VideoOptions(RestoreOptions):
    """The Video tab's controls: the photo's (but for the download format: a clip comes back as MP4)
    and ``smoothing`` and ``steady``. A clip keeps its size unless asked (upscale 1)."""

    upscale: int = 1
    smoothing: float = 0.5
    steady: float = DEFAULT_STEADY

    def check(self) -> None:
        super().check()
        with options.speaking(LABELS):
            options.SMOOTHING.check(self.smoothing)
            options.STEADY.check(self.steady)


@dataclass
class RestoreOutcome:
    """What one restore gives the page."""

    before: np.ndarray          # the input, resized to the result's size (for the slider), ≤ PREVIEW_MAX_SIDE
    after: np.ndarray           # the result, same size as ``before``
    face_pairs: list[tuple[np.ndarray, str]]  # each restored face: crop before | after, with a caption
    num_detected: int
    num_restored: int
    file: Path                  # the full-resolution result in the chosen format
    seconds: float
    notes: list[str] = field(default_factory=list)  # fallbacks and limits the user should know about
    weights_note: str | None = None  # set when the GFPGAN weights are not the verified published ones
    backend: str = "torch"      # what ran the face model's forward pass: torch or openvino

    @property
    def summary(self) -> str:
        if self.num_detected == 0:
            text = "No face found. Try a lower detection threshold or another detector."
        else:
            plural = "s" if self.num_detected != 1 else ""
            text = f"{self.num_detected} face{plural} found, {self.num_restored} restored"
        return f"{text} ({self.seconds:.1f} s)"


@dataclass
class ClipOutcome:
    """What one video restore gives the page."""

    file: Path                  # the restored clip: MP4, H.264, the source's audio (copied, else AAC)
    frames: int
    faces: int                  # faces restored, summed over the frames
    frames_without_faces: int   # frames where no face was found (passed through, resized if asked)
    size: tuple[int, int]       # (width, height)
    fps: float
    audio: str | None           # 'copy', the codec the audio was re-encoded to, or None (a silent clip)
    seconds: float
    notes: list[str] = field(default_factory=list)
    weights_note: str | None = None
    backend: str = "torch"

    @property
    def summary(self) -> str:
        if self.faces == 0:
            text = (f"No face found in {self.frames} frames. Try a lower detection threshold or another detector."
                    if self.frames_without_faces == self.frames else f"No face restored in {self.frames} frames.")
        else:
            text = f"{self.frames} frames, {self.faces} face{'s' if self.faces != 1 else ''} restored"
            if self.frames_without_faces:
                text += f", {self.frames_without_faces} frame{'s' if self.frames_without_faces != 1 else ''} " \
                        f"without a face"
        return f"{text} ({self.seconds:.1f} s)"


class ModelCache:
    """Loaded models by key, least recently used dropped first. Loading happens once per key even
    when several requests ask at the same moment."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}

    def peek(self, key: tuple) -> Any | None:
        """The value if it is loaded already (nothing is loaded, nothing moves in the order)."""
        with self._lock:
            return self._items.get(key)

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = load()
            with self._lock:
                self._items[key] = value
                self._loading.pop(key, None)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
            return value


class RestoreEngine:
    """Runs restores for the page and the API. ``device``/``dtype``: gfp_core's policy (auto = the
    best accelerator, fp32). ``max_pixels`` bounds the input, ``max_output_pixels`` the result
    (input pixels × upscale²), ``max_faces`` the faces restored per photo (the largest are kept),
    ``time_limit`` the seconds one request may work, ``video_limits`` the clips taken (length, frames,
    frame size, file size). ``allow_unverified``: accept weights whose SHA-256 differs from the
    registry's (outcomes then carry a ``weights_note``). ``backend``: what runs the GFPGAN versions'
    forward pass (gfp_core.options.BACKENDS; None: the library's default; where 'openvino' cannot run,
    PyTorch).

    Result files go to ``output_dir``; a background thread removes them ``keep_s`` seconds after
    they were written, and :meth:`close` removes the folder."""

    def __init__(self, *, device: str | None = None, dtype: str | None = None, backend: str | None = None,
                 max_pixels: int = 40_000_000, max_output_pixels: int = 100_000_000, max_faces: int = 20,
                 time_limit: float = 300, allow_unverified: bool | None = None,
                 max_models: int = 2, output_dir: str | Path | None = None, keep_s: float = 3600,
                 video_limits: VideoLimits | None = None) -> None:
        self.device = device
        self.dtype = dtype
        self.backend = backend
        self.max_pixels = min(max_pixels, DEFAULT_MAX_PIXELS)
        self.max_output_pixels = max_output_pixels
        self.max_faces = max_faces
        self.video_limits = video_limits or VideoLimits()
        self.time_limit = time_limit
        self.allow_unverified = allow_unverified
        self.restorers = ModelCache(max_models)
        self.helpers = ModelCache(6)  # detectors, parsers, background upsamplers: small
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="gfp-web-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.keep_s = keep_s
        self._count_lock = threading.Lock()
        self.running = 0
        self.peak_running = 0
        self._closed = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="gfp-web-results", daemon=True)
        self._sweeper.start()

    # --- models -------------------------------------------------------------------------------

    def restorer_model(self, name: str) -> LoadedModel:
        """Face model ``name`` (a GFPGAN version or another restorer), loaded once, with what its weights are
        beside it."""
        def load(backend: str | None) -> LoadedModel:
            return load_model_with_info(name, device=self.device, dtype=self.dtype,
                                        allow_unverified=self.allow_unverified, backend=backend)

        def load_for_backend() -> LoadedModel:
            # OpenVINO runs GFPGAN only: the other restorers run on PyTorch whatever the server's backend
            if name not in options.MODELS:
                return load("torch")
            try:
                return load(self.backend)
            except InvalidOptionError as exc:
                if exc.setting != "backend":
                    raise
                # a server set to openvino where this version or the device cannot have it: the page goes
                # on with PyTorch (the summary says which ran), and the log says why
                log.warning("%s runs on PyTorch: %s", model_title(name), one_line(str(exc)))
                return load("torch")
        return self.restorers.get(("gfpgan", name), load_for_backend)

    def preload(self, names: tuple[str, ...] = DEFAULT_MODELS) -> None:
        """Load the page's default models now (at start-up: on ZeroGPU, models placed while the
        server starts are shared by every GPU call). A model that cannot be had is logged, and its
        requests say why."""
        jobs = [(model_title(n), lambda n=n: self.restorer_model(n)) for n in names]
        jobs += [("face detector", lambda: self.detector(RestoreOptions.detector)),
                 ("face parser", self.parser)]
        for what, load in jobs:
            try:
                load()
            except GFPError as exc:
                log.warning("%s not loaded at start-up: %s", what, one_line(str(exc)))

    def weights_notes(self) -> list[str]:
        """What the page should say about the GFPGAN weights loaded so far (unverified, random)."""
        notes = [weights_note(name, loaded.info) for name in MODEL_CHOICES
                 if (loaded := self.restorers.peek(("gfpgan", name))) is not None]
        return [n for n in notes if n]

    def detector(self, name: str) -> tuple[Any, str | None]:
        """The detector, and a note when the embedded one stands in for weights that cannot be had."""
        def load():
            detector = load_detector(name, device=self.device, allow_unverified=self.allow_unverified)
            note = None
            if isinstance(detector, EmbeddedRetinaFace) and name != "embedded":
                note = (f"The {name} detector's weights are not available here, so the embedded RetinaFace "
                        f"MobileNet-0.25 detector was used.")
            return detector, note
        return self.helpers.get(("detector", name), load)

    def parser(self) -> tuple[Any, str | None]:
        """ParseNet for the 'parsing' mask, or None and a note when its weights cannot be had."""
        def load():
            try:
                return load_model("parsenet", device=self.device, allow_unverified=self.allow_unverified), None
            except WeightsNotFoundError as exc:
                log.warning("face parsing unavailable: %s", str(exc).splitlines()[0])
                return None, ("The face-parsing weights (ParseNet) are not available here, so the faces were "
                              "blended with the ellipse mask instead.")
        return self.helpers.get(("parser", "parsenet"), load)

    def background_upsampler(self, name: str):
        from gfp_core.background import load_background_upsampler

        return self.helpers.get(("background", name), lambda: load_background_upsampler(
            name, device=self.device, allow_unverified=self.allow_unverified))

    # --- one restore --------------------------------------------------------------------------

    def restore(self, image_path: str | Path, options: RestoreOptions,
                progress: Callable[[float, str], None] | None = None) -> RestoreOutcome:
        """Restore the faces of the image file ``image_path`` with ``options``. ``progress(fraction,
        text)`` hears of each stage; without it, stages go to a tqdm bar (which a Gradio page with
        ``gr.Progress(track_tqdm=True)`` shows)."""
        options.check()
        start = time.perf_counter()
        clock = Deadline(self.time_limit)
        with StageReporter(progress) as tell:
            self._enter()
            try:
                return self._restore(Path(image_path), options, start, clock, tell)
            finally:
                self._leave()

    def _restore(self, image_path: Path, options: RestoreOptions, start: float, clock: Deadline,
                 tell: Callable[[float, str], None]) -> RestoreOutcome:
        upscale = int(options.upscale)
        picture = read_picture(image_path, self.max_pixels)
        height, width = picture.rgb.shape[:2]
        if height * width * upscale ** 2 > self.max_output_pixels:
            raise InvalidImageError(
                f"the result would be {width * upscale}x{height * upscale} pixels, over this "
                f"demo's limit of {self.max_output_pixels / 1e6:.0f} megapixels; choose a smaller upscale")
        # one engine call: it finds the faces (numbered as the faces-found preview numbers them, which
        # is what 'Faces by number' takes), chooses, keeps at most max_faces (the largest) and restores
        engine, notes, model_info = self._engine(options, clock, tell)

        stage_now = ["finding faces"]

        def on_progress(stage: str, fraction: float, faces: int) -> None:
            text = {"detect": "Finding faces", "paste": "Blending the faces in"}.get(
                stage, f"Restoring {faces} face{'s' if faces != 1 else ''}")
            stage_now[0] = text.lower()
            tell(0.1 + 0.85 * fraction, text)

        # the budget is checked at every stage and between the blocks of every forward pass
        result = engine.run(picture, on_progress=on_progress, should_stop=lambda: clock.check(stage_now[0]))
        if result.num_found[0]:  # the summary already says when no face was found
            notes += result.notes
        clock.check("blending the faces in")
        tell(0.95, "Saving")
        file = self._save(result.image, image_path.stem, options.output_format)
        outcome = RestoreOutcome(
            before=_preview(cv2.resize(picture.rgb8, result.image.shape[1::-1], interpolation=cv2.INTER_CUBIC)
                            if upscale != 1 else picture.rgb8),
            after=_preview(_display_rgb(result.image)),
            face_pairs=_face_pairs(result),
            num_detected=result.num_found[0], num_restored=result.num_restored[0],
            file=file, seconds=time.perf_counter() - start, notes=notes,
            weights_note=weights_note(options.model, model_info), backend=model_info.backend)
        log.info("restored %s: %s", image_path.name, outcome.summary)
        return outcome

    def _engine(self, options: RestoreOptions, clock: Deadline, tell: Callable[[float, str], None],
                **clip: Any) -> tuple[Engine, list[str], ModelInfo]:
        """The :class:`Engine` for ``options`` on the shared models (``clip``: the clip's engine
        options: smoothing, steady and fps), the notes about stand-ins for missing weights, and what the
        GFPGAN weights are."""
        indices = parse_indices(options.indices) if options.faces == "indices" else None
        tell(0.0, f"Loading {model_title(options.model)}")
        model, model_info = self.restorer_model(options.model)
        detector, detector_note = self.detector(options.detector)
        notes = [detector_note] if detector_note else []
        mask, parser = options.mask, None
        if mask == "parsing":
            parser, parser_note = self.parser()
            if parser is None:
                mask = "ellipse"
                notes.append(parser_note)
        background = None
        if options.background != "lanczos":
            tell(0.02, f"Loading {options.background}")
            background = self.background_upsampler(options.background)
        clock.check("loading the models")
        engine = Engine(model, detector=detector, parser=parser, background=background, upscale=int(options.upscale),
                        fidelity=options.fidelity, visibility=options.visibility, mask=mask,
                        score_threshold=options.threshold, select=options.faces, indices=indices,
                        face_limit=self.max_faces, limit_reason="this demo's limit",
                        max_output_pixels=self.max_output_pixels, **clip)
        return engine, notes, model_info

    # --- one clip -----------------------------------------------------------------------------

    def restore_video(self, video_path: str | Path, options: VideoOptions,
                      progress: Callable[[float, str], None] | None = None) -> ClipOutcome:
        """Restore the faces of the clip ``video_path`` with ``options`` into an MP4 (H.264, the clip's
        audio copied, or AAC where MP4 cannot hold it). The clip is checked against
        :attr:`video_limits` from its headers first. ``progress(fraction, text)`` hears of every few
        frames ("Restoring frame 12 of 48"); without it, a tqdm bar per report (see :meth:`restore`)."""
        options.check()
        start = time.perf_counter()
        clock = Deadline(self.time_limit, "this clip",
                         "try a shorter clip, a smaller upscale, or the Lanczos background")
        video_path = Path(video_path)
        info = self.video_limits.check(video_path)  # before a frame is decoded
        with StageReporter(progress) as tell:
            self._enter()
            try:
                return self._restore_video(video_path, info, options, start, clock, tell)
            finally:
                self._leave()

    def _restore_video(self, src: Path, info: video.VideoInfo, options: VideoOptions, start: float,
                       clock: Deadline, tell: Callable[[float, str], None]) -> ClipOutcome:
        # the clip's own rate times the tracks (their smoothing is in seconds)
        engine, notes, model_info = self._engine(options, clock, tell, smoothing=options.smoothing, steady=options.steady,
                                                 fps=min(float(info.fps), MAX_FPS))
        stage_now = ["finding faces"]

        def on_progress(stage: str, done: int, total: int) -> None:
            frame = f"frame {min(done + 1, total)} of {total}"  # the frame being worked on
            if stage == "detect":
                text, fraction = f"Finding faces in {frame}", 0.05 + 0.2 * done / max(total, 1)
            else:
                text, fraction = f"Restoring {frame}", 0.25 + 0.72 * done / max(total, 1)
            stage_now[0] = text[0].lower() + text[1:]
            tell(fraction, text)

        dst = self._result_path(src.stem, ".mp4", "video")
        try:
            # a web request never resumes: an interrupted one is gone with its folder
            done = video.restore_video(engine, src, dst, chunk_frames=VIDEO_CHUNK_FRAMES, on_progress=on_progress,
                                       should_stop=lambda: clock.check(stage_now[0]), resume=False)
        except BaseException:
            shutil.rmtree(dst.parent, ignore_errors=True)
            raise
        if done.faces:  # the summary already says when no face was found
            notes += _at_most(done.notes, MAX_CLIP_NOTES)
        outcome = ClipOutcome(file=dst, frames=done.frames, faces=done.faces,
                              frames_without_faces=done.frames_without_faces, size=done.size, fps=float(done.fps),
                              audio=done.audio, seconds=time.perf_counter() - start, notes=notes,
                              weights_note=weights_note(options.model, model_info), backend=model_info.backend)
        log.info("restored %s: %s", src.name, outcome.summary)
        return outcome

    def detect(self, image_path: str | Path, detector: str = "retinaface_resnet50",
               threshold: float = 0.9) -> tuple[np.ndarray, int]:
        """The photo with every face found numbered (the numbers 'Faces by number' takes)."""
        RestoreOptions(detector=detector, threshold=threshold).check()
        clock = Deadline(self.time_limit)
        picture = read_picture(image_path, self.max_pixels)
        # the engine's own detection stage: the numbers drawn are those a restore reports
        faces = detect_frames(self.detector(detector)[0], [picture.rgb8], score_threshold=threshold)[0]
        clock.check("finding faces")
        return _preview(draw_faces(picture.rgb8, faces)), len(faces)

    # --- bookkeeping --------------------------------------------------------------------------

    def _enter(self) -> None:
        with self._count_lock:
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
            log.info("restore started (%d running)", self.running)

    def _leave(self) -> None:
        with self._count_lock:
            self.running -= 1
            log.info("restore finished (%d running)", self.running)

    def _save(self, image: np.ndarray, stem: str, output_format: str) -> Path:
        return write_image(self._result_path(stem, FORMAT_SUFFIXES[output_format], "photo"), image)

    def _result_path(self, stem: str, suffix: str, fallback: str) -> Path:
        """Where a new result goes: ``<stem>_restored<suffix>`` in a folder of its own (names never
        clash), the stem cut to safe characters (``fallback`` when none is left); old results go first."""
        self.forget_old_results()
        folder = self.output_dir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        safe_stem = "".join(c for c in stem if c.isalnum() or c in "-_")[:60] or fallback
        return folder / f"{safe_stem}_restored{suffix}"

    def forget_old_results(self) -> None:
        """Remove result folders written more than ``keep_s`` seconds ago."""
        cutoff = time.time() - self.keep_s
        try:
            folders = list(self.output_dir.iterdir())
        except OSError:
            return  # closed
        for folder in folders:
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder)
            except OSError:
                pass  # another request is cleaning up too

    def _sweep(self) -> None:
        """Background thread: old results go even when no request comes to trigger it."""
        while not self._closed.wait(max(0.5, min(self.keep_s / 2, 60))):
            self.forget_old_results()

    def close(self) -> None:
        """Stop the cleaning thread and remove every result (the server is shutting down)."""
        self._closed.set()
        shutil.rmtree(self.output_dir, ignore_errors=True)


class Deadline:
    """The time budget of one request, checked at every stage; ``what`` and ``advice`` for the message."""

    def __init__(self, seconds: float, what: str = "this photo",
                 advice: str = "try a smaller photo or upscale, fewer faces, or the Lanczos background") -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.what = what
        self.advice = advice

    def check(self, stage: str) -> None:
        if time.monotonic() > self.end:
            raise TimeLimitError(f"{self.what} needed more than this demo's limit of {self.seconds:g} s "
                                 f"(stopped while {stage}); {self.advice}")


class StageReporter:
    """Stage reports to ``progress``, or else to a tqdm bar per stage: a Gradio event with
    ``gr.Progress(track_tqdm=True)`` shows those, also when the restore runs in a ZeroGPU worker that
    cannot be handed a callback."""

    def __init__(self, progress: Callable[[float, str], None] | None) -> None:
        self.progress = progress
        self.bar: tqdm | None = None
        self.done = 0

    def __enter__(self) -> Callable[[float, str], None]:
        return self

    def __call__(self, fraction: float, text: str) -> None:
        if self.progress is not None:
            self.progress(fraction, text)
            return
        if self.bar is None or self.bar.desc != text:
            self._close_bar()
            # a new bar starts at 0 and is moved to the whole work done so far: Gradio follows a bar's
            # updates, not its ``initial``
            self.bar = tqdm(total=100, desc=text, file=io.StringIO(), leave=False)
        self.done = max(self.done, min(100, round(fraction * 100)))
        self.bar.update(self.done - self.bar.n)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __exit__(self, *exc: object) -> None:
        self._close_bar()


def weights_note(name: str, info: ModelInfo) -> str | None:
    """What a visitor should know about model ``name``'s weights: seeded random, or unverified."""
    if info.synthetic:
        return (f"{model_title(name)} runs on seeded random weights here (a test setup), not the published model: "
                f"its faces are not real restorations.")
    if not info.verified:
        return (f"{model_title(name)} runs on unverified weights here (their SHA-256 is not the published one): "
                f"results may differ from the published model.")
    return None


def one_line(text: str) -> str:
    """A multi-line message as one log line."""
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())


def _at_most(notes: list[str], count: int) -> list[str]:
    if len(notes) <= count:
        return list(notes)
    return notes[:count - 1] + [f"… and {len(notes) - count + 1} more notes like these"]


def _display_rgb(image: np.ndarray) -> np.ndarray:
    """Any result layout (grey, grey or colour with alpha, 16-bit) as 8-bit RGB for the screen."""
    picture = to_picture(image)
    if picture.alpha is None:
        return picture.rgb8
    alpha = picture.alpha[..., None].astype(np.float32) / picture.max_value  # shown over white, as viewers do
    return (picture.rgb8 * alpha + 255 * (1 - alpha) + 0.5).astype(np.uint8)


def _preview(image: np.ndarray) -> np.ndarray:
    side = max(image.shape[:2])
    if side <= PREVIEW_MAX_SIDE:
        return image
    scale = PREVIEW_MAX_SIDE / side
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _face_pairs(result: EngineResult) -> list[tuple[np.ndarray, str]]:
    """Each restored face as one picture, aligned crop before | after, captioned with its number."""
    if not result.faces:
        return []
    gap = np.full((result.crops.shape[1], 8, 3), 255, np.uint8)
    return [(np.concatenate([before, gap, after], axis=1), f"Face #{number}: before | after (score {face.score:.2f})")
            for number, face, before, after in zip(result.numbers.tolist(), result.faces, result.crops,
                                                   result.restored)]


__all__ = ["BACKGROUND_CHOICES", "FACE_CHOICES", "FORMAT_SUFFIXES", "GFPError", "InvalidOptionError", "LABELS",
           "MODEL_CHOICES", "OUTPUT_FORMATS", "ClipOutcome",
           "RestoreEngine", "RestoreOptions", "RestoreOutcome", "TimeLimitError", "VideoLimits", "VideoOptions"]
