"""Training and validation data: aligned face crops, degraded on the fly.

Each training sample is drawn as ``(image index, sample seed)``; the seed alone decides the flip and
every degradation, so the same iteration gives the same batch after a resume, with any number of
loader workers or processes.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from gfp_core.errors import InvalidImageError
from gfp_core.image import faces_to_tensor

from .components import ComponentBoxes
from .config import ConfigError
from .degradations import degrade

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def list_images(source: str | Path) -> list[Path]:
    """The images of a folder (recursively, sorted) or of a list file (one path a line, relative to it)."""
    source = Path(source).expanduser()
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    elif source.is_file():
        lines = [ln.strip() for ln in source.read_text(encoding="utf-8").splitlines()]
        paths = [p if p.is_absolute() else source.parent / p for p in (Path(ln) for ln in lines if ln
                                                                          and not ln.startswith("#"))]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ConfigError(f"{source} lists {len(missing)} missing image(s), e.g. {missing[0]}")
    else:
        raise ConfigError(f"training data {source} is neither a folder nor a list file")
    if not paths:
        raise ConfigError(f"{source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def read_face(path: Path, size: int) -> np.ndarray:
    """An aligned face as float32 RGB ``size``×``size`` in [0, 1] (other square sizes are resized)."""
    from gfp_core.image import load_rgb

    img = load_rgb(path)
    h, w = img.shape[:2]
    if h != w:
        raise InvalidImageError(f"{path} is {w}x{h}; training faces must be square aligned crops "
                                f"(python -m train prepare makes them from photos)")
    if h != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if h > size else cv2.INTER_CUBIC)
    return img.astype(np.float32) / 255.0


class DegradedFaces(Dataset):
    """Aligned faces → ``{'lq', 'gt', 'index', 'loc'?}``, keyed by ``(index, seed)`` from the sampler."""

    def __init__(self, paths: Sequence[Path], opts: Mapping[str, Any], components: ComponentBoxes | None = None,
                 hflip: bool | None = None):
        self.paths = list(paths)
        self.opts = dict(opts)
        self.size = int(opts["size"])
        self.hflip = opts["hflip"] if hflip is None else hflip
        self.components = components

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        gt = read_face(self.paths[index], self.size)
        flipped = bool(self.hflip and rng.uniform() < 0.5)
        if flipped:
            gt = np.ascontiguousarray(gt[:, ::-1])
        lq, gt = degrade(gt, self.opts, rng, gen)
        item = {"lq": faces_to_tensor(lq)[0], "gt": faces_to_tensor(gt)[0], "index": torch.tensor(index)}
        if self.components is not None:
            item["loc"] = torch.from_numpy(self.components.locations(index, flipped))
        return item


class ResumableSampler(Sampler):
    """An endless stream of ``(index, seed)`` for one process, starting at any iteration.

    Epoch ``e`` visits the images in the order of a permutation seeded by ``(seed, e)``; the
    ``world × batch`` samples of an iteration are dealt out to the processes by rank.
    """

    def __init__(self, n: int, batch: int, seed: int, rank: int = 0, world: int = 1, start_iteration: int = 0):
        self.n, self.batch, self.seed, self.rank, self.world = n, batch, seed, rank, world
        self.start = start_iteration

    def _order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start * self.batch * self.world  # global sample counter
        cache: dict[int, list[int]] = {}
        while True:
            base = position + self.rank * self.batch
            for k in range(base, base + self.batch):
                epoch, offset = divmod(k, self.n)
                if epoch not in cache:
                    cache.clear()
                    cache[epoch] = self._order(epoch)
                # the sample's own seed: its global position, so nothing depends on the rank layout
                yield cache[epoch][offset], (self.seed * 7_919 + k) % (2 ** 63)
            position += self.batch * self.world

    def __len__(self) -> int:  # endless; DataLoader only needs it for progress estimates
        return 2 ** 62


def validation_set(paths: Sequence[Path], opts: Mapping[str, Any], seed: int = 1234) -> list[dict[str, torch.Tensor]]:
    """Held-out faces degraded once with fixed seeds (no flip): the same inputs at every validation."""
    ds = DegradedFaces(paths, opts, hflip=False)
    return [ds[(i, seed + i)] for i in range(len(paths))]
