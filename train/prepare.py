"""Training faces from ordinary photos: detect, align to the FFHQ template and save square crops."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np


def prepare_faces(sources: Iterable[str | Path], output: str | Path, size: int = 512, detector: str = "embedded",
                  min_eye_distance: float = 0.0, jitter: int = 0, seed: int = 0) -> list[Path]:
    """Write every detected face of the given images (files or folders) as ``<stem>_<k>.png``.

    ``jitter`` > 0 also writes that many extra crops per face with the landmarks moved by up to 2 %
    of the eye distance, a cheap augmentation for tiny data sets. Returns the written files.
    """
    from gfp_core.face.align import align_faces
    from gfp_core.face.detection import detect_faces, load_detector
    from gfp_core.face.types import Face
    from gfp_core.image import load_rgb, save_rgb

    from .data import list_images

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    det = load_detector(detector)
    rng = np.random.default_rng(seed)
    written: list[Path] = []
    for source in sources:
        for path in list_images(source) if Path(source).is_dir() else [Path(source)]:
            img = load_rgb(path)
            faces = [f for f in detect_faces(det, img) if f.eye_distance >= min_eye_distance]
            for k, face in enumerate(faces):
                variants = [face]
                for _ in range(jitter):
                    moved = face.landmarks + rng.uniform(-0.02, 0.02, face.landmarks.shape) * face.eye_distance
                    variants.append(Face(face.box, moved.astype(np.float32), face.score))
                crops, _ = align_faces(img, variants, size)
                for j, crop in enumerate(crops):
                    name = f"{path.stem}_{k}.png" if j == 0 else f"{path.stem}_{k}_j{j}.png"
                    written.append(save_rgb(out / name, crop))
    return written
