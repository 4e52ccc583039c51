"""The one exception family for errors a user can cause. Every message says what to do next."""
from __future__ import annotations


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


class FaceSelectionError(GFPError, ValueError):
    """A face choice that does not fit the faces found (e.g. an index out of range)."""


class InvalidOptionError(GFPError, ValueError):
    """An option outside its range or choices (threshold, fidelity, upscale, device, limits)."""
