"""Turn a model reference into a verified file on disk.

Order: an explicit path > the configured model folders > the Hugging Face cache > a download
(``huggingface_hub`` for Hub files, a verified HTTPS download of the official release file).
``HF_HUB_OFFLINE=1`` or ``GFP_OFFLINE=1`` (read at each call), or ``download=False``, stops before any
network access. Without a network, each host (the Hub endpoint, the release host) is probed once per
process (see ``network``); an unreachable one is skipped at once from then on, and the error says why.
``GFP_RELEASE_MIRROR`` (a base URL) fetches the official release files from a mirror of github.com.

Model folders: ``add_model_dir()`` (the ComfyUI nodes register ComfyUI's folders), then the
``GFP_MODEL_DIRS`` environment variable (``os.pathsep``-separated), then ``$GFP_HOME/models``
(default ``~/.cache/gfp_core/models``), where official release files are downloaded to.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

from ..errors import ChecksumMismatchError, WeightsNotFoundError
from . import network
from .registry import ModelSpec, get_spec

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
_extra_dirs: list[tuple[Path, frozenset[str] | None]] = []  # (folder, model kinds it holds; None = any)
_sha_cache: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: hash a file once


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    spec: ModelSpec | None
    source: str  # path | folder | hf-cache | hub | url
    verified: bool  # size and SHA-256 checked against the registry


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def offline_variable() -> str | None:
    """``HF_HUB_OFFLINE`` or ``GFP_OFFLINE`` if one is set (read at each call, not at import)."""
    for name in ("HF_HUB_OFFLINE", "GFP_OFFLINE"):
        if _truthy(os.environ.get(name)):
            return name
    return None


def allow_unverified_default() -> bool:
    return _truthy(os.environ.get("GFP_ALLOW_UNVERIFIED"))


def home_dir() -> Path:
    return Path(os.environ.get("GFP_HOME") or Path.home() / ".cache" / "gfp_core")


def default_model_dir() -> Path:
    return home_dir() / "models"


def add_model_dir(path: str | Path, kinds: Sequence[str] | None = None) -> None:
    """Search ``path`` for weights before the environment's and the default folders; ``kinds``
    (e.g. ``["detection"]``) limits it to those registry kinds."""
    entry = (Path(path).expanduser(), frozenset(kinds) if kinds else None)
    if entry not in _extra_dirs:
        _extra_dirs.append(entry)


def model_dirs(spec: ModelSpec | None = None) -> list[Path]:
    """Folders searched, in order; with ``spec``, only those that may hold its kind of model."""
    env = [Path(p).expanduser() for p in os.environ.get("GFP_MODEL_DIRS", "").split(os.pathsep) if p.strip()]
    extra = [d for d, kinds in _extra_dirs if spec is None or kinds is None or spec.kind in kinds]
    dirs: list[Path] = []
    for d in (*extra, *env, default_model_dir()):
        if d not in dirs:
            dirs.append(d)
    return dirs


def sha256_of(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]


def _size_problem(path: Path, spec: ModelSpec) -> str | None:
    """Why the file cannot be the release file, judged by its size alone (cheap: no hashing)."""
    actual = path.stat().st_size
    if spec.size is None or actual == spec.size:
        return None
    return f"it has {actual:,} bytes, expected {spec.size:,}"


def _hash_problem(path: Path, spec: ModelSpec) -> str | None:
    actual = sha256_of(path)
    if spec.sha256:
        return None if actual == spec.sha256 else f"its SHA-256 is {actual}, expected {spec.sha256}"
    prefix = spec.hash_prefix
    return None if actual.startswith(prefix) else f"its SHA-256 is {actual}, which does not start with {prefix}"


def verify(path: Path, spec: ModelSpec, allow_unverified: bool) -> bool:
    """True if the file matches the registry's size and SHA-256; raises on a mismatch unless allowed.
    The size is checked first, so a wrong file is refused without reading all of it. A file known only
    by the SHA-256 digits in its name is checked against them (and still counts as unverified)."""
    if not spec.sha256 and not spec.hash_prefix:
        if log.isEnabledFor(logging.INFO):  # hashing a large file only to log it costs seconds
            log.info("%s has no published SHA-256; loaded %s unverified (sha256 %s)", spec.name, path, sha256_of(path))
        return False
    problem = _size_problem(path, spec) or _hash_problem(path, spec)
    if problem is None:
        return bool(spec.sha256)
    if allow_unverified:
        log.warning("%s does not match %s: %s; used anyway because unverified files are allowed",
                    path, spec.name, problem)
        return False
    raise ChecksumMismatchError(
        f"{path} does not match {spec.name}: {problem}. The file is corrupt, incomplete or a different model "
        f"(published values: {spec.sha256_source or 'unknown source'}). Delete it and download it again, or, if you "
        f"trust it, accept it with --allow-unverified (allow_unverified=True, or GFP_ALLOW_UNVERIFIED=1).")


def _looks_like_path(ref: str) -> bool:
    return os.sep in ref or "/" in ref or ref.lower().endswith(CHECKPOINT_SUFFIXES)


def _find_in_folders(spec: ModelSpec) -> Path | None:
    for d in model_dirs(spec):
        candidate = d / spec.filename
        if candidate.is_file():
            return candidate
    return None


def hf_cache_dir() -> str | None:
    """The Hugging Face cache folder, read when needed (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _find_in_hf_cache(spec: ModelSpec) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for hub in spec.hub_sources():
        found = try_to_load_from_cache(hub.repo_id, hub.filename, cache_dir=hf_cache_dir(), revision=hub.revision,
                                       repo_type=hub.repo_type)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def find_local(spec: ModelSpec) -> tuple[Path, str] | None:
    """The model's file in a model folder ('folder') or the Hugging Face cache ('hf-cache')."""
    found = _find_in_folders(spec)
    if found is not None:
        return found, "folder"
    found = _find_in_hf_cache(spec)
    return (found, "hf-cache") if found is not None else None


def release_url(spec: ModelSpec) -> str:
    """Where the official release file is downloaded from: ``spec.url``, or with ``GFP_RELEASE_MIRROR``
    (a base URL) set, the same path on that mirror instead of https://github.com."""
    mirror = os.environ.get("GFP_RELEASE_MIRROR", "").strip().rstrip("/")
    parts = urlsplit(spec.url)
    if not mirror or parts.hostname != "github.com":
        return spec.url
    return mirror + parts.path


def _unreachable_phrase(unreachable: dict[str, str]) -> str:
    """'huggingface.co and github.com could not be reached (reason)', hosts with the same reason together."""
    by_reason: dict[str, list[str]] = {}
    for label, reason in unreachable.items():
        by_reason.setdefault(reason, []).append(label)
    return " and ".join(f"{' and '.join(labels)} could not be reached ({reason})" for reason, labels in by_reason.items())


def _download(spec: ModelSpec, progress: bool) -> tuple[Path, str]:
    """Fetch from the Hub sources in order, then from the official URL. Raises with every reason.

    A host that cannot be reached is probed once per process (``network``) and then skipped at once."""
    unreachable: dict[str, str] = {}  # host label -> why it cannot be reached
    errors: list[str] = []  # sources that answered but did not give the file
    hubs = spec.hub_sources()
    url = release_url(spec)
    network.start(url)  # probed while the Hub is tried: a dead network costs one probe timeout, not two
    if hubs:
        from huggingface_hub import constants, hf_hub_download

        endpoint = constants.ENDPOINT
        hub_host = network.host_of(endpoint).label
        if constants.HF_HUB_OFFLINE:  # HF_HUB_OFFLINE was set when huggingface_hub read its settings
            errors.append("Hugging Face Hub: huggingface_hub is in offline mode (HF_HUB_OFFLINE was set when it "
                          "was first used in this process)")
        elif (reason := network.unreachable(endpoint)) is not None:
            unreachable[hub_host] = reason
        else:
            for hub in hubs:
                try:
                    path = hf_hub_download(hub.repo_id, hub.filename, revision=hub.revision, repo_type=hub.repo_type,
                                           cache_dir=hf_cache_dir())
                    network.note_success(endpoint)
                    return Path(path), "hub"
                except Exception as exc:  # network, auth, missing file: try the next source
                    reason = network.note_failure(endpoint, exc)
                    if reason is not None:  # the Hub stopped answering: its other sources would not either
                        unreachable[hub_host] = reason
                        break
                    errors.append(f"{hub}: {type(exc).__name__}: {exc}")
    url_host = network.host_of(url).label
    if (reason := network.unreachable(url)) is not None:
        unreachable[url_host] = reason
    else:
        try:
            found = _download_url(spec, progress, url)
            network.note_success(url)
            return found, "url"
        except ChecksumMismatchError:
            raise
        except Exception as exc:
            reason = network.note_failure(url, exc)
            if reason is not None:
                unreachable[url_host] = reason
            else:
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
    raise WeightsNotFoundError(_not_downloaded(spec, unreachable, errors))


def _not_downloaded(spec: ModelSpec, unreachable: dict[str, str], errors: list[str]) -> str:
    """First line: what is missing and why, in one sentence; then each source's error; then where to put it."""
    head = f"{spec.name} weights ({spec.filename}) are not on this machine and "
    if unreachable and not errors:
        head += f"{_unreachable_phrase(unreachable)}; working offline for this process."
    else:
        short = [e.splitlines()[0][:200] for e in errors]
        if unreachable:
            short.append(_unreachable_phrase(unreachable))
        head += f"could not be downloaded ({'; '.join(short)})."
    details = "".join(f"\n  {e}" for e in errors)
    return f"{head}{details}\n{_where_to_put(spec)}"


def _download_url(spec: ModelSpec, progress: bool, url: str | None = None) -> Path:
    """HTTPS download into the default model folder: to a temporary file, verified, then renamed."""
    from torch.hub import download_url_to_file

    url = url or release_url(spec)
    target_dir = default_model_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=f".{spec.filename}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        download_url_to_file(url, str(tmp), progress=progress)
        problem = (_size_problem(tmp, spec) or _hash_problem(tmp, spec)) if spec.sha256 or spec.hash_prefix else None
        if problem is not None:
            raise ChecksumMismatchError(
                f"the download of {url} does not match {spec.name}: {problem}; it was discarded. Try again "
                f"later, or fetch the file yourself and put it in {target_dir}.")
        final = target_dir / spec.filename
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


def _where_to_put(spec: ModelSpec) -> str:
    dirs = "\n    ".join(str(d) for d in model_dirs(spec))
    hubs = "".join(f"\n    {h}" for h in spec.hub_sources())
    return (f"Put {spec.filename} (from {spec.url}) into one of these folders:\n    {dirs}\n"
            f"(add folders with GFP_MODEL_DIRS), or pass its path directly."
            + (f" Hugging Face sources looked up in the local cache:{hubs}" if hubs else ""))


def resolve_weights(ref: str | os.PathLike[str], *, download: bool = True, allow_unverified: bool | None = None,
                    progress: bool = True) -> ResolvedWeights:
    """Find the weights for ``ref`` (a known model name/alias, or a file path)."""
    if allow_unverified is None:
        allow_unverified = allow_unverified_default()
    ref_str = os.fspath(ref)
    path = Path(ref_str).expanduser()
    if path.is_file():
        return ResolvedWeights(path, None, "path", False)
    if isinstance(ref, os.PathLike) or _looks_like_path(ref_str):
        raise WeightsNotFoundError(f"weights file {path} does not exist")

    spec = get_spec(ref_str)
    local = find_local(spec)
    if local is not None:
        found, source = local
    else:
        offline = offline_variable()
        if not download or offline:
            why = f"{offline} is set" if offline else "downloading is disabled"
            raise WeightsNotFoundError(f"{spec.name} weights ({spec.filename}) are not on this machine and {why}. "
                                       + _where_to_put(spec))
        found, source = _download(spec, progress)
    return ResolvedWeights(found, spec, source, verify(found, spec, allow_unverified))
