"""Training configuration: the official ``train_gfpgan_v1.yml`` values as defaults, a YAML recipe on top,
then dotted ``key=value`` overrides from the command line.

A recipe may start with ``base: other.yml`` (a path relative to the recipe, or a bundled recipe name)
to change only what differs. Unknown keys and values of the wrong type are refused with a message
that names the key, so a typo never silently trains with a default.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gfp_core.errors import GFPError

RECIPES = Path(__file__).resolve().parent / "recipes"

#: the official GFPGAN v1 recipe (options/train_gfpgan_v1.yml and gfpgan_model.py), with the
#: architecture default of this trainer (GFPGANv1Clean; the gfpgan_v1 recipe picks GFPGANv1)
DEFAULTS: dict[str, Any] = {
    "name": "gfpgan",
    "output": "runs/gfpgan",
    "seed": 0,
    "deterministic": False,
    "device": "auto",
    "data": {
        "train": None,  # folder of aligned faces, or a text file listing image paths
        "val": None,  # held-out folder (clean faces, degraded with a fixed seed) or None
        "val_count": 16,  # at most this many validation images
        "size": 512,
        "hflip": True,
        "batch_size": 3,  # per process (official: 3 per GPU, 4 GPUs)
        "workers": 4,
        "blur_kernel_size": 41,
        "kernel_list": ["iso", "aniso"],
        "kernel_prob": [0.5, 0.5],
        "blur_sigma": [0.1, 10.0],
        "downsample_range": [0.8, 8.0],
        "noise_range": [0.0, 20.0],
        "jpeg_range": [60, 100],
        "color_jitter_prob": 0.3,
        "color_jitter_shift": 20.0,
        "color_jitter_pt_prob": 0.3,
        "brightness": [0.5, 1.5],
        "contrast": [0.5, 1.5],
        "saturation": [0.0, 1.5],
        "hue": [-0.1, 0.1],
        "gray_prob": 0.01,
        "gt_gray": False,
        # eye/mouth boxes: a landmarks file (registry name or path, official format), 'detect'
        # (found once with the detector and cached), or None (no facial-component losses)
        "components": "ffhq_eye_mouth_landmarks",
        "components_cache": None,  # where 'detect' caches its boxes; default <output>/components.pth
        "eye_enlarge_ratio": 1.4,
    },
    "model": {
        "arch": "GFPGANv1Clean",
        "out_size": None,  # None: data.size
        "num_style_feat": 512,
        "channel_multiplier": 2,
        "num_mlp": 8,
        "narrow": 1.0,
        "different_w": True,
        "sft_half": True,
        "lr_mlp": 0.01,  # GFPGANv1 only
        "init": "scratch",  # scratch | decoder | pretrained
        "decoder": "stylegan2_512_prior",  # init=decoder: StyleGAN2 weights (registry name or path)
        "pretrained": "GFPGANv1.4",  # init=pretrained: GFPGAN weights to fine-tune (name or path)
        "fix_decoder": False,
        "d_channel_multiplier": 1,
        "d_narrow": 1.0,
        "component_discriminators": True,
        "identity": "arcface_resnet18",  # ArcFace weights (registry name or path), None: no identity loss
        "vgg": "imagenet",  # imagenet | random | path of torchvision vgg19 weights
    },
    "loss": {
        "pixel": 0.1,
        "pyramid": 1.0,
        "remove_pyramid_after": 50000,
        "perceptual": 1.0,
        "style": 50.0,
        "perceptual_layers": {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0},
        "gan": 0.1,
        "r1": 10.0,
        "d_reg_every": 16,
        "component_gan": 1.0,
        "component_style": 200.0,
        "identity": 10.0,
        # the official code scores fake component crops in the component discriminators' own loss with
        # the whole-face softplus loss; 'official' keeps that, 'vanilla' uses the BCE loss for both halves
        "component_d_fake": "official",
    },
    "train": {
        "iterations": 800000,
        "lr_g": 2e-3,
        "lr_d": 2e-3,
        "lr_component": 2e-3,
        "g_betas": [0.0, 0.99],  # Adam betas of the generator (official: no momentum)
        "milestones": [600000, 700000],
        "gamma": 0.5,
        "ema_decay": 0.5 ** (32 / (10 * 1000)),
        "amp": "none",  # none | bf16 | fp16
        "accumulate": 1,  # gradient accumulation steps per optimiser step
        "randomize_noise": True,  # fresh StyleGAN2 noise each forward pass, as the official training
    },
    "log": {
        "every": 100,
        "samples_every": 5000,
        "val_every": 5000,
        "checkpoint_every": 5000,
        "keep_checkpoints": 2,
        "progress": True,
    },
}

CHOICES = {
    ("model", "arch"): ("GFPGANv1Clean", "GFPGANv1"),
    ("model", "init"): ("scratch", "decoder", "pretrained"),
    ("train", "amp"): ("none", "bf16", "fp16"),
    ("loss", "component_d_fake"): ("official", "vanilla"),
}
#: keys whose value may be None although the default is not (or the other way round)
NULLABLE = {("data", "train"), ("data", "val"), ("data", "components"), ("data", "components_cache"),
            ("model", "out_size"), ("model", "identity"), ("model", "decoder"), ("model", "pretrained")}
#: mappings whose keys are free (not checked against the defaults)
FREE_MAPPINGS = {("loss", "perceptual_layers")}


class ConfigError(GFPError, ValueError):
    """A recipe or override that cannot be used."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.lr_g=1e-4'`` → (['train', 'lr_g'], 0.0001); values are read as YAML."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.path=value (e.g. train.iterations=1000)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def _merge(base: dict, update: Mapping, where: str, free: bool = False) -> None:
    for key, value in update.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in base and not free:
            known = ", ".join(sorted(base))
            raise ConfigError(f"unknown setting {path!r}; known settings here: {known}")
        parts = tuple(path.split("."))
        if isinstance(base.get(key), dict) and parts not in FREE_MAPPINGS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path!r} must be a mapping of settings, not {value!r}")
            _merge(base[key], value, path)
        elif parts in FREE_MAPPINGS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path!r} must be a mapping, not {value!r}")
            base[key] = dict(value)
        else:
            base[key] = value


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> list[dict]:
    """The recipe and the recipes it is based on, base first."""
    import yaml

    if not path.is_file() and not path.suffix and (RECIPES / f"{path}.yml").is_file():
        path = RECIPES / f"{path}.yml"  # a bundled recipe by name: tiny_cpu, finetune, gfpgan_v1
    if not path.is_file():
        bundled = ", ".join(p.stem for p in sorted(RECIPES.glob("*.yml")))
        raise ConfigError(f"config file {path} does not exist (bundled recipes: {bundled})")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: recipes are based on each other in a circle")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings at the top level")
    base = data.pop("base", None)
    chain = []
    if base:
        base_path = Path(base) if Path(base).is_absolute() else path.parent / base
        if not base_path.is_file() and (RECIPES / Path(base).name).is_file():
            base_path = RECIPES / Path(base).name
        chain = _read_yaml(base_path, (*seen, path.resolve()))
    return [*chain, data]


def _check_types(cfg: dict, defaults: dict, where: str = "") -> None:
    for key, default in defaults.items():
        path = f"{where}.{key}" if where else key
        parts = tuple(path.split("."))
        value = cfg[key]
        if isinstance(default, dict) and parts not in FREE_MAPPINGS:
            _check_types(value, default, path)
            continue
        if value is None:
            if default is not None and parts not in NULLABLE and not _nullable_range(key):
                raise ConfigError(f"{path!r} cannot be empty")
            continue
        if default is None or parts in FREE_MAPPINGS:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            if isinstance(value, str):  # YAML 1.1 reads 3e-5 (no dot) as text
                try:
                    value = cfg[key] = float(value)
                except ValueError:
                    pass
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if ok and isinstance(default, int) and not isinstance(value, int):
                ok = float(value).is_integer()
                if ok:
                    cfg[key] = int(value)
        elif isinstance(default, list):
            ok = isinstance(value, (list, tuple)) and len(value) == len(default) if len(default) == 2 \
                and key.endswith(("_range", "sigma", "brightness", "contrast", "saturation", "hue")) \
                else isinstance(value, (list, tuple))
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ConfigError(f"{path!r} must be like {default!r} ({type(default).__name__}), got {value!r}")
        if parts in CHOICES and value not in CHOICES[parts]:
            raise ConfigError(f"{path!r} must be one of {', '.join(CHOICES[parts])}, got {value!r}")


def _nullable_range(key: str) -> bool:
    """Degradations that can be switched off with ``~`` (as in the official recipe)."""
    return key in {"noise_range", "jpeg_range", "color_jitter_prob", "color_jitter_pt_prob", "gray_prob"}


def _check_values(cfg: dict) -> None:
    data, model, loss, train = cfg["data"], cfg["model"], cfg["loss"], cfg["train"]
    size = data["size"]
    if size < 16 or size & (size - 1):
        raise ConfigError(f"data.size must be a power of two of at least 16 (512 by default), got {size}")
    if model["out_size"] is None:
        model["out_size"] = size
    if model["out_size"] != size:
        raise ConfigError(f"model.out_size ({model['out_size']}) must equal data.size ({size})")
    if data["batch_size"] < 1 or train["accumulate"] < 1:
        raise ConfigError("data.batch_size and train.accumulate must be at least 1")
    if data["batch_size"] > 4 and data["batch_size"] % 4:
        raise ConfigError(f"data.batch_size {data['batch_size']}: the discriminator's minibatch-stddev groups "
                          f"of 4 need a batch of at most 4 or a multiple of 4 per process")
    if len(data["kernel_list"]) != len(data["kernel_prob"]) or not data["kernel_list"]:
        raise ConfigError("data.kernel_list and data.kernel_prob must be lists of the same, non-zero length")
    unknown = set(data["kernel_list"]) - {"iso", "aniso"}
    if unknown:
        raise ConfigError(f"data.kernel_list: unknown blur kernel(s) {sorted(unknown)}; use iso and/or aniso")
    if data["blur_kernel_size"] % 2 == 0:
        raise ConfigError(f"data.blur_kernel_size must be odd, got {data['blur_kernel_size']}")
    for key in ("blur_sigma", "downsample_range", "noise_range", "jpeg_range"):
        rng = data[key]
        if rng is not None and not rng[0] <= rng[1]:
            raise ConfigError(f"data.{key} must be [low, high] with low <= high, got {rng}")
    if data["downsample_range"][0] <= 0:
        raise ConfigError("data.downsample_range must be positive")
    if model["init"] == "scratch" and model["fix_decoder"]:
        raise ConfigError("model.fix_decoder=true with model.init=scratch would freeze a random StyleGAN2 "
                          "decoder; start from a decoder (model.init=decoder) or set model.fix_decoder=false")
    if loss["d_reg_every"] < 1:
        raise ConfigError("loss.d_reg_every must be at least 1")
    if not 0 <= train["ema_decay"] < 1:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {train['ema_decay']}")
    if cfg["log"]["keep_checkpoints"] < 1:
        raise ConfigError("log.keep_checkpoints must be at least 1")


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Defaults ← recipe (and its bases) ← overrides, checked; returns a plain nested dict."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        for layer in _read_yaml(Path(path)):
            _merge(cfg, layer, "")
    for text in overrides:
        keys, value = parse_override(text)
        update: Any = value
        for key in reversed(keys):
            update = {key: update}
        _merge(cfg, update, "")
    _check_types(cfg, DEFAULTS)
    _check_values(cfg)
    return cfg


def dump_config(cfg: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(cfg), sort_keys=False)
