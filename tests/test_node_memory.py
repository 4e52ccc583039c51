"""The nodes' memory functions outside ComfyUI: batches halved on out-of-memory, nothing managed."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from helpers import forget_modules, import_pack

PACK = "gfp_pack_memory_test"


@pytest.fixture
def memory():
    try:
        import_pack(PACK)
        yield importlib.import_module(f"{PACK}.nodes.memory")
    finally:
        forget_modules(PACK)


def test_a_batch_that_runs_out_of_memory_is_halved_and_retried(memory):
    sizes: list[int] = []

    def run(part: np.ndarray, size: int) -> np.ndarray:
        sizes.append(len(part))
        if len(part) > 2:  # a device that fits two faces at a time
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return part * 10

    items = np.arange(7)
    out = memory.in_halves(run, items, 8)
    assert out.tolist() == (items * 10).tolist()  # every item once, in order
    assert sizes == [7, 4, 2, 2, 2, 1]  # 8 fails, 4 fails, then pairs


def test_one_face_that_does_not_fit_is_an_error(memory):
    def run(part: np.ndarray, size: int) -> np.ndarray:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        memory.in_halves(run, np.arange(3), 4)


def test_outside_comfyui_nothing_is_managed(memory):
    net = torch.nn.Conv2d(3, 3, 1)
    managed = memory.Managed(net, net)
    assert managed.patcher is None and memory.value(managed) is net
    with memory.on_device([managed], 1e9):
        pass
    assert memory.restore_memory(net, 4) == 4 * memory.FACE_FORWARD_BYTES
    assert memory.detect_memory((2560, 1280)) == 1280 * 640 * memory.DETECT_BYTES_PER_PIXEL
