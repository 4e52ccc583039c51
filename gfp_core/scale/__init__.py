"""Archive scale: ``restore`` as a resumable Ray Data pipeline (``python -m gfp_core restore … --ray``).

==================  ==================================================================================
restore_on_ray      the ``restore`` command's options run on a local Ray instance or a cluster
restore_at_scale    the same from Python: inputs, an output folder and ``restore``'s options by name
list_inputs         files, folders, globs, input lists and fsspec URLs (s3://, gs://, …) as inputs
read_manifest       what a run recorded for each input (restored, no face, failed with the reason, …)
==================  ==================================================================================

The models and the per-photo code are the local command's (:func:`gfp_core.cli.restorer_from_args`,
the engine, :func:`gfp_core.image.read_picture`, atomic :func:`gfp_core.image.write_image`), so the files
written are the same. Ray is an optional install (``pip install "ray[data]"``); nothing here imports it
until a run starts.
"""
from __future__ import annotations

from typing import Any

from ..errors import GFPError

RAY_MISSING = 'restoring with --ray needs Ray Data, which is not installed: pip install "ray[data]"'


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a GFPError saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise GFPError(RAY_MISSING) from None
    return ray


def __getattr__(name: str) -> Any:  # the driver and the input listing are imported on first use
    if name in ("restore_on_ray", "restore_at_scale", "RunSummary"):
        from . import driver

        return getattr(driver, name)
    if name in ("list_inputs", "ScaleInput"):
        from . import inputs

        return getattr(inputs, name)
    if name in ("read_manifest", "MANIFEST_FOLDER"):
        from . import manifest

        return getattr(manifest, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MANIFEST_FOLDER", "RAY_MISSING", "RunSummary", "ScaleInput", "list_inputs", "read_manifest",
           "require_ray", "restore_at_scale", "restore_on_ray"]
