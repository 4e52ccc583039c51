"""The face models the page offers: the GFPGAN versions, and beside them RestoreFormer, RestoreFormer++
and CodeFormer when their weights are already on this machine (a model folder or the Hugging Face
cache: the server never downloads one of those on a visitor's behalf)."""
from __future__ import annotations

from gfp_core import options
from gfp_core.errors import GFPError
from gfp_core.weights import resolve_weights
from gfp_core.weights.registry import get_spec

#: other face restorers, in the order the page offers them after the GFPGAN versions
OTHER_MODELS = ("RestoreFormer++", "RestoreFormer", "CodeFormer")


def available(name: str) -> bool:
    """Whether registry model ``name``'s weights can be had without a download."""
    try:
        resolve_weights(name, download=False, allow_unverified=True, progress=False)
    except GFPError:
        return False
    return True


def model_choices() -> options.Choices:
    """The page's model choices: gfp_core.options' GFPGAN versions, then the other restorers found here."""
    others = tuple(options.Choice(name, get_spec(name).description) for name in OTHER_MODELS if available(name))
    return options.Choices("model", (*options.MODELS.items, *others), what=options.MODELS.what)


def model_title(name: str) -> str:
    """How messages name a model: 'GFPGAN v1.4', 'CodeFormer'."""
    return name if name in OTHER_MODELS else f"GFPGAN {name}"
