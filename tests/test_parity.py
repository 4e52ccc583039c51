"""Our GFPGAN architectures reproduce the official implementation on the same checkpoints."""
from __future__ import annotations

import copy

import pytest
import torch

from gfp_core.weights import load_model

ATOL = 1e-5
#: the default fast kernels (Winograd convolutions, batched modulated convolutions) round differently
#: from the reference ones; measured about 2e-5, a 400th of an 8-bit level on the [-1, 1] scale
FAST_ATOL = 2e-4


@pytest.fixture(scope="module")
def ours_clean(official_models):
    return load_model(official_models["clean"][1], device="cpu", exact=True)


@pytest.mark.heavy
@pytest.mark.parametrize("arch, expected_class", [("clean", "GFPGANv1Clean"), ("original", "GFPGANv1")])
def test_outputs_match_official(official_models, face_batch, arch, expected_class):
    official, path = official_models[arch]
    # the real loader: file → detected architecture → strict load; reference kernels
    ours = load_model(path, device="cpu", exact=True)
    assert type(ours).__name__ == expected_class
    with torch.inference_mode():
        # stored noise (our default) against the official randomize_noise=False
        ref_img, ref_rgbs = official(face_batch, return_rgb=True, randomize_noise=False)
        img, rgbs = ours(face_batch, return_rgb=True)
        assert (img - ref_img).abs().max().item() <= ATOL
        assert len(rgbs) == len(ref_rgbs) and all((a - b).abs().max() <= ATOL for a, b in zip(rgbs, ref_rgbs))
        # fresh random noise: the same draws in the same order under the same seed
        torch.manual_seed(123)
        ref_noisy, _ = official(face_batch, return_rgb=False, randomize_noise=True)
        torch.manual_seed(123)
        noisy, _ = ours(face_batch, return_rgb=False, randomize_noise=True)
        assert (noisy - ref_noisy).abs().max().item() <= ATOL
    # the noise strengths are non-zero, so noise really changed the face
    assert (noisy - img).abs().max().item() > 1e-3


@pytest.mark.heavy
@pytest.mark.parametrize("arch", ["clean", "original"])
def test_fast_kernels_match_official_within_rounding(official_models, face_batch, arch):
    """The default (fast) model: a batch and a single face, stored and random noise."""
    official, path = official_models[arch]
    ours = load_model(path, device="cpu")
    exact = load_model(path, device="cpu", exact=True)
    with torch.inference_mode():
        for x in (face_batch, face_batch[:1]):
            ref, _ = official(x, return_rgb=False, randomize_noise=False)
            img, _ = ours(x, return_rgb=False)
            assert (img - ref).abs().max().item() <= FAST_ATOL
        torch.manual_seed(5)
        ref_noisy, _ = official(face_batch, return_rgb=False, randomize_noise=True)
        torch.manual_seed(5)
        noisy, _ = ours(face_batch, return_rgb=False, randomize_noise=True)
        assert (noisy - ref_noisy).abs().max().item() <= FAST_ATOL
        # the fast kernels really are different kernels (otherwise this test proves nothing)
        if arch == "clean":
            assert not torch.equal(img, exact(face_batch[:1], return_rgb=False)[0])


@pytest.mark.heavy
def test_fidelity_one_is_the_published_model_bit_for_bit(official_models, ours_clean, face_batch):
    official, _ = official_models["clean"]
    x = face_batch[:1]
    with torch.inference_mode():
        ref, _ = official(x, return_rgb=False, randomize_noise=False)
        default, _ = ours_clean(x, return_rgb=False)
        explicit, _ = ours_clean(x, return_rgb=False, fidelity=1.0)
    assert torch.equal(default, ref)
    assert torch.equal(explicit, ref)


@pytest.mark.heavy
def test_distance_to_published_model_grows_as_fidelity_falls(ours_clean, face_batch):
    ours = ours_clean
    x = face_batch[:1]
    with torch.inference_mode():
        published, _ = ours(x, return_rgb=False)
        distances = [(ours(x, return_rgb=False, fidelity=f)[0] - published).abs().mean().item()
                     for f in (0.75, 0.5, 0.25, 0.0)]
    assert distances[0] > 0
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


@pytest.mark.heavy
def test_fidelity_zero_ignores_the_spatial_conditions(ours_clean, face_batch):
    """At fidelity 0 only the latent code drives the prior: the SFT heads no longer matter."""
    ours = copy.deepcopy(ours_clean)
    x = face_batch[:1]
    with torch.inference_mode():
        prior_only, _ = ours(x, return_rgb=False, fidelity=0.0)
        with_sft, _ = ours(x, return_rgb=False, fidelity=1.0)
        for head in (*ours.condition_scale, *ours.condition_shift):
            head[2].weight.mul_(3.0)
        prior_only_again, _ = ours(x, return_rgb=False, fidelity=0.0)
        with_sft_again, _ = ours(x, return_rgb=False, fidelity=1.0)
    assert torch.equal(prior_only, prior_only_again)
    assert (with_sft - with_sft_again).abs().max().item() > 1e-3
