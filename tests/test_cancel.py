"""Stopping a restoration inside the forward pass: ``restore_aligned(..., should_stop=...)``.

Progress is measured in blocks run (forward hooks on the U-Net blocks and the style convolutions),
never in time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gfp_core.archs import GFPGANv1Clean
from gfp_core.restore import restore_aligned

ASSETS = Path(__file__).resolve().parents[1] / "assets"


class Stop(Exception):
    pass


def stage_modules(model: GFPGANv1Clean) -> list[torch.nn.Module]:
    """The blocks a forward pass runs, in order of execution."""
    g = model.stylegan_decoder
    return [*model.conv_body_down, *model.conv_body_up, g.style_conv1, *g.style_convs]


def record_blocks(model: GFPGANv1Clean) -> tuple[list[int], list]:
    """A list that grows by one for every block that starts, and the hooks (to remove)."""
    ran: list[int] = []
    handles = [m.register_forward_pre_hook(lambda _m, _a, i=i: ran.append(i))
               for i, m in enumerate(stage_modules(model))]
    return ran, handles


def stop_after(n: int, log: list[int] | None = None, ran: list[int] | None = None):
    """A should_stop that raises on its n-th call; ``log`` gets the number of blocks run at each call."""
    calls = 0

    def should_stop() -> None:
        nonlocal calls
        calls += 1
        if log is not None:
            log.append(len(ran))
        if calls == n:
            raise Stop(f"stop requested at check {n}")
    return should_stop


@pytest.fixture(scope="module")
def full_model() -> GFPGANv1Clean:
    """A seeded random GFPGANv1Clean at the published size (512 px, channel multiplier 2)."""
    torch.manual_seed(0)
    return GFPGANv1Clean().eval()


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    return torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.fixture(scope="module")
def check_schedule(full_model, face) -> list[int]:
    """Blocks run before each check of one whole forward pass."""
    ran, handles = record_blocks(full_model)
    log: list[int] = []
    try:
        with torch.inference_mode():
            full_model(face, return_rgb=False, check=stop_after(0, log, ran))
    finally:
        for h in handles:
            h.remove()
    assert ran == list(range(len(stage_modules(full_model))))  # every block once, in order
    return log + [len(ran)]  # and all of them after the last check


@pytest.mark.heavy
def test_checks_are_spread_over_the_whole_forward(full_model, check_schedule):
    blocks = len(stage_modules(full_model))
    assert len(check_schedule) - 1 == 22  # 7 encoder + 7 decoder blocks, 8 generator resolutions
    gaps = np.diff(check_schedule)
    assert check_schedule[0] == 0 and check_schedule[-1] == blocks
    # between two checks at most one U-Net block or one resolution (two style convs) runs
    assert gaps.max() <= 2, gaps


@pytest.mark.heavy
@pytest.mark.parametrize("n", [1, 9, 22])
def test_a_raising_check_stops_the_forward(full_model, face, check_schedule, n):
    ran, handles = record_blocks(full_model)
    try:
        with torch.inference_mode(), pytest.raises(Stop):
            full_model(face, return_rgb=False, check=stop_after(n))
    finally:
        for h in handles:
            h.remove()
    assert len(ran) == check_schedule[n - 1]  # nothing after the check that raised
    assert len(ran) < len(stage_modules(full_model))


@pytest.mark.heavy
def test_restore_aligned_stops_during_the_first_face(full_model):
    faces = np.random.default_rng(0).integers(0, 256, (4, 512, 512, 3), dtype=np.uint8)
    ran, handles = record_blocks(full_model)
    forwards = []
    start = full_model.register_forward_pre_hook(lambda *_: forwards.append(len(ran)))
    batches = []
    requested = False

    def should_stop() -> None:  # a stop is requested once the first face is a third of the way
        nonlocal requested
        requested = requested or len(ran) >= 6
        if requested:
            raise Stop("interrupted")

    try:
        with pytest.raises(Stop, match="interrupted"):
            restore_aligned(full_model, faces, batch_size=1, on_batch=batches.append, should_stop=should_stop)
    finally:
        for h in (*handles, start):
            h.remove()
    assert forwards == [0]  # the later faces never started
    assert batches == []
    assert 6 <= len(ran) <= 8  # the first face stopped at the next check


def test_should_stop_that_never_stops_changes_nothing(tiny_checkpoint):
    from gfp_core.weights import load_model

    model = load_model(tiny_checkpoint, device="cpu", exact=True)
    faces = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    calls = []
    plain = restore_aligned(model, faces, batch_size=2)
    checked = restore_aligned(model, faces, batch_size=2, should_stop=lambda: calls.append(1))
    assert np.array_equal(plain, checked)
    # per batch: one before it, 3·log2(64) − 5 = 13 in the forward
    assert len(calls) == 2 * (1 + 13)


@pytest.mark.heavy
def test_a_stop_during_a_four_face_photo_lands_inside_the_first_forward(full_model):
    """The engine (every front end's path) hands ``should_stop`` to the forward pass: a stop requested
    while the first of four faces is being restored ends the run before that forward completes."""
    from PIL import Image

    from gfp_core.pipeline import FaceRestorer

    photo = Image.open(ASSETS / "astronaut.jpg").convert("RGB").resize((256, 256))
    row = np.concatenate([np.asarray(photo)] * 4, axis=1)
    restorer = FaceRestorer(full_model, detector="embedded", upscale=1)
    ran, handles = record_blocks(full_model)
    forwards = []
    start = full_model.register_forward_pre_hook(lambda *_: forwards.append(len(ran)))
    stages: list[tuple[str, float]] = []

    def should_stop() -> None:  # the stop is requested once the first face is a third of the way
        if len(ran) >= 6:
            raise Stop("interrupted")

    try:
        with pytest.raises(Stop, match="interrupted"):
            restorer.restore(row, on_progress=lambda s, f: stages.append((s, f)), should_stop=should_stop)
    finally:
        for h in (*handles, start):
            h.remove()
    assert restorer.detect(row) and len(restorer.detect(row)) == 4
    assert forwards == [0]  # one forward started, none completed, the other faces never began
    assert 6 <= len(ran) <= 8
    assert ("paste", 0.9) not in stages
