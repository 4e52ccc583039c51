"""Choosing which detected faces to restore.

Faces are numbered in reading order: by the horizontal centre of their box, left to right, then
top to bottom for faces in the same column (centres within 1 px). Index 0 is the leftmost face.
That order depends only on where the faces are, not on detector scores, so indices stay stable
when thresholds change.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import FaceSelectionError
from ..options import MAX_FACES, SELECTS, shown
from .types import Face

SELECTIONS = SELECTS.names  #: defined in gfp_core.options


def reading_order(faces: Sequence[Face]) -> list[Face]:
    def key(face: Face) -> tuple[float, float]:
        cx = float(face.box[0] + face.box[2]) / 2
        cy = float(face.box[1] + face.box[3]) / 2
        return (round(cx), cy)
    return sorted(faces, key=key)


def select_faces(faces: Sequence[Face], image_size: tuple[int, int], mode: str = "all",
                 indices: Sequence[int] | None = None, max_faces: int | None = None) -> list[Face]:
    """The chosen faces, in reading order.

    ``mode``: 'all'; 'largest' (biggest boxes first); 'center' (nearest the image centre first);
    'indices' (``indices`` into the reading order; negative counts from the end). ``max_faces``
    keeps at most that many: the largest for 'all', the first ones for the others ('largest' and
    'center' default to one face). ``image_size`` is ``(height, width)``.
    """
    ordered = reading_order(faces)
    SELECTS.check(mode)
    max_faces = MAX_FACES.check(max_faces)
    if mode == "indices":
        if not indices:
            raise FaceSelectionError("{setting} 'indices' needs at least one face index", setting="select",
                                     value=indices)
        chosen: list[Face] = []
        for i in indices:
            if not -len(ordered) <= i < len(ordered):
                found = f"{len(ordered)} faces were found (indices 0 to {len(ordered) - 1})" if ordered \
                    else "no face was found"
                raise FaceSelectionError(f"face index {i} is out of range: {found}", setting="indices", value=i,
                                         allowed=(-len(ordered), len(ordered) - 1) if ordered else ())
            if all(ordered[i] is not c for c in chosen):
                chosen.append(ordered[i])
        ranked = chosen
    elif mode == "largest":
        ranked = sorted(ordered, key=lambda f: -f.area)[: max_faces or 1]
    elif mode == "center":
        h, w = image_size

        def distance(face: Face) -> float:
            cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
            return float((cx - w / 2) ** 2 + (cy - h / 2) ** 2)
        ranked = sorted(ordered, key=distance)[: max_faces or 1]
    else:
        ranked = sorted(ordered, key=lambda f: -f.area)[:max_faces] if max_faces else ordered
    if mode == "indices" and max_faces:
        ranked = ranked[:max_faces]
    keep = {id(f) for f in ranked}
    return [f for f in ordered if id(f) in keep]


def parse_indices(text: str) -> list[int]:
    """'0,2, 3' → [0, 2, 3] (for command lines and node widgets)."""
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise FaceSelectionError(f"face indices must be whole numbers separated by commas, got {shown(text)}",
                                 setting="indices", value=text) from None
