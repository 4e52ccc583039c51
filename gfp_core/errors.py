"""The one exception family for errors a user can cause. Every message says what to do next."""
from __future__ import annotations

from typing import Any


class GFPError(Exception):
    """Base class: bad input, unknown model, missing or unsafe weights."""


class UnknownModelError(GFPError, LookupError):
    """A model name that the registry does not know."""


class WeightsNotFoundError(GFPError, FileNotFoundError):
    """A weights file that is neither on disk nor obtainable (e.g. offline)."""


class ChecksumMismatchError(GFPError):
    """A weights file whose SHA-256 differs from the registry's."""


class UnsafeCheckpointError(GFPError):
    """A checkpoint that would need arbitrary code to be unpickled; refused without running it."""


class UnsupportedCheckpointError(GFPError):
    """A file that is not a readable checkpoint of an architecture we know."""


class InvalidImageError(GFPError, ValueError):
    """An image that cannot be read or used."""


class ImageTooLargeError(InvalidImageError):
    """An image, or the result asked of it, over a size limit.

    ``setting``: the limit's canonical name (``max_pixels``, ``max_output_pixels``); ``remedy``: what
    else would help (e.g. a smaller upscale). The message ends with the remedy and how to raise the
    limit, in a front end's words (:func:`gfp_core.options.in_words`: a flag, a setting); where the
    limit is fixed for the user (a hosted demo, a node without that input) the front end names no
    word and the message ends with the remedy, or "use a smaller image".
    """

    def __init__(self, message: str, *, setting: str, remedy: str = "") -> None:
        self.template = message
        self.setting = setting
        self.remedy = remedy
        super().__init__(self._text(f"the limit ({setting})"))

    def _text(self, word: str | None) -> str:
        raise_it = f"raise {word} if you have the memory" if word else ""
        remedies = [part for part in (self.remedy, raise_it) if part]
        return f"{self.template}; {', or '.join(remedies) if remedies else 'use a smaller image'}"

    def say(self, word: str | None) -> None:
        """End the message with how to raise the limit as ``word`` (None: the limit is fixed here)."""
        self.args = (self._text(word),)

    def __reduce__(self):
        return _rebuild_limit, (type(self), self.template, self.setting, self.remedy, self.args)


def _rebuild_limit(cls, template, setting, remedy, args):
    exc = cls(template, setting=setting, remedy=remedy)
    exc.args = args
    return exc


class InvalidVideoError(InvalidImageError):
    """A video file that cannot be read or written: not a video, damaged or cut short, no video stream,
    or an output name or codec that FFmpeg cannot write. An :class:`InvalidImageError`, so front ends
    that report unreadable pictures report unreadable clips the same way."""


class InvalidOptionError(GFPError, ValueError):
    """An option outside its range or choices (threshold, fidelity, upscale, mask, device, limits).

    ``setting``: the option's canonical name (see :mod:`gfp_core.options`), ``value``: what was
    given, ``allowed``: the choices or ``(low, high)`` bounds. A message may name its setting with
    the placeholder ``{setting}``; it then reads with the canonical name, and a front end can
    rename it to its own word (a flag, a label) with :func:`gfp_core.options.in_words`.
    """

    def __init__(self, message: str, *, setting: str | None = None, value: Any = None, allowed: Any = None) -> None:
        self.template = message
        self.setting = setting
        self.value = value
        self.allowed = allowed
        self.word = setting
        super().__init__(self._text(setting))

    def _text(self, word: str | None) -> str:
        return self.template.replace("{setting}", word or self.setting or "option")

    def say(self, word: str | None) -> None:
        """Name the setting ``word`` in the message (None: the canonical name)."""
        self.word = word or self.setting
        self.args = (self._text(self.word), *self.args[1:])

    def __reduce__(self):  # keeps setting, value and words across processes
        return _rebuild, (type(self), self.template, self.setting, self.value, self.allowed, self.word)


def _rebuild(cls, template, setting, value, allowed, word):
    exc = cls(template, setting=setting, value=value, allowed=allowed)
    exc.say(word)
    return exc


class FaceSelectionError(InvalidOptionError):
    """A face choice that is unknown or does not fit the faces found (e.g. an index out of range)."""
