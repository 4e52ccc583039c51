"""Every choice a user makes, defined once: the allowed values (each with a one-line description)
and the numeric ranges. The CLI's flags, the web page's controls and the ComfyUI nodes' inputs all
read their choices from here, and every check of an option goes through here, so a value is
refused the same way wherever it comes from.

A bad option raises :class:`~gfp_core.errors.InvalidOptionError` (a ``GFPError`` and a
``ValueError``) that carries the setting's canonical name (``exc.setting``, e.g. ``"threshold"``),
the value (``exc.value``) and what is allowed (``exc.allowed``). The library's message names the
setting by that canonical name and never by a front end's word (no command-line flag, no label).
Each front end keeps a small mapping from canonical names to its own words and rewrites the
message with :func:`in_words` (or :func:`speaking`, a context manager)::

    CLI_WORDS = {"threshold": "--threshold", "background": "--bg-upsampler"}
    with speaking(CLI_WORDS):
        FaceRestorer(..., score_threshold=-5)
    # InvalidOptionError: --threshold must be above 0 and at most 1, got -5 (...)

Canonical names: ``select indices max_faces face_limit mask feather parser detector threshold
detect_max_side min_face_size min_eye_distance background background_tile model dtype device backend
fidelity visibility upscale max_pixels max_output_pixels memory_budget_mb batch_size smoothing fps
parse_size``.

This module imports neither torch nor the models: ``BACKGROUNDS`` (which reads the weights
registry) is built on first use.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, NamedTuple

from .errors import FaceSelectionError, ImageTooLargeError, InvalidOptionError


def shown(value: Any, limit: int = 40) -> str:
    """A value as messages quote it: numbers plainly (``-5``, ``0.5``), anything else as its
    ``repr`` cut to ``limit`` characters (a message never echoes a whole payload)."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# choices


class Choice(NamedTuple):
    name: str
    description: str


@dataclass(frozen=True)
class Choices:
    """The allowed values of one setting, in the order front ends offer them (the first is the
    default unless ``default`` says otherwise)."""

    setting: str
    items: tuple[Choice, ...]
    what: str = ""
    default: str | None = None
    error: type[InvalidOptionError] = InvalidOptionError

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.items)

    def describe(self, name: str) -> str:
        return next(c.description for c in self.items if c.name == name)

    def help(self) -> str:
        """'box: …; ellipse: …' for a command-line help or a tooltip."""
        return "; ".join(f"{c.name}: {c.description}" for c in self.items)

    def __contains__(self, value: object) -> bool:
        return value in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.items)

    def check(self, value: Any) -> str:
        """``value`` if it is one of the choices; else an error naming the setting and the choices."""
        if isinstance(value, str) and value in self.names:
            return value
        raise self.error("{setting} must be one of " + ", ".join(self.names) + f", got {shown(value)}",
                         setting=self.setting, value=value, allowed=self.names)


SELECTS = Choices("select", (
    Choice("all", "every face found"),
    Choice("largest", "the largest face"),
    Choice("center", "the face nearest the centre of the picture"),
    Choice("indices", "faces by number, in reading order from 0 (the leftmost face)"),
), what="which faces are restored", error=FaceSelectionError)

MASKS = Choices("mask", (
    Choice("box", "the official feathered square, sized for each face"),
    Choice("ellipse", "an ellipse around the face's landmarks"),
    Choice("parsing", "the skin, hair and features a face-parsing model finds"),
), what="how the restored face is blended into the picture")

PARSERS = Choices("parser", (
    Choice("parsenet", "facexlib's ParseNet (the official GFPGAN parse branch)"),
    Choice("bisenet", "facexlib's BiSeNet (19 classes)"),
), what="the face-parsing model of the 'parsing' mask")

DETECTORS = Choices("detector", (
    Choice("retinaface_resnet50", "facexlib's RetinaFace ResNet-50 (most accurate; GFPGAN's default)"),
    Choice("retinaface_mobile0.25", "facexlib's RetinaFace MobileNet-0.25 (fast)"),
    Choice("embedded", "RetinaFace MobileNet-0.25 shipped with the package (no download; runs with OpenCV)"),
), what="the face detector")

MODELS = Choices("model", (
    Choice("v1.4", "GFPGAN v1.4 (more details, better identity; the default)"),
    Choice("v1.3", "GFPGAN v1.3 (more natural results)"),
    Choice("v1.2", "GFPGAN v1.2 (sharper, with some beautification)"),
    Choice("v1", "the original GFPGAN v1 (colourisation; needs the original architecture)"),
), what="the GFPGAN version (the library also takes any registry name or weights file)")

DTYPES = Choices("dtype", (
    Choice("fp32", "32-bit floats (the published numerics; the default)"),
    Choice("fp16", "16-bit floats (fast on GPUs; refused on the CPU)"),
    Choice("bf16", "bfloat16 (fast reduced precision on recent CPUs and GPUs)"),
), what="the precision the models compute in")
#: other spellings of the dtypes that are accepted
DTYPE_ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}

DEVICES = Choices("device", (
    Choice("auto", "the best there is (CUDA, then Apple MPS, then the CPU)"),
    Choice("cpu", "the CPU"),
    Choice("cuda", "the first NVIDIA GPU (cuda:N for GPU number N)"),
    Choice("mps", "the Apple silicon GPU"),
), what="where the models run")
BACKENDS = Choices("backend", (
    Choice("auto", "OpenVINO on the CPU when it is installed and measured faster there, else PyTorch"),
    Choice("torch", "PyTorch (the published fp32 numerics)"),
    Choice("openvino", "OpenVINO's CPU runtime: bf16 where the CPU has it, within 0.05 of fp32 (pip install openvino)"),
), what="what runs GFPGAN's forward pass")

#: what a device error lists (torch also takes other device strings, e.g. 'xpu')
DEVICE_FORMS = ("auto", "cpu", "cuda", "cuda:N", "mps")

_LANCZOS = Choice("lanczos", "a Lanczos resize (fast, no model)")


def _backgrounds() -> Choices:
    from .weights.registry import MODELS as REGISTRY

    return Choices("background", (_LANCZOS, *(Choice(s.name, s.description) for s in REGISTRY
                                             if s.kind == "background")),
                   what="how the background is upscaled")


def __getattr__(name: str) -> Any:  # BACKGROUNDS reads the weights registry (torch): built on first use
    if name == "BACKGROUNDS":
        value = globals()["BACKGROUNDS"] = _backgrounds()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_device(value: Any) -> str:
    """A device name as a user writes it: auto, cpu, cuda, cuda:N or mps (torch's other device
    strings are left to :func:`gfp_core.device.resolve_device`)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if isinstance(text, str) and (text in DEVICES or (text.startswith("cuda:") and text[5:].isdigit())):
        return text
    raise device_error(value)


def device_error(value: Any) -> InvalidOptionError:
    return InvalidOptionError("unknown {setting} " + shown(value) + "; use " + ", ".join(DEVICE_FORMS[:-1])
                              + f" or {DEVICE_FORMS[-1]}", setting="device", value=value, allowed=DEVICE_FORMS)


def check_dtype(value: Any) -> str:
    """'fp32', 'fp16' or 'bf16' (also as float32, float16/half, bfloat16)."""
    key = value.lower() if isinstance(value, str) else value
    key = DTYPE_ALIASES.get(key, key) if isinstance(key, str) else key
    if key in DTYPES:
        return key
    raise InvalidOptionError("unknown {setting} " + shown(value) + "; use one of " + ", ".join(DTYPES.names),
                             setting="dtype", value=value, allowed=DTYPES.names)


def check_backend(value: Any) -> str:
    """'auto', 'torch' or 'openvino', in any letter case and with stray spaces."""
    return BACKENDS.check(value.strip().lower() if isinstance(value, str) else value)


# --------------------------------------------------------------------------------------------
# ranges


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Range:
    """The numbers one setting takes: ``low``/``high`` (None: unbounded), open or closed ends,
    whole numbers only if ``whole``. ``none_ok``: None is allowed too (it means a default).
    ``rule`` replaces the generated rule ('must be between 0 and 1'); ``hint`` is added in
    parentheses after the value."""

    setting: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    whole: bool = False
    what: str = ""
    rule: str = ""
    hint: str = ""
    none_ok: bool = False

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        return self.low, self.high

    def describe_rule(self) -> str:
        if self.rule:
            return self.rule
        lo, hi = self.low, self.high
        if self.whole and lo is not None and hi is not None and not self.low_open and not self.high_open:
            return f"must be a whole number from {_num(lo)} to {_num(hi)}"
        kind = "a whole number " if self.whole else ""
        if lo is not None and hi is not None:
            if not self.low_open and not self.high_open:
                return f"must be {kind}between {_num(lo)} and {_num(hi)}"
            left = f"above {_num(lo)}" if self.low_open else f"at least {_num(lo)}"
            right = f"below {_num(hi)}" if self.high_open else f"at most {_num(hi)}"
            return f"must be {kind}{left} and {right}"
        of = "of " if kind else ""
        if lo is not None:
            return f"must be {kind}{'above' if self.low_open else of + 'at least'} {_num(lo)}"
        if hi is not None:
            return f"must be {kind}{'below' if self.high_open else of + 'at most'} {_num(hi)}"
        return f"must be {kind or 'a number'}".rstrip()

    def __contains__(self, value: object) -> bool:
        try:
            self.check(value)
        except InvalidOptionError:
            return False
        return True

    def check(self, value: Any) -> Any:
        """``value`` (an int for whole ranges, else a float; None if ``none_ok``) if it is in the
        range; else an error naming the setting, the rule and the value."""
        if value is None and self.none_ok:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_number(value):
            raise InvalidOptionError("{setting} must be a number, got " + shown(value), setting=self.setting,
                                     value=value, allowed=self.bounds)
        number = float(value)
        lo, hi = self.low, self.high
        ok = not math.isnan(number) and \
            (lo is None or (number > lo if self.low_open else number >= lo)) and \
            (hi is None or (number < hi if self.high_open else number <= hi)) and \
            (not self.whole or number == int(number))
        if not ok:
            hint = f" ({self.hint})" if self.hint else ""
            raise InvalidOptionError("{setting} " + self.describe_rule() + f", got {shown(value)}{hint}",
                                     setting=self.setting, value=value, allowed=self.bounds)
        return int(number) if self.whole else number


def _is_number(value: Any) -> bool:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, np.number) and not isinstance(value, np.complexfloating)


THRESHOLD = Range("threshold", 0, 1, low_open=True, what="minimum face probability of a detection",
                  hint="a face probability: lower finds more faces, e.g. 0.5; higher fewer, e.g. 0.97")
FIDELITY = Range("fidelity", 0, 1, what="CS-SFT strength: 1 = the published model, 0 = the StyleGAN prior alone")
VISIBILITY = Range("visibility", 0, 1, what="blend of the restored face over the original: 0 = original")
UPSCALE = Range("upscale", 1, 8, what="output size factor")
FEATHER = Range("feather", 0, 1, what="extra softening of the mask's edge (0 = none)")
MAX_FACES = Range("max_faces", 1, whole=True, none_ok=True, what="at most this many chosen faces per frame")
FACE_LIMIT = Range("face_limit", 1, whole=True, none_ok=True, what="at most this many faces restored per frame")
MIN_FACE_SIZE = Range("min_face_size", 0, what="faces with a smaller box side (pixels) are ignored")
EYE_DISTANCE = Range("min_eye_distance", 0, what="faces with closer eyes (pixels) are ignored")
DETECT_MAX_SIDE = Range("detect_max_side", 0, none_ok=True,
                        rule="must be a positive number of pixels, or 0/None for full size",
                        what="detection runs on a copy whose longest side is at most this")
MAX_PIXELS = Range("max_pixels", 1, whole=True, rule="must be a positive number of pixels",
                   what="input pictures larger than this are refused before decoding")
MAX_OUTPUT_PIXELS = Range("max_output_pixels", 1, whole=True, rule="must be a positive number of pixels",
                          what="results larger than this (input pixels × upscale²) are refused before any work")
MEMORY_BUDGET_MB = Range("memory_budget_mb", 1, none_ok=True, what="memory one forward pass may use (MiB)")
BACKGROUND_TILE = Range("background_tile", 0, whole=True, what="Real-ESRGAN tile size in pixels (0 = whole image)")
BATCH_SIZE = Range("batch_size", 1, whole=True, what="faces per forward pass")
SMOOTHING = Range("smoothing", 0, 1, what="smoothing of the face alignment across video frames: 0 = each frame alone")
STEADY = Range("steady", 0, 1, what="steadier restored faces across video frames: each blended with the frame "
               "before's while the face stands still; 0 = off")
PARSE_SIZE = Range("parse_size", 64, 512, whole=True,
                   what="side in pixels at which the face-parsing network sees a crop for the 'parsing' mask")
FPS = Range("fps", 0, 1000, low_open=True, none_ok=True, what="a clip's frames per second (None: 30)")

#: the web demo's narrower ranges (its sliders): upscale in whole steps, and thresholds a slider can reach
WEB_UPSCALE = Range("upscale", 1, 4, whole=True, what=UPSCALE.what)
WEB_THRESHOLD = Range("threshold", 0.05, 0.99, what=THRESHOLD.what)

RANGES = {r.setting: r for r in (THRESHOLD, FIDELITY, VISIBILITY, UPSCALE, FEATHER, MAX_FACES, FACE_LIMIT,
                                 MIN_FACE_SIZE, EYE_DISTANCE, DETECT_MAX_SIDE, MAX_PIXELS, MAX_OUTPUT_PIXELS,
                                 MEMORY_BUDGET_MB, BACKGROUND_TILE, BATCH_SIZE, SMOOTHING, STEADY, FPS, PARSE_SIZE)}


def choices(setting: str) -> Choices:
    """The :class:`Choices` of a setting by its canonical name."""
    table = {c.setting: c for c in (SELECTS, MASKS, PARSERS, DETECTORS, MODELS, DTYPES, DEVICES, BACKENDS)}
    if setting == "background":
        return globals().get("BACKGROUNDS") or __getattr__("BACKGROUNDS")
    return table[setting]


# --------------------------------------------------------------------------------------------
# messages in a front end's words


def in_words(exc: BaseException, words: Mapping[str, str]) -> BaseException:
    """Rewrite an :class:`InvalidOptionError`'s message so that it names its setting in a front
    end's words (``words``: canonical name → flag, label or input name; names not in it keep the
    canonical name), and an :class:`ImageTooLargeError`'s so that it says how to raise the limit
    there (a word of None: it cannot be raised there). Changes ``exc`` in place and returns it;
    anything else comes back untouched."""
    if isinstance(exc, InvalidOptionError):
        exc.say(words.get(exc.setting, exc.setting) if exc.setting else None)
    elif isinstance(exc, ImageTooLargeError):  # a word of None: the limit cannot be raised there
        exc.say(words[exc.setting] if exc.setting in words else f"the limit ({exc.setting})")
    return exc


@contextmanager
def speaking(words: Mapping[str, str]) -> Iterator[None]:
    """``with speaking(words):`` — an :class:`InvalidOptionError` raised inside names its setting
    in ``words`` (see :func:`in_words`)."""
    try:
        yield
    except (InvalidOptionError, ImageTooLargeError) as exc:
        in_words(exc, words)
        raise


__all__ = ["BACKENDS", "BACKGROUND_TILE", "BATCH_SIZE", "DETECTORS", "DETECT_MAX_SIDE", "DEVICES", "DEVICE_FORMS", "DTYPES",
           "DTYPE_ALIASES", "FACE_LIMIT", "FEATHER", "FIDELITY", "MASKS", "MAX_FACES", "MAX_OUTPUT_PIXELS",
           "MAX_PIXELS", "MEMORY_BUDGET_MB", "EYE_DISTANCE", "MIN_FACE_SIZE", "MODELS", "PARSERS", "RANGES",
           "SELECTS", "SMOOTHING", "STEADY", "FPS", "THRESHOLD", "UPSCALE", "VISIBILITY", "WEB_THRESHOLD", "WEB_UPSCALE", "Choice",
           "Choices", "Range", "check_backend", "check_device", "check_dtype", "choices", "device_error", "in_words", "shown",
           "speaking"]
