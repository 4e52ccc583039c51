"""The OpenVINO backend: GFPGAN exported once per weights, cached, checked, selectable, stoppable.

One export (about 45 s on two cores) is shared by the module: a seeded v1.4-format checkpoint,
with ``GFP_HOME`` pointing at a temporary folder so the cache is this module's own.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import unavailable

pytestmark = pytest.mark.heavy

REPO = Path(__file__).resolve().parents[1]
LEVELS_PER_UNIT = 127.5  # [-1, 1] → 0…255


def require_openvino() -> None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        unavailable("openvino is not installed (requirements-test.txt)")


@pytest.fixture(scope="module")
def openvino_home(tmp_path_factory):
    require_openvino()
    home = tmp_path_factory.mktemp("gfp_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GFP_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from gfp_core.synthetic import write_random_checkpoint

    return write_random_checkpoint("v1.4", tmp_path_factory.mktemp("weights") / "GFPGANv1.4.pth", seed=3)


@pytest.fixture(scope="module")
def exported(openvino_home, checkpoint):
    """The checkpoint loaded on OpenVINO (exported and checked on this first load) and on PyTorch."""
    from gfp_core.weights import load_model_with_info

    on_openvino = load_model_with_info(checkpoint, allow_unverified=True, backend="openvino")
    on_torch = load_model_with_info(checkpoint, allow_unverified=True, backend="torch")
    return on_openvino, on_torch


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Two 512² crops of a real photo (scikit-image's astronaut, and its mirror image)."""
    from skimage.data import astronaut

    photo = astronaut()
    return np.stack([photo, np.ascontiguousarray(photo[:, ::-1])])


def cache_folder(home: Path) -> Path:
    folders = [p for p in (home / "openvino").iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1, folders
    return folders[0]


def test_first_load_exports_checks_and_caches(exported, openvino_home):
    on_openvino, _ = exported
    assert on_openvino.info.backend == "openvino"
    folder = cache_folder(openvino_home)
    for name in ("encoder", "prior_start", "prior_end"):
        assert (folder / f"{name}.xml").is_file() and (folder / f"{name}.bin").stat().st_size > 1000
    record = json.loads((folder / "check.json").read_text())
    assert set(record["max_abs_diff"]) == {"1", "0.5", "0"}
    assert record["max_abs_diff"]["1"] <= 0.05 and record["openvino_s"] > 0 and record["torch_s"] > 0
    assert not [p for p in (openvino_home / "openvino").iterdir() if p.name.startswith(".")]  # no partial export left


def test_restored_faces_stay_within_tolerance_of_pytorch(exported, faces):
    from gfp_core.restore import restore_aligned

    on_openvino, on_torch = exported
    ours = restore_aligned(on_openvino.module, faces, batch_size=2).astype(int)
    reference = restore_aligned(on_torch.module, faces, batch_size=2).astype(int)
    difference = np.abs(ours - reference)
    assert difference.max() <= 0.05 * LEVELS_PER_UNIT + 1  # + 1: both sides round to 8 bits
    assert difference.mean() < 2


def test_fidelity_is_a_graph_input_and_uncovered_fidelities_run_on_pytorch(exported, faces):
    from gfp_core.restore import restore_aligned

    on_openvino, on_torch = exported
    record = on_openvino.module.record
    published = restore_aligned(on_openvino.module, faces[:1], fidelity=1.0)
    for fidelity in (0.5, 0.0):
        ours = restore_aligned(on_openvino.module, faces[:1], fidelity=fidelity)
        reference = restore_aligned(on_torch.module, faces[:1], fidelity=fidelity)
        assert np.abs(ours.astype(int) - published).mean() > 1  # the weight changes the face
        if record.covers(fidelity):
            assert np.abs(ours.astype(int) - reference).max() <= 0.05 * LEVELS_PER_UNIT + 1
        else:  # not matched closely enough on first use: PyTorch computes it, bit for bit
            np.testing.assert_array_equal(ours, reference)


def test_second_load_reads_the_cache(exported, openvino_home, checkpoint, faces):
    from gfp_core.restore import restore_aligned
    from gfp_core.weights import load_model_with_info

    folder = cache_folder(openvino_home)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = load_model_with_info(checkpoint, allow_unverified=True, backend="openvino")
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert again.module.record == exported[0].module.record
    np.testing.assert_array_equal(restore_aligned(again.module, faces[:1]), restore_aligned(exported[0].module, faces[:1]))


def test_auto_follows_the_first_use_measurement(exported, openvino_home, checkpoint):
    from gfp_core.weights import load_model_with_info

    record = exported[0].module.record
    chosen = load_model_with_info(checkpoint, allow_unverified=True, backend="auto").info.backend
    assert chosen == ("openvino" if record.faster else "torch")

    # a machine where the export measured slower: auto keeps PyTorch, an explicit choice still gets OpenVINO
    path = cache_folder(openvino_home) / "check.json"
    saved = path.read_text()
    try:
        slower = json.loads(saved) | {"openvino_s": 99.0, "torch_s": 1.0}
        path.write_text(json.dumps(slower))
        assert load_model_with_info(checkpoint, allow_unverified=True, backend="auto").info.backend == "torch"
        assert load_model_with_info(checkpoint, allow_unverified=True, backend="openvino").info.backend == "openvino"
    finally:
        path.write_text(saved)


def test_a_stop_interrupts_a_running_graph_and_the_model_still_works(exported, faces):
    from gfp_core.restore import restore_aligned

    model = exported[0].module
    before = restore_aligned(model, faces[:1])

    class Stopped(Exception):
        pass

    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()  # a user pressing stop while the first graph runs

    def should_stop() -> None:
        if stop.is_set():
            raise Stopped

    started = time.perf_counter()
    with pytest.raises(Stopped):
        restore_aligned(model, faces, batch_size=1, should_stop=should_stop)
    stopped_after = time.perf_counter() - started
    assert stopped_after < model.record.openvino_s * 2  # two faces were asked for: it did not finish them
    np.testing.assert_array_equal(restore_aligned(model, faces[:1]), before)


def test_damaged_cache_is_exported_again(exported, openvino_home, checkpoint, caplog):
    from gfp_core.weights import load_model_with_info

    folder = cache_folder(openvino_home)
    (folder / "prior_end.bin").write_bytes(b"not the weights")
    with caplog.at_level(logging.WARNING, logger="gfp_core.backends.openvino"):
        repaired = load_model_with_info(checkpoint, allow_unverified=True, backend="openvino")
    assert "cannot be used" in caplog.text
    assert repaired.info.backend == "openvino"
    assert (cache_folder(openvino_home) / "prior_end.bin").stat().st_size > 1000


def test_explicit_openvino_is_refused_where_it_cannot_run(openvino_home, checkpoint, tmp_path):
    from gfp_core.errors import InvalidOptionError
    from gfp_core.synthetic import write_random_checkpoint
    from gfp_core.weights import load_model

    with pytest.raises(InvalidOptionError, match="exact"):
        load_model(checkpoint, allow_unverified=True, backend="openvino", exact=True)
    original = write_random_checkpoint("v1", tmp_path / "GFPGANv1.pth")  # not offered: its check misses by far
    with pytest.raises(InvalidOptionError, match="v1.2 to v1.4"):
        load_model(original, allow_unverified=True, backend="openvino")
    with pytest.raises(InvalidOptionError, match="backend must be one of auto, torch, openvino"):
        load_model(checkpoint, allow_unverified=True, backend="tensorrt")
    # auto quietly keeps PyTorch for what OpenVINO does not run
    from gfp_core.weights import load_model_with_info

    assert load_model_with_info(original, allow_unverified=True, backend="auto").info.backend == "torch"


def test_cli_restores_on_openvino_and_says_so(exported, openvino_home, checkpoint, faces, tmp_path):
    from PIL import Image

    crop = tmp_path / "face.png"
    Image.fromarray(faces[0]).save(crop)
    env = dict(os.environ, GFP_HOME=str(openvino_home), PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-m", "gfp_core", "restore", str(crop), "-o", str(tmp_path / "out"),
                          "--aligned", "--model", str(checkpoint), "--allow-unverified", "--backend", "openvino"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "on OpenVINO" in run.stderr
    restored = list((tmp_path / "out").rglob("face*.png"))
    assert restored, list((tmp_path / "out").rglob("*"))

    bad = subprocess.run([sys.executable, "-m", "gfp_core", "restore", str(crop), "-o", str(tmp_path / "bad"),
                          "--backend", "tensorrt"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "--backend" in bad.stderr and "openvino" in bad.stderr


def test_an_unwritable_cache_keeps_pytorch_under_auto_and_says_why_under_openvino(checkpoint, tmp_path, monkeypatch,
                                                                                 caplog):
    from gfp_core.errors import GFPError
    from gfp_core.weights import load_model_with_info

    require_openvino()
    blocked = tmp_path / "home"
    blocked.write_text("a file where the cache folder would go")  # no folder can be made under it
    monkeypatch.setenv("GFP_HOME", str(blocked))
    with caplog.at_level(logging.WARNING, logger="gfp_core.backends"):
        assert load_model_with_info(checkpoint, allow_unverified=True, backend="auto").info.backend == "torch"
    assert "GFP_HOME" in caplog.text
    with pytest.raises(GFPError, match="cannot be saved"):
        load_model_with_info(checkpoint, allow_unverified=True, backend="openvino")


def test_a_bad_gfp_backend_is_named_as_the_environment_variable(tmp_path, monkeypatch):
    """The variable, not a flag the user never gave: the CLI's flag renaming leaves this message as it is."""
    from gfp_core.synthetic import write_random_checkpoint

    from PIL import Image
    from skimage.data import astronaut

    checkpoint = write_random_checkpoint("v1.4", tmp_path / "model.pth")
    Image.fromarray(astronaut()).save(tmp_path / "face.png")
    env = dict(os.environ, GFP_BACKEND="bogus", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-m", "gfp_core", "restore", str(tmp_path / "face.png"), "-o",
                          str(tmp_path / "out"), "--aligned", "--model", str(checkpoint), "--allow-unverified"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode != 0
    assert "the environment variable GFP_BACKEND must be one of auto, torch, openvino, got 'bogus'" in run.stderr
    assert "--backend" not in run.stderr
