"""What a Ray run restores: local files, folders and globs (as the local command lists them), text files
that list inputs, and fsspec URLs (``s3://bucket/photos/``, ``gs://…/*.jpg``) when the filesystem's
package (s3fs, gcsfs, …) is installed. Each input has a stable id: the hash of its real path or URL."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

from ..errors import GFPError


def is_url(spec: str) -> bool:
    """``scheme://…`` (s3://, gs://, https://, file://, memory://): read through fsspec."""
    head, sep, _ = spec.partition("://")
    return bool(sep) and head.replace("+", "").isalnum()


@dataclass(frozen=True)
class ScaleInput:
    """One input: ``source`` as the worker opens it (a local path or a URL), ``key`` its identity (the
    real path of a local file, the URL of a remote one)."""

    source: str
    key: str

    @property
    def id(self) -> str:
        """Stable across runs: what the manifest is keyed by."""
        return hashlib.sha1(self.key.encode()).hexdigest()[:20]

    @property
    def remote(self) -> bool:
        return is_url(self.source)

    @property
    def name(self) -> Path:
        """The file name alone (outputs are named after its stem, as the local command names them)."""
        return Path(PurePosixPath(self.source.partition("://")[2]).name if self.remote else Path(self.source).name)


def list_inputs(specs: Sequence[str], input_lists: Sequence[str | Path] = ()) -> tuple[list[ScaleInput], int]:
    """The inputs named by ``specs`` and by the lines of the ``input_lists`` files (blank lines and lines
    starting with # are ignored), in order, each once. Returns them and how many repeats were dropped."""
    every = list(specs)
    for listing in input_lists:
        every += _read_list(listing)
    found: dict[str, ScaleInput] = {}
    repeats = 0
    for spec in every:
        for item in _expand_url(spec) if is_url(spec) else _expand_local(spec):
            if item.key in found:
                repeats += 1
            else:
                found[item.key] = item
    return list(found.values()), repeats


def _read_list(listing: str | Path) -> list[str]:
    try:
        lines = Path(listing).read_text().splitlines()
    except OSError as exc:
        raise GFPError(f"cannot read the input list {listing}: {exc.strerror or exc}") from exc
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _expand_local(spec: str) -> list[ScaleInput]:
    from ..cli import collect_inputs

    return [ScaleInput(str(path), os.path.realpath(path)) for path in collect_inputs([spec]).files]


def _expand_url(spec: str) -> list[ScaleInput]:
    """A URL's files: a folder's images and videos (sorted), a glob's matches, or the file itself."""
    import glob

    from ..cli import IMAGE_SUFFIXES
    from ..video import VIDEO_SUFFIXES

    fs, root = _filesystem(spec)
    try:
        if glob.has_magic(root):
            paths = sorted(p for p in fs.glob(root) if not fs.isdir(p))
        elif fs.isdir(root):
            suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
            paths = sorted(p for p in fs.find(root, maxdepth=1)
                           if PurePosixPath(p).suffix.lower() in suffixes)
        else:
            paths = [root]  # a missing file fails on its own, as a local one does
    except OSError as exc:
        raise GFPError(f"cannot list {spec}: {exc}") from exc
    urls = [fs.unstrip_protocol(p) for p in paths]
    return [ScaleInput(url, url) for url in urls]


def _filesystem(url: str):
    try:
        import fsspec
    except ImportError:
        raise GFPError(f"{url}: reading URLs needs fsspec: pip install fsspec") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # s3:// without s3fs, an unknown protocol, …
        raise GFPError(f"{url}: {exc}") from exc


@contextmanager
def local_copy(item: ScaleInput) -> Iterator[Path]:
    """The input as a local file: a local path as it is; a URL streamed to a temporary file (removed
    afterwards), so decoding is the local command's and memory does not hold the file's bytes."""
    if not item.remote:
        yield Path(item.source)
        return
    fs, path = _filesystem(item.source)
    folder = tempfile.mkdtemp(prefix="gfp-scale-")
    local = Path(folder) / item.name.name
    try:
        try:
            with fs.open(path, "rb") as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except FileNotFoundError:
            from ..errors import InvalidImageError

            raise InvalidImageError(f"{item.source}: no such file") from None
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)
