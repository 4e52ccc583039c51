"""``python -m train evaluate``: the measures agree with their references, and the command compares
models on a test set built from a real photo."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gfp_core.errors import GFPError

ROOT = Path(__file__).resolve().parents[1]


def astronaut_folder(folder: Path) -> Path:
    """``folder`` holding one real photo: scikit-image's astronaut (one face)."""
    from skimage.data import astronaut

    folder.mkdir(exist_ok=True)
    Image.fromarray(astronaut()).save(folder / "astronaut.png")
    return folder


@pytest.fixture(scope="module")
def testset(tmp_path_factory) -> Path:
    """A 512-px test set from the astronaut, built as a user would."""
    from train.testset import build_testset

    out = tmp_path_factory.mktemp("sets") / "astronaut"
    build_testset([astronaut_folder(tmp_path_factory.mktemp("photos"))], out)
    return out


@pytest.fixture(scope="module")
def pair(testset) -> tuple[np.ndarray, np.ndarray]:
    manifest = json.loads((testset / "manifest.json").read_text())
    first = manifest["pairs"][0]
    return np.asarray(Image.open(testset / first["lq"])), np.asarray(Image.open(testset / first["gt"]))


@pytest.fixture(scope="module")
def offline_home(tmp_path_factory):
    """No ArcFace weights and no network: the identity column must be left out, not fail the run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GFP_HOME", str(tmp_path_factory.mktemp("home")))
        patch.setenv("GFP_MODEL_DIRS", "")
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


def test_psnr_and_ssim_agree_with_basicsr(pair):
    from official import load_official

    from train.measures import build_measures

    load_official()  # basicsr imports only with the torchvision shim
    from basicsr.metrics import calculate_psnr, calculate_ssim

    degraded, truth = pair
    (psnr, ssim), _ = build_measures(("psnr", "ssim"))
    assert psnr.compute(degraded, truth) == pytest.approx(calculate_psnr(degraded, truth, crop_border=0), abs=1e-9)
    assert ssim.compute(degraded, truth) == pytest.approx(calculate_ssim(degraded, truth, crop_border=0), abs=1e-6)
    assert psnr.compute(truth, truth) == math.inf and ssim.compute(truth, truth) == pytest.approx(1.0)


def test_identity_angle_agrees_with_the_official_arcface(pair, tmp_path):
    from official import load_official

    from train.measures import build_measures

    load_official()
    from gfpgan.archs.arcface_arch import ResNetArcFace

    torch.manual_seed(5)
    official = ResNetArcFace("IRBlock", (2, 2, 2, 2), use_se=False).eval()
    weights = tmp_path / "arcface_seeded.pth"
    torch.save(official.state_dict(), weights)
    (identity,), missing = build_measures(("identity",), identity_weights=str(weights))
    assert not missing

    degraded, truth = pair

    def grey(img: np.ndarray) -> torch.Tensor:  # GFPGANModel.gray_resize_for_identity, on [-1, 1] RGB
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
        luma = 0.2989 * x[:, 0:1] + 0.5870 * x[:, 1:2] + 0.1140 * x[:, 2:3]
        return torch.nn.functional.interpolate(luma, (128, 128), mode="bilinear", align_corners=False)

    with torch.no_grad():
        a, b = official(grey(degraded))[0], official(grey(truth))[0]
    expected = math.degrees(math.acos(float(torch.nn.functional.cosine_similarity(a, b, dim=0).clamp(-1, 1))))
    assert identity.compute(degraded, truth) == pytest.approx(expected, abs=1e-3)
    assert identity.compute(truth, truth) == pytest.approx(0.0, abs=0.1)


def test_lpips_agrees_with_the_lpips_package_given_the_same_alexnet(pair, tmp_path):
    import warnings

    import lpips
    import torchvision

    from train.measures import build_measures

    torch.manual_seed(9)
    alexnet = torchvision.models.alexnet(weights=None).eval()  # a torchvision-format file, seeded
    weights = tmp_path / "alexnet_seeded.pth"
    torch.save(alexnet.state_dict(), weights)
    (measure,), missing = build_measures(("lpips",), lpips_weights=str(weights))
    assert not missing

    # the reference: lpips as it builds itself with pretrained=True, its backbone layers taken from torchvision's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    slices = [range(0, 2), range(2, 5), range(5, 8), range(8, 10), range(10, 12)]
    for k, indices in enumerate(slices, start=1):
        for x in indices:
            getattr(reference.net, f"slice{k}")._modules[str(x)] = alexnet.features[x]
    degraded, truth = pair
    as_input = lambda img: torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
    with torch.no_grad():
        expected = float(reference(as_input(degraded), as_input(truth)))
    assert measure.compute(degraded, truth) == pytest.approx(expected, rel=1e-5)
    assert measure.compute(truth, truth) == pytest.approx(0.0, abs=1e-6)


def basicsr_niqe_params() -> Path:
    """The pristine model as basicsr ships it (the registry's niqe_pris_params file)."""
    from official import load_official

    load_official()
    import basicsr

    return Path(basicsr.__file__).parent / "metrics" / "niqe_pris_params.npz"


def test_niqe_agrees_with_basicsr(pair):
    from basicsr.metrics.niqe import calculate_niqe
    from basicsr.utils.matlab_functions import imresize

    from train.measures import build_measures
    from train.niqe import matlab_half

    (niqe,), missing = build_measures(("niqe",), niqe_params=str(basicsr_niqe_params()))
    assert not missing and not niqe.needs_gt
    _, too_small = build_measures(("niqe",), niqe_params=str(basicsr_niqe_params()), face_size=64)
    assert too_small["niqe"] == "niqe: needs faces of 96 px or more; these are 64 px"  # its 96 px blocks
    for img in pair:
        assert niqe.compute(img, None) == pytest.approx(calculate_niqe(img[:, :, ::-1], crop_border=0), abs=0.01)
    degraded, truth = pair
    assert niqe.compute(degraded, None) > niqe.compute(truth, None)  # the degraded face looks less natural
    grey = np.random.default_rng(0).random((200, 150)).astype(np.float32)
    np.testing.assert_allclose(matlab_half(grey), imresize(grey, 0.5), atol=1e-6)  # MATLAB's imresize


@pytest.fixture(scope="module")
def fid_inception(tmp_path_factory) -> Path:
    """A seeded Inception in the FID weights' format (torchvision's InceptionV3, 1008 classes, no aux)."""
    import torchvision

    torch.manual_seed(5)
    net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=True)
    path = tmp_path_factory.mktemp("fid") / "pt_inception_seeded.pth"
    torch.save(net.state_dict(), path)
    return path


def face_sets(pair) -> tuple[np.ndarray, np.ndarray]:
    """Three degraded faces and their three ground truths: the pair, mirrored and moved."""
    variants = lambda img: np.stack([img, img[:, ::-1], np.roll(img, 24, axis=0)])  # noqa: E731
    degraded, truth = pair
    return variants(degraded), variants(truth)


def test_fid_agrees_with_basicsr_given_the_same_inception(pair, fid_inception, monkeypatch):
    from official import load_official

    from train.measures import build_measures, frechet_distance, load_fid_inception

    load_official()
    import basicsr.archs.inception as basicsr_inception
    from basicsr.metrics.fid import calculate_fid, extract_inception_features, load_patched_inception_v3

    degraded, truths = face_sets(pair)
    # the features: basicsr's Inception (GFPGAN's FID) given the same weights, fed [-1, 1] as it expects
    state = torch.load(fid_inception, weights_only=True)
    monkeypatch.setattr(basicsr_inception, "load_url", lambda *args, **kwargs: state)
    monkeypatch.setattr(basicsr_inception, "LOCAL_FID_WEIGHTS", "/nonexistent")
    reference = load_patched_inception_v3("cpu")
    as_batch = lambda faces: torch.from_numpy(faces.copy()).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    expected = extract_inception_features([as_batch(degraded)], reference, device="cpu").numpy()
    ours = load_fid_inception(fid_inception, torch.device("cpu"))
    with torch.no_grad():
        found = ours(torch.from_numpy(degraded.copy()).permute(0, 3, 1, 2).float() / 255)[0].flatten(1).numpy()
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())

    # the distance: equal to basicsr's calculate_fid where its square root is well posed (more samples
    # than features)...
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 64)) @ rng.normal(size=(64, 64)), rng.normal(1, 2, size=(300, 64))
    mu_b, sigma_b = b.mean(0), np.cov(b, rowvar=False)
    assert frechet_distance(a, mu_b, sigma_b) == pytest.approx(
        calculate_fid(a.mean(0), np.cov(a, rowvar=False), mu_b, sigma_b), rel=1e-8)
    # ...and on three faces a number where basicsr's complex square root fails (shown on 256 of the
    # features: its square root of 2048 × 2048 takes a minute)
    few = expected[:, :256].astype(np.float64)
    stats = [s for f in (few, few[::-1] * 1.1) for s in (f.mean(0), np.cov(f, rowvar=False))]
    with pytest.raises(ValueError, match="Imaginary component"):
        calculate_fid(*stats)
    assert frechet_distance(few, *stats[2:]) > 0
    (fid,), missing = build_measures(("fid",), fid_weights=str(fid_inception))
    assert not missing and fid.needs_gt
    apart = fid.compute(degraded, truths)
    assert apart > 0 and fid.compute(truths, degraded) == pytest.approx(apart, rel=1e-6)  # symmetric
    assert fid.compute(truths, truths) == pytest.approx(0, abs=1e-9 * apart)  # a set against itself
    assert math.isnan(fid.compute(degraded[:1], truths[:1]))  # one face has no covariance


def test_fid_refuses_weights_that_are_not_its_inception(tmp_path):
    import torchvision

    from train.measures import build_measures

    torch.save(torchvision.models.alexnet(weights=None).state_dict(), tmp_path / "alexnet.pth")
    with pytest.raises(GFPError, match="alexnet.pth is not the FID Inception"):
        build_measures(("fid",), fid_weights=str(tmp_path / "alexnet.pth"))
    np.savez(tmp_path / "stats.npz", mu=np.zeros(3), sigma=np.eye(3))
    with pytest.raises(GFPError, match="2048"):
        build_measures(("fid",), fid_weights=str(tmp_path / "alexnet.pth"), fid_stats=str(tmp_path / "stats.npz"))


def test_fid_of_a_wild_set_against_a_statistics_file(pair, fid_inception, tmp_path):
    from train.measures import build_measures, load_fid_inception

    degraded, truths = face_sets(pair)
    net = load_fid_inception(fid_inception, torch.device("cpu"))
    with torch.no_grad():  # statistics of the ground truths, as pytorch-fid's --save-stats writes them
        features = net(torch.from_numpy(truths.copy()).permute(0, 3, 1, 2).float() / 255)[0].flatten(1).double().numpy()
    np.savez(tmp_path / "truths.npz", mu=features.mean(0), sigma=np.cov(features, rowvar=False))
    (from_file,), missing = build_measures(("fid",), fid_weights=str(fid_inception),
                                           fid_stats=str(tmp_path / "truths.npz"), ground_truth=False)
    (from_truths,), _ = build_measures(("fid",), fid_weights=str(fid_inception))
    assert not missing and not from_file.needs_gt
    assert from_file.compute(degraded, None) == pytest.approx(from_truths.compute(degraded, truths), rel=1e-6)
    _, missing = build_measures(("fid",), fid_weights=str(fid_inception), ground_truth=False)
    assert "--fid-stats" in missing["fid"]


def test_landmark_distance_is_small_for_the_same_face_and_grows_when_it_moves(pair):
    from train.measures import build_measures

    (lmd,), _ = build_measures(("lmd",))
    _, truth = pair
    assert lmd.compute(truth, truth) == pytest.approx(0.0, abs=1e-6)
    moved = np.roll(truth, 12, axis=1)  # the whole face 12 px to the right
    assert 8 < lmd.compute(moved, truth) < 16
    assert math.isnan(lmd.compute(np.full_like(truth, 127), truth))  # no face: not a number, not a crash


@pytest.mark.heavy
def test_evaluate_compares_two_models_and_writes_its_files(testset, offline_home, tmp_path):
    from gfp_core.synthetic import write_random_checkpoint

    first = write_random_checkpoint("v1.4", tmp_path / "first.pth", seed=1)
    second = write_random_checkpoint("v1.4", tmp_path / "second.pth", seed=2)
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "train", "evaluate", str(testset), "-m", str(first), "-m", str(second),
                           "--allow-unverified", "--backend", "torch", "-o", str(out), "--sheet-every", "4",
                           "--with-inputs"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in report["results"]] == ["input (degraded)", str(first), str(second)]
    assert [m["name"] for m in report["measures"]] == ["psnr", "ssim", "lmd"]  # lpips, fid, identity: no weights
    assert "arcface" in report["missing"]["identity"]  # offline and absent: the column is left out, with why
    assert "alexnet" in report["missing"]["lpips"].lower() and "niqe_pris_params" in report["missing"]["niqe"]
    assert "pt_inception" in report["missing"]["fid"]
    inputs, firsts, seconds = (r["means"] for r in report["results"])
    from train.metrics import psnr

    first_pair = json.loads((testset / "manifest.json").read_text())["pairs"][0]
    degraded, truth = (np.asarray(Image.open(testset / first_pair[part])) for part in ("lq", "gt"))
    assert inputs["psnr"] == pytest.approx(psnr(degraded, truth))  # the input row: the set's own pairs
    assert firsts["psnr"] != seconds["psnr"]  # two different models, two different results
    table = (out / "results.md").read_text()
    assert table in done.stdout and "| PSNR (dB) ↑ | SSIM ↑ | LMD (px) ↓ | s / face |" in table
    assert "identity: not measured" in table
    assert (out / "results.csv").read_text().splitlines()[0] == "model,psnr,ssim,lmd,seconds_per_face"
    sheet = Image.open(out / "sheet_000.jpg")
    assert sheet.size == (512 * 4, 512)  # input | two models | ground truth, one face


def test_a_test_set_of_another_size_is_refused(tmp_path, offline_home):
    from gfp_core.synthetic import write_random_checkpoint
    from train.evaluate import evaluate
    from train.testset import build_testset

    photos = astronaut_folder(tmp_path / "photos")
    build_testset([photos], tmp_path / "small", size=128)
    model = write_random_checkpoint("v1.4", tmp_path / "model.pth")
    with pytest.raises(GFPError, match="build the set with --size 512"):
        evaluate(tmp_path / "small", [str(model)], allow_unverified=True, backend="torch", measures=("psnr",))
    with pytest.raises(GFPError, match="no manifest.json"):
        evaluate(photos, [str(model)], allow_unverified=True, backend="torch")
    (tmp_path / "small" / "manifest.json").write_text('{"pairs": [')  # cut short
    with pytest.raises(GFPError, match="manifest.json is damaged"):
        evaluate(tmp_path / "small", [str(model)], allow_unverified=True, backend="torch")


@pytest.mark.heavy
def test_a_wild_set_gets_the_no_reference_measure(tmp_path, offline_home):
    from gfp_core.synthetic import write_random_checkpoint
    from train.evaluate import evaluate
    from train.testset import build_testset

    photos = astronaut_folder(tmp_path / "photos")
    build_testset([photos], tmp_path / "wild", wild=True)
    model = write_random_checkpoint("v1.4", tmp_path / "model.pth")
    report = evaluate(tmp_path / "wild", [str(model)], allow_unverified=True, backend="torch",
                      niqe_params=str(basicsr_niqe_params()), output=tmp_path / "out")
    assert [m["name"] for m in report["measures"]] == ["niqe"]
    assert "ground truth" in report["missing"]["psnr"] and report["results"][0]["means"]["niqe"] > 0


@pytest.mark.heavy
def test_restoreformer_and_codeformer_get_rows_of_their_own(testset, offline_home, tmp_path):
    """The other face models load through the same loader (release-format files) and are measured alike."""
    from gfp_core.synthetic import random_state_dict, write_random_checkpoint
    from train.evaluate import evaluate, markdown_table

    files = [write_random_checkpoint("v1.4", tmp_path / "GFPGANv1.4.pth", seed=1)]
    for name in ("RestoreFormer", "CodeFormer"):
        files.append(tmp_path / f"{name}.pth")
        torch.save({"params_ema": random_state_dict(name, seed=3)}, files[-1])
    report = evaluate(testset, [str(f) for f in files], measures=("psnr", "ssim"), allow_unverified=True,
                      backend="torch", fidelity=0.5)
    rows = {Path(r["model"]).stem: r["means"] for r in report["results"]}
    assert list(rows) == ["GFPGANv1.4", "RestoreFormer", "CodeFormer"]
    assert all(math.isfinite(r["psnr"]) and 0 < r["ssim"] < 1 for r in rows.values())
    assert len({r["psnr"] for r in rows.values()}) == 3  # three networks, three restorations
    assert "| RestoreFormer.pth |" in markdown_table(report)
