"""Trainer configuration, data and boxes: recipes, overrides and the errors a user sees; seeded samples."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from train.__main__ import main
from train.components import ComponentBoxes, boxes_from_five_points, read_landmarks_file, write_landmarks_file
from train.config import DEFAULTS, ConfigError, load_config
from train.data import DegradedFaces, ResumableSampler, list_images


def test_official_recipe_has_the_official_values() -> None:
    cfg = load_config("gfpgan_v1")
    assert cfg["model"]["arch"] == "GFPGANv1" and cfg["model"]["fix_decoder"] and cfg["model"]["init"] == "decoder"
    assert cfg["loss"] == DEFAULTS["loss"]  # the defaults are the official recipe's loss weights
    assert cfg["train"]["lr_g"] == cfg["train"]["lr_d"] == cfg["train"]["lr_component"] == 2e-3
    assert cfg["train"]["milestones"] == [600000, 700000] and cfg["train"]["iterations"] == 800000
    assert cfg["data"]["blur_kernel_size"] == 41 and cfg["data"]["downsample_range"] == [0.8, 8]
    assert cfg["data"]["batch_size"] == 3


def test_recipes_inherit_and_overrides_win(tmp_path) -> None:
    fine = load_config("finetune", ["data.train=faces", "train.lr_g=3e-5", "loss.gan=0", "data.noise_range=~"])
    assert fine["model"]["init"] == "pretrained" and fine["model"]["arch"] == "GFPGANv1Clean"
    assert fine["loss"]["style"] == 50  # from gfpgan_v1, its base
    assert fine["train"]["lr_g"] == 3e-5 and fine["loss"]["gan"] == 0 and fine["data"]["noise_range"] is None
    own = tmp_path / "mine.yml"
    own.write_text("base: tiny_cpu.yml\ndata:\n  size: 32\n")
    cfg = load_config(own)
    assert cfg["data"]["size"] == cfg["model"]["out_size"] == 32 and cfg["model"]["vgg"] == "random"


@pytest.mark.parametrize("overrides, message", [
    (["train.lr_gen=1"], "unknown setting 'train.lr_gen'"),
    (["train.iterations=many"], "'train.iterations' must be like"),
    (["model.arch=GFPGANv2"], "must be one of GFPGANv1Clean, GFPGANv1"),
    (["data.size=100"], "power of two"),
    (["data.blur_sigma=[3, 1]"], "low <= high"),
    (["data.batch_size=6"], "multiple of 4"),
    (["model.init=scratch", "model.fix_decoder=true"], "freeze a random StyleGAN2"),
    (["iterations"], "key.path=value"),
])
def test_bad_settings_are_refused_with_the_key_named(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config("tiny_cpu", overrides)


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys) -> None:
    assert main(["--config", str(tmp_path / "missing.yml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--config", "tiny_cpu", f"output={tmp_path}"]) == 2
    assert "data.train is not set" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--config", "tiny_cpu", f"data.train={empty}", f"output={tmp_path / 'run'}"]) == 2
    assert "holds no images" in capsys.readouterr().err


def _faces(tmp_path, n: int = 3, size: int = 64):
    from gfp_core.image import save_rgb

    rng = np.random.default_rng(0)
    folder = tmp_path / "faces"
    for i in range(n):
        save_rgb(folder / f"f{i}.png", (rng.random((size, size, 3)) * 255).astype(np.uint8))
    return folder


def test_samples_are_reproducible_from_their_seed_and_degraded(tmp_path) -> None:
    folder = _faces(tmp_path)
    cfg = load_config("tiny_cpu", [f"data.train={folder}", "data.gray_prob=0"])
    ds = DegradedFaces(list_images(folder), cfg["data"])
    a, b, c = ds[(1, 42)], ds[(1, 42)], ds[(1, 43)]
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    assert not torch.equal(a["lq"], c["lq"])
    assert a["lq"].shape == (3, 64, 64) and a["lq"].min() >= -1 and a["lq"].max() <= 1
    assert (a["lq"] - a["gt"]).abs().mean() > 0.01  # degraded, not a copy
    # the input is an 8-bit image: every value on the 1/255 grid
    levels = (a["lq"] + 1) / 2 * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)


def test_list_file_and_sampler_resume(tmp_path) -> None:
    folder = _faces(tmp_path, n=5)
    listing = tmp_path / "train.txt"
    listing.write_text("# faces\nfaces/f0.png\nfaces/f3.png\n")
    assert [p.name for p in list_images(listing)] == ["f0.png", "f3.png"]
    full = iter(ResumableSampler(5, 2, seed=3, rank=1, world=2))
    keys = [next(full) for _ in range(10)]  # 5 iterations of rank 1
    resumed = iter(ResumableSampler(5, 2, seed=3, rank=1, world=2, start_iteration=3))
    assert [next(resumed) for _ in range(4)] == keys[6:]
    rank0 = iter(ResumableSampler(5, 2, seed=3, rank=0, world=2))
    first_epoch = [next(rank0)[0] for _ in range(2)] + [k[0] for k in keys[:2]]
    assert len(set(first_epoch)) == 4  # the two ranks draw different images of one permutation
    assert folder.is_dir()


def test_landmark_boxes_round_trip_and_flip(tmp_path) -> None:
    from gfp_core.face.align import face_template

    boxes = {"a.png": boxes_from_five_points(face_template(512), 512)}
    path = write_landmarks_file(boxes, tmp_path / "boxes.pth")
    back = read_landmarks_file(path)
    assert np.allclose(back["a.png"]["mouth"], boxes["a.png"]["mouth"])
    comp = ComponentBoxes(back, ["a.png"], 512, 1.0, 1.4)
    plain, flipped = comp.locations(0, False), comp.locations(0, True)
    # the template's left eye is at x≈193: its box holds it; flipped, the left box is the mirrored right eye
    assert plain[0, 0] < 193 < plain[0, 2] and plain[2, 1] < 371 < plain[2, 3]
    assert np.isclose(flipped[0, 0] + plain[1, 2], 512 + 1, atol=1e-3)


class _CallsCodeWhenUnpickled:
    """Unpickling this calls ``open(marker, 'w')``: no torch release's weights-only loader allows
    ``open``, so the refusal does not depend on one release's list of harmless types."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_unsafe_landmarks_file_is_refused(tmp_path) -> None:
    from gfp_core.errors import UnsupportedCheckpointError

    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"00000000": {"left_eye": _CallsCodeWhenUnpickled(marker)}}, path)
    with pytest.raises(UnsupportedCheckpointError, match="not a readable landmarks file") as err:
        read_landmarks_file(path)
    assert "refused" in str(err.value) and "open" in str(err.value)
    assert not marker.exists()


def test_landmarks_file_of_the_wrong_shape_is_refused(tmp_path) -> None:
    """Harmless objects that are no boxes (what some torch releases accept, e.g. an exception
    object) are refused by the reader's own check, whatever torch let through."""
    from gfp_core.errors import UnsupportedCheckpointError

    path = tmp_path / "odd.pth"
    torch.save({"00000000": {"left_eye": torch.zeros(2)}}, path)
    with pytest.raises(UnsupportedCheckpointError, match="00000000"):
        read_landmarks_file(path)
