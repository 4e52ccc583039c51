"""Training speed of the full official recipe (gfpgan_v1: GFPGANv1 at 512 px, every loss) at batch 1.

Times ``Trainer.train_step`` (one generator step + one discriminator step, R1 included every 16th
iteration as in the recipe) and, in the same run, the official ``GFPGANModel.optimize_parameters``
on the same kind of inputs, with seeded random weights everywhere (the StyleGAN2 prior, ArcFace and
VGG19 cannot be downloaded here).

    python bench/bench_train.py --iterations 3            # CPU
    python bench/bench_train.py --device cuda --iterations 20
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def make_inputs(folder: Path) -> dict[str, Path]:
    """Aligned 512 faces (the astronaut), random prior/ArcFace weights and an FFHQ-format landmarks file."""
    import skimage.data

    from gfp_core.face.align import face_template
    from gfp_core.image import save_rgb
    from gfp_core.synthetic import write_random_checkpoint
    from train.components import boxes_from_five_points, write_landmarks_file
    from train.prepare import prepare_faces

    photos = folder / "photos"
    save_rgb(photos / "astronaut.png", skimage.data.astronaut())
    faces = prepare_faces([photos], folder / "faces", size=512, jitter=3)
    models = folder / "models"
    write_random_checkpoint("stylegan2_512_prior", models / "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth")
    write_random_checkpoint("arcface_resnet18", models / "arcface_resnet18.pth")
    boxes = {f"{i:08d}": boxes_from_five_points(face_template(512), 512) for i in range(len(faces))}
    write_landmarks_file(boxes, models / "FFHQ_eye_mouth_landmarks_512.pth")
    return {"faces": folder / "faces", "models": models}


def bench_ours(inputs: dict[str, Path], device: str, iterations: int, out: Path) -> list[float]:
    from train.config import load_config
    from train.trainer import Trainer

    cfg = load_config("gfpgan_v1", [f"data.train={inputs['faces']}", f"output={out}", "data.batch_size=1",
                                    "data.workers=0", "model.vgg=random", f"device={device}"])
    trainer = Trainer(cfg)
    batches = trainer._loader(0)
    times = []
    for it in range(1, iterations + 2):
        micro = [next(batches)]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_step(16 if it == 1 else it, micro)  # the first (warm-up) one with R1
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[1:]


def bench_official(inputs: dict[str, Path], device: str, iterations: int, workdir: Path) -> list[float]:
    from official import load_official

    load_official()
    from basicsr.models.base_model import BaseModel
    from gfpgan.models.gfpgan_model import GFPGANModel

    # the official code passes betas=(0, 0.99) (an int and a float), which current torch refuses
    make = BaseModel.get_optimizer

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if "betas" in kwargs:
            kwargs["betas"] = tuple(float(b) for b in kwargs["betas"])
        return make(self, optim_type, params, lr, **kwargs)
    BaseModel.get_optimizer = get_optimizer
    from torchvision.models import vgg19

    from train.components import load_components
    from train.config import load_config
    from train.data import DegradedFaces, list_images

    # basicsr reads VGG19 from experiments/pretrained_models/ in the working folder
    vgg_path = workdir / "experiments" / "pretrained_models" / "vgg19-dcbb9e9d.pth"
    vgg_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(vgg19(weights=None).state_dict(), vgg_path)
    arcface = workdir / "arcface.pth"
    from gfp_core.weights import read_state_dict

    torch.save(read_state_dict(inputs["models"] / "arcface_resnet18.pth"), arcface)
    os.chdir(workdir)
    g = dict(type="GFPGANv1", out_size=512, num_style_feat=512, channel_multiplier=1, resample_kernel=[1, 3, 3, 1],
             decoder_load_path=None, fix_decoder=True, num_mlp=8, lr_mlp=0.01, input_is_latent=True,
             different_w=True, narrow=1, sft_half=True)
    opt = {
        "is_train": True, "dist": False, "num_gpu": 1 if device.startswith("cuda") else 0, "rank": 0, "world_size": 1,
        "network_g": g, "network_d": dict(type="StyleGAN2Discriminator", out_size=512, channel_multiplier=1,
                                          resample_kernel=[1, 3, 3, 1]),
        "network_d_left_eye": {"type": "FacialComponentDiscriminator"},
        "network_d_right_eye": {"type": "FacialComponentDiscriminator"},
        "network_d_mouth": {"type": "FacialComponentDiscriminator"},
        "network_identity": dict(type="ResNetArcFace", block="IRBlock", layers=[2, 2, 2, 2], use_se=False),
        "path": {"pretrain_network_g": None, "pretrain_network_d": None, "pretrain_network_identity": str(arcface),
                 "param_key_g": "params_ema", "strict_load_g": True, "resume_state": None},
        "train": {
            "optim_g": {"type": "Adam", "lr": 2e-3}, "optim_d": {"type": "Adam", "lr": 2e-3},
            "optim_component": {"type": "Adam", "lr": 2e-3},
            "scheduler": {"type": "MultiStepLR", "milestones": [600000, 700000], "gamma": 0.5},
            "total_iter": 800000, "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 0.1, "reduction": "mean"},
            "L1_opt": {"type": "L1Loss", "loss_weight": 1, "reduction": "mean"},
            "pyramid_loss_weight": 1, "remove_pyramid_loss": 50000,
            "perceptual_opt": {"type": "PerceptualLoss", "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1,
                               "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}, "vgg_type": "vgg19",
                               "use_input_norm": True, "perceptual_weight": 1.0, "style_weight": 50,
                               "range_norm": True, "criterion": "l1"},
            "gan_opt": {"type": "GANLoss", "gan_type": "wgan_softplus", "loss_weight": 0.1},
            "r1_reg_weight": 10,
            "gan_component_opt": {"type": "GANLoss", "gan_type": "vanilla", "real_label_val": 1.0,
                                  "fake_label_val": 0.0, "loss_weight": 1.0},
            "comp_style_weight": 200, "identity_weight": 10, "net_d_iters": 1, "net_d_init_iters": 0,
            "net_d_reg_every": 16,
        },
        "logger": {"print_freq": 100}, "val": None,
    }
    torch.manual_seed(0)
    model = GFPGANModel(opt)
    cfg = load_config("gfpgan_v1", [f"data.train={inputs['faces']}"])
    paths = list_images(inputs["faces"])
    comps = load_components(str(inputs["models"] / "FFHQ_eye_mouth_landmarks_512.pth"), paths, 512,
                            workdir / "c.pth", 1.4)
    ds = DegradedFaces(paths, cfg["data"], comps)
    times = []
    for it in range(1, iterations + 2):
        item = ds[(it % len(ds), it)]
        loc = item["loc"][None]
        model.feed_data({"lq": item["lq"][None], "gt": item["gt"][None], "loc_left_eye": loc[:, 0],
                         "loc_right_eye": loc[:, 1], "loc_mouth": loc[:, 2]})
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.optimize_parameters(16 if it == 1 else it)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations after one warm-up")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        inputs = make_inputs(tmp_path)
        os.environ["GFP_MODEL_DIRS"] = str(inputs["models"])
        ours = bench_ours(inputs, args.device, args.iterations, tmp_path / "run")
        result = {"device": args.device, "threads": torch.get_num_threads(), "iterations": args.iterations,
                  "ours_s_per_it": float(np.mean(ours)), "ours_times": ours}
        print(f"ours: {np.mean(ours):.2f} s/iteration ({ours})", flush=True)
        if not args.skip_official:
            theirs = bench_official(inputs, args.device, args.iterations, tmp_path / "official")
            result.update(official_s_per_it=float(np.mean(theirs)), official_times=theirs,
                          ratio=float(np.mean(ours) / np.mean(theirs)))
    result["ours_it_per_s"] = 1 / result["ours_s_per_it"]
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
