"""The training loop: one generator step and one discriminator step per iteration, as the official
GFPGANModel.optimize_parameters, with gradient accumulation, autocast, data parallelism, complete
checkpoints, TensorBoard logs, validation and a final export of the EMA generator.
"""
from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import checkpoint as ckpt
from . import distributed as dist
from .components import load_components
from .config import ConfigError, dump_config
from .data import DegradedFaces, ResumableSampler, list_images, validation_set
from .export import export_generator
from .losses import (
    bce_gan,
    component_style_loss,
    crop_components,
    identity_loss,
    perceptual_and_style,
    pyramid_terms,
    r1_penalty,
    softplus_gan,
)
from .metrics import psnr, ssim
from .model import Networks, build_networks, update_ema

log = logging.getLogger("train")

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _set_requires_grad(nets: Mapping[str, nn.Module] | list[nn.Module], flag: bool) -> None:
    for net in (nets.values() if isinstance(nets, Mapping) else nets):
        net.requires_grad_(flag)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    from gfp_core.image import tensor_to_faces

    return tensor_to_faces(t)


class Trainer:
    """Build everything a run needs from a checked config (see :func:`train.config.load_config`)."""

    def __init__(self, cfg: dict[str, Any], resume: str | Path | bool | None = None):
        self.cfg = cfg
        self.ctx = dist.setup(cfg["device"])
        self.out = Path(cfg["output"])
        self.iteration = 0
        self.stop_signal: int | None = None
        if cfg["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)  # roi_align's CUDA backward has no such mode
            torch.backends.cudnn.benchmark = False
        amp = cfg["train"]["amp"]
        if amp == "fp16" and self.ctx.device.type == "cpu":
            raise ConfigError("train.amp=fp16 needs a GPU; use train.amp=bf16 on the CPU")
        self.amp_dtype = AMP_DTYPES.get(amp)

        self.nets: Networks = build_networks(cfg, self.ctx.device)
        for net in self.nets.saved().values():
            dist.broadcast_module(net, self.ctx)
        torch.manual_seed(cfg["seed"] * 1009 + self.ctx.rank + 1)  # each process its own StyleGAN2 noise
        self._build_optimisers()
        self._build_data()
        self.writer = None
        if self.ctx.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yml").write_text(dump_config(cfg), encoding="utf-8")
        self._resume(resume)

    # -----------------------------------------------------------------------------------------------
    # set-up

    def _build_optimisers(self) -> None:
        t, loss = self.cfg["train"], self.cfg["loss"]
        g_params = [p for p in self.nets.g.parameters() if p.requires_grad]
        # StyleGAN2's lazy regularisation: the discriminator's Adam is rescaled for R1 every k steps
        ratio = loss["d_reg_every"] / (loss["d_reg_every"] + 1)
        self.optimisers: dict[str, torch.optim.Optimizer] = {
            "g": torch.optim.Adam(g_params, lr=t["lr_g"], betas=tuple(t["g_betas"])),
            "d": torch.optim.Adam(self.nets.d.parameters(), lr=t["lr_d"] * ratio, betas=(0.0, 0.99 ** ratio)),
        }
        for name, net in self.nets.components.items():
            self.optimisers[f"d_{name}"] = torch.optim.Adam(net.parameters(), lr=t["lr_component"], betas=(0.9, 0.99))
        milestones, gamma = sorted(t["milestones"]), t["gamma"]

        def factor(step: int) -> float:  # MultiStepLR, stepped once per iteration
            return gamma ** bisect.bisect_right(milestones, step)
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, factor) for k, o in self.optimisers.items()}
        enabled = self.amp_dtype is torch.float16
        self.scalers = {k: torch.amp.GradScaler(self.ctx.device.type, enabled=enabled) for k in ("g", "d")}

    def _build_data(self) -> None:
        data = self.cfg["data"]
        if not data["train"]:
            raise ConfigError("data.train is not set: give a folder of aligned faces (data.train=PATH)")
        paths = list_images(data["train"])
        components = None
        if self.nets.components:
            cache = Path(data["components_cache"] or self.out / "components.pth")
            if data["components"] == "detect" and not self.ctx.main:
                dist_barrier = torch.distributed.barrier if self.ctx.distributed else None
                if dist_barrier:
                    dist_barrier()  # rank 0 detects and writes the cache first
            components = load_components(data["components"], paths, data["size"], cache, data["eye_enlarge_ratio"])
            if data["components"] == "detect" and self.ctx.main and self.ctx.distributed:
                torch.distributed.barrier()
        self.dataset = DegradedFaces(paths, data, components)
        self.val = []
        self.val_measures: list = []
        if data["val"]:
            self.val = validation_set(list_images(data["val"])[: data["val_count"]], data)
            self.val_measures = self._validation_measures(data["size"])

    def _validation_measures(self, size: int) -> list:
        """The evaluation's measures beyond PSNR/SSIM whose networks are already on this machine (validation
        downloads nothing; ``python -m train evaluate`` reports the same); NIQE needs faces of 96 px or
        more; FID is of the whole validation set (a few faces: only its trend means something). What is
        missing is said once."""
        from .measures import build_measures

        ready, missing = build_measures(("lpips", "fid", "niqe", "identity"), device=self.ctx.device, download=False,
                                        face_size=size)
        if self.ctx.main and missing:
            log.info("validation without %s", "; ".join(missing.values()))
        return ready

    def _loader(self, start_iteration: int) -> Iterator[dict[str, torch.Tensor]]:
        data = self.cfg["data"]
        per_step = data["batch_size"] * self.cfg["train"]["accumulate"]
        sampler = ResumableSampler(len(self.dataset), per_step, self.cfg["seed"], self.ctx.rank, self.ctx.world,
                                   start_iteration)
        loader = DataLoader(self.dataset, batch_size=data["batch_size"], sampler=sampler,
                            num_workers=data["workers"], pin_memory=self.ctx.device.type == "cuda",
                            persistent_workers=False, prefetch_factor=2 if data["workers"] else None,
                            # its own generator: making the iterator must not draw from the global one,
                            # which the StyleGAN2 noise uses (a resume would shift it)
                            generator=torch.Generator().manual_seed(self.cfg["seed"]))
        return iter(loader)

    def _resume(self, resume: str | Path | bool | None) -> None:
        if not resume:
            return
        if resume is True:
            path = ckpt.latest_checkpoint(self.out)
            if path is None:
                self._say(f"no checkpoint in {ckpt.checkpoint_dir(self.out)}; starting a new run")
                return
        else:
            path = Path(resume)
        state = ckpt.read_checkpoint(path)
        for name, net in self.nets.saved().items():
            if name not in state["nets"]:
                raise ConfigError(f"{path} has no {name!r} network; was it written with another config "
                                  f"(e.g. without facial-component discriminators)?")
            try:
                net.load_state_dict(state["nets"][name], strict=True)
            except RuntimeError as exc:
                raise ConfigError(f"{path}: the {name!r} network does not fit this config "
                                  f"({str(exc).splitlines()[0]})") from None
        for name, opt in self.optimisers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        for name, scaler in self.scalers.items():
            if state["scalers"].get(name):
                scaler.load_state_dict(state["scalers"][name])
        rngs = state["rng"]
        ckpt.set_rng_state(rngs[self.ctx.rank] if self.ctx.rank < len(rngs) else rngs[0])
        self.iteration = int(state["iteration"])
        self._say(f"resumed from {path} at iteration {self.iteration}")

    # -----------------------------------------------------------------------------------------------
    # helpers

    def _say(self, message: str) -> None:
        if self.ctx.main:
            from tqdm import tqdm

            tqdm.write(message)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype)

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        self.stop_signal = signum
        self._say(f"received {signal.Signals(signum).name}: saving a checkpoint after this iteration, then exiting")

    # -----------------------------------------------------------------------------------------------
    # one iteration

    def _generator_step(self, it: int, micro: list[dict[str, torch.Tensor]]) -> tuple[dict[str, float], list]:
        cfg, loss = self.cfg, self.cfg["loss"]
        nets, dev = self.nets, self.ctx.device
        _set_requires_grad([nets.d, *nets.components.values()], False)
        opt, scaler = self.optimisers["g"], self.scalers["g"]
        opt.zero_grad(set_to_none=True)
        pyramid_w = loss["pyramid"] if it <= loss["remove_pyramid_after"] else 0.0
        logs: dict[str, float] = defaultdict(float)
        kept = []
        steps = len(micro)
        for batch in micro:
            lq, gt = batch["lq"].to(dev, non_blocking=True), batch["gt"].to(dev, non_blocking=True)
            loc = batch["loc"].to(dev) if "loc" in batch else None
            with self._autocast():
                out, rgbs = nets.g(lq, return_rgb=pyramid_w > 0, randomize_noise=cfg["train"]["randomize_noise"])
                terms: dict[str, torch.Tensor] = {}
                if loss["pixel"] > 0:
                    terms["l_g_pix"] = loss["pixel"] * torch.nn.functional.l1_loss(out, gt)
                if pyramid_w > 0:
                    for name, value in pyramid_terms(rgbs, gt).items():
                        terms[name] = pyramid_w * value
                if nets.vgg is not None:
                    percep, style = perceptual_and_style(nets.vgg, out, gt, loss["perceptual_layers"])
                    if loss["perceptual"] > 0:
                        terms["l_g_percep"] = loss["perceptual"] * percep
                    if loss["style"] > 0:
                        terms["l_g_style"] = loss["style"] * style
                if loss["gan"] > 0:
                    terms["l_g_gan"] = loss["gan"] * softplus_gan(nets.d(out), real=True)
                crops = gt_crops = None
                if nets.components and loc is not None:
                    crops, gt_crops = crop_components(out, loc), crop_components(gt, loc)
                    comp_style = 0.0
                    for (name, net), crop, gt_crop in zip(nets.components.items(), crops, gt_crops):
                        pred, feats = net(crop, return_feats=True)
                        if loss["component_gan"] > 0:
                            terms[f"l_g_gan_{name}"] = loss["component_gan"] * bce_gan(pred, real=True)
                        if loss["component_style"] > 0:
                            _, real_feats = net(gt_crop, return_feats=True)
                            comp_style = comp_style + component_style_loss(feats, real_feats)
                    if loss["component_style"] > 0:
                        terms["l_g_comp_style_loss"] = loss["component_style"] * comp_style
                if nets.identity is not None:
                    terms["l_identity"] = loss["identity"] * identity_loss(nets.identity, out, gt)
                total = sum(terms.values())
            scaler.scale(total / steps).backward()
            for k, v in terms.items():
                logs[k] += float(v.detach()) / steps
            kept.append((out.detach(), gt, None if crops is None else [c.detach() for c in crops], gt_crops))
        dist.average_gradients(opt.param_groups[0]["params"], self.ctx)
        scaler.step(opt)
        scaler.update()
        update_ema(nets.g_ema, nets.g, self.cfg["train"]["ema_decay"])
        return logs, kept

    def _discriminator_step(self, it: int, kept: list) -> dict[str, float]:
        loss, nets = self.cfg["loss"], self.nets
        _set_requires_grad([nets.d, *nets.components.values()], True)
        scaler = self.scalers["d"]
        for name in ("d", *(f"d_{k}" for k in nets.components)):
            self.optimisers[name].zero_grad(set_to_none=True)
        logs: dict[str, float] = defaultdict(float)
        steps = len(kept)
        regularise = loss["r1"] > 0 and it % loss["d_reg_every"] == 0
        for out, gt, crops, gt_crops in kept:
            with self._autocast():
                fake_pred, real_pred = nets.d(out), nets.d(gt)
                l_d = softplus_gan(real_pred, real=True) + softplus_gan(fake_pred, real=False)
            scaler.scale(l_d / steps).backward()
            logs["l_d"] += float(l_d.detach()) / steps
            logs["real_score"] += float(real_pred.detach().float().mean()) / steps
            logs["fake_score"] += float(fake_pred.detach().float().mean()) / steps
            if regularise:  # lazy R1, in full precision (its double backward is fragile in fp16)
                real = gt.detach().float().requires_grad_(True)
                pred = nets.d(real)
                l_r1 = loss["r1"] / 2 * r1_penalty(pred, real) * loss["d_reg_every"]
                scaler.scale(l_r1 / steps).backward()
                logs["l_d_r1"] += float(l_r1.detach()) / steps
            if crops is not None:
                for (name, net), crop, gt_crop in zip(nets.components.items(), crops, gt_crops):
                    with self._autocast():
                        fake_c, _ = net(crop)
                        real_c, _ = net(gt_crop)
                        fake_term = softplus_gan(fake_c, real=False) if loss["component_d_fake"] == "official" \
                            else bce_gan(fake_c, real=False)
                        l_c = bce_gan(real_c, real=True) + fake_term
                    scaler.scale(l_c / steps).backward()
                    logs[f"l_d_{name}"] += float(l_c.detach()) / steps
        for name in ("d", *(f"d_{k}" for k in nets.components)):
            opt = self.optimisers[name]
            dist.average_gradients(opt.param_groups[0]["params"], self.ctx)
            scaler.step(opt)
        scaler.update()
        return logs

    def train_step(self, it: int, micro: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        for net in self.nets.trained().values():
            net.train()
        logs, kept = self._generator_step(it, micro)
        logs.update(self._discriminator_step(it, kept))
        for sched in self.schedulers.values():
            sched.step()
        return dict(logs)

    # -----------------------------------------------------------------------------------------------
    # logging, validation, checkpoints

    def _reduce(self, logs: dict[str, float], stop: bool) -> tuple[dict[str, float], bool]:
        keys = sorted(logs)
        values = torch.tensor([logs[k] for k in keys] + [float(stop)], dtype=torch.float64)
        if self.ctx.distributed:
            values = dist.all_reduce_mean(values.to(self.ctx.device), self.ctx).cpu()
        return dict(zip(keys, values[:-1].tolist())), bool(values[-1] > 0)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR/SSIM of the EMA generator's restorations of the held-out faces (and of their inputs), and
        the other measures of ``python -m train evaluate`` whose networks are here."""
        from .measures import SetMeasure

        g = self.nets.g_ema
        scores: dict[str, list[float]] = defaultdict(list)
        every_restored, every_target = [], []
        for item in self.val:
            out, _ = g(item["lq"][None].to(self.ctx.device), return_rgb=False)
            restored, target = _to_uint8(out)[0], _to_uint8(item["gt"][None])[0]
            degraded = _to_uint8(item["lq"][None])[0]
            scores["psnr"].append(psnr(restored, target))
            scores["ssim"].append(ssim(restored, target))
            scores["psnr_input"].append(psnr(degraded, target))
            scores["ssim_input"].append(ssim(degraded, target))
            every_restored.append(restored)
            every_target.append(target)
            for measure in self.val_measures:
                if not isinstance(measure, SetMeasure):
                    scores[measure.name].append(measure.compute(restored, target))
        for measure in self.val_measures:
            if isinstance(measure, SetMeasure) and len(self.val) > 1:  # FID: of the whole validation set
                scores[measure.name].append(measure.compute(np.stack(every_restored), np.stack(every_target)))
        return {k: float(np.mean(v)) for k, v in scores.items()}

    @torch.no_grad()
    def sample_grid(self, batch: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """Rows of degraded input | EMA restoration | ground truth, in [0, 1]."""
        from torchvision.utils import make_grid

        if self.val:
            lq = torch.stack([v["lq"] for v in self.val[:4]])
            gt = torch.stack([v["gt"] for v in self.val[:4]])
        else:
            lq, gt = batch["lq"][:4], batch["gt"][:4]
        out, _ = self.nets.g_ema(lq.to(self.ctx.device), return_rgb=False)
        rows = torch.stack([lq, out.float().cpu(), gt], 1).flatten(0, 1)
        return make_grid((rows.clamp(-1, 1) + 1) / 2, nrow=3, padding=2)

    def weights_digest(self) -> str:
        """SHA-256 of every saved network's parameters and buffers (equal on all ranks when in sync)."""
        h = hashlib.sha256()
        for name, net in sorted(self.nets.saved().items()):
            for key, t in net.state_dict().items():
                h.update(f"{name}.{key}".encode())
                h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def save_checkpoint(self) -> Path | None:
        rngs = dist.gather_objects(ckpt.rng_state(), self.ctx)  # every rank's, so a resume is exact
        digests = dist.gather_objects(self.weights_digest(), self.ctx)
        if not self.ctx.main:
            return None
        if len(set(digests)) > 1:
            log.warning("the processes' weights differ at iteration %d (digests %s)", self.iteration, digests)
        state = {
            "format": ckpt.FORMAT,
            "iteration": self.iteration,
            "config": dump_config(self.cfg),
            "nets": {k: {n: t.detach().cpu() for n, t in v.state_dict().items()} for k, v in self.nets.saved().items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimisers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "scalers": {k: v.state_dict() if v.is_enabled() else {} for k, v in self.scalers.items()},
            "rng": rngs,
            "rank_digests": digests,  # one per process: equal when data parallelism kept them in sync
        }
        path = ckpt.save_atomic(state, ckpt.checkpoint_path(self.out, self.iteration))
        ckpt.prune(self.out, self.cfg["log"]["keep_checkpoints"])
        return path

    # -----------------------------------------------------------------------------------------------
    # the loop

    def fit(self) -> dict[str, Any]:
        """Train up to ``train.iterations``; returns a summary (iterations run, seconds, last validation)."""
        from tqdm import tqdm

        cfg, logc = self.cfg, self.cfg["log"]
        total, accumulate = cfg["train"]["iterations"], cfg["train"]["accumulate"]
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for s in previous:
            signal.signal(s, self._request_stop)
        if self.ctx.main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"), purge_step=self.iteration + 1)
            (self.out / "samples").mkdir(parents=True, exist_ok=True)
        batches = self._loader(self.iteration)
        bar = tqdm(total=total, initial=self.iteration, disable=not (self.ctx.main and logc["progress"]),
                   unit="it", dynamic_ncols=True)
        start_iteration, started = self.iteration, time.perf_counter()
        summary: dict[str, Any] = {"validation": None}
        stopped = False
        metrics_file = open(self.out / "metrics.jsonl", "a", encoding="utf-8") if self.ctx.main else None
        try:
            while self.iteration < total:
                it = self.iteration + 1
                micro = [next(batches) for _ in range(accumulate)]
                logs = self.train_step(it, micro)
                self.iteration = it
                logs, stopped = self._reduce(logs, self.stop_signal is not None)
                bar.update(1)
                if self.ctx.main:
                    if it % logc["every"] == 0 or it == total:
                        lr = self.optimisers["g"].param_groups[0]["lr"]
                        record = {"iteration": it, "lr_g": lr, **logs}
                        metrics_file.write(json.dumps(record) + "\n")
                        metrics_file.flush()
                        for k, v in logs.items():
                            self.writer.add_scalar(f"loss/{k}", v, it)
                        self.writer.add_scalar("lr/g", lr, it)
                        bar.set_postfix({k: f"{logs[k]:.3g}" for k in ("l_g_pix", "l_g_gan", "l_d") if k in logs})
                    if self.val and (it % logc["val_every"] == 0 or it == total):
                        summary["validation"] = scores = self.validate()
                        for k, v in scores.items():
                            self.writer.add_scalar(f"val/{k}", v, it)
                        metrics_file.write(json.dumps({"iteration": it, "validation": scores}) + "\n")
                        metrics_file.flush()
                        bar.write(f"iteration {it}: validation PSNR {scores['psnr']:.2f} dB "
                                  f"(input {scores['psnr_input']:.2f}), SSIM {scores['ssim']:.4f}")
                    if it % logc["samples_every"] == 0 or it == total:
                        from torchvision.utils import save_image

                        grid = self.sample_grid(micro[0])
                        self.writer.add_image("samples/input_restored_target", grid, it)
                        save_image(grid, self.out / "samples" / f"iter_{it:08d}.png")
                if it % logc["checkpoint_every"] == 0 or it == total or stopped:
                    path = self.save_checkpoint()
                    if path is not None and stopped:
                        bar.write(f"stopped at iteration {it}; checkpoint {path}. Continue with --resume")
                if stopped:
                    break
        finally:
            bar.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            if metrics_file is not None:
                metrics_file.close()
            if self.writer is not None:
                self.writer.close()
        seconds = time.perf_counter() - started
        summary.update(iterations=self.iteration - start_iteration, seconds=seconds, stopped=stopped,
                       iteration=self.iteration)
        if self.ctx.main and not stopped:
            summary["export"] = str(export_generator(self.nets.g_ema, self.out / "model_ema.safetensors", self.cfg))
            self._say(f"exported the EMA generator to {summary['export']}")
        return summary


def run(cfg: dict[str, Any], resume: str | Path | bool | None = None) -> dict[str, Any]:
    """Train with ``cfg`` (in this process, or in each process torchrun starts)."""
    try:
        trainer = Trainer(cfg, resume)
        return trainer.fit()
    finally:
        dist.teardown()

