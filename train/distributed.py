"""Data-parallel training across processes started by ``torchrun`` (NCCL on GPUs, gloo on CPUs).

Each process computes gradients on its own part of the batch; they are averaged with one
all-reduce per network per step before the optimiser steps, so every process takes the same step
and the weights stay identical. Doing the reduction by hand (instead of wrapping each network in
``DistributedDataParallel``) fits GAN training, where networks are frozen and unfrozen within an
iteration and the discriminator runs several forward passes (fake, real, R1) per backward.
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from gfp_core.device import resolve_device

#: gradients are reduced in flat buckets of at most this many elements
BUCKET = 1 << 24


@dataclass(frozen=True)
class Context:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> Context:
    """Join the process group that torchrun describes in the environment (a single process otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(0, 1, 0, resolve_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or str(device).startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local)
        target, backend = torch.device("cuda", local), "nccl"
    else:
        target, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30),
                                device_id=target if use_cuda else None)
    return Context(rank, world, local, target)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_module(module: nn.Module, ctx: Context) -> None:
    """Rank 0's parameters and buffers everywhere (the same seed builds the same nets; this makes sure)."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            dist.broadcast(t.data, 0)


def average_gradients(params: Iterable[nn.Parameter], ctx: Context) -> None:
    """Average the gradients of ``params`` over all processes (missing gradients count as zero)."""
    if not ctx.distributed:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket: list[torch.Tensor] = []
    size = 0
    for p in params:
        bucket.append(p.grad)
        size += p.grad.numel()
        if size >= BUCKET:
            _reduce(bucket, ctx.world)
            bucket, size = [], 0
    if bucket:
        _reduce(bucket, ctx.world)


def _reduce(grads: list[torch.Tensor], world: int) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_mean(values: torch.Tensor, ctx: Context) -> torch.Tensor:
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values)
        values /= ctx.world
    return values


def gather_objects(obj: object, ctx: Context) -> list:
    if not ctx.distributed:
        return [obj]
    out: list = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out
