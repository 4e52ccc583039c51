"""Face restorers other than GFPGAN, given GFPGAN's calling convention.

The networks are spandrel's (RestoreFormer) and spandrel-extra-arches' (CodeFormer); each class here
subclasses one, so parameter names stay those of the official checkpoints, and only adds what the
engine expects of a face model: ``out_size``, and ``forward(x, return_rgb, randomize_noise, fidelity,
check) -> (faces, None)`` on ``[-1, 1]`` NCHW tensors, like :class:`~gfp_core.archs.GFPGANv1Clean`.

``fidelity`` is CodeFormer's fidelity weight ``w`` (1: closest to the input, 0: the codebook's face;
its own inference default is 0.5). RestoreFormer and RestoreFormer++ have no such control: they
accept the argument, check its range and ignore it (``takes_fidelity`` is False).

Imported only when one of these models is built: spandrel is not needed for GFPGAN.
"""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import torch
from spandrel.architectures.RestoreFormer import RestoreFormer as _SpandrelRestoreFormer
from spandrel_extra_arches.architectures.CodeFormer import CodeFormer as _SpandrelCodeFormer
from torch import nn

from .sft import check_fidelity

# the decoder class is not exported by spandrel; RestoreFormer++ needs one with more attention levels
_RF_MODULE = importlib.import_module("spandrel.architectures.RestoreFormer.__arch.restoreformer_arch")


@contextmanager
def _stop_checks(blocks: Iterable[nn.Module], check: Callable[[], None] | None) -> Iterator[None]:
    """Call ``check()`` before each of ``blocks`` runs, so a long forward pass can be cancelled
    between blocks as GFPGAN's can."""
    if check is None:
        yield
        return
    handles = [block.register_forward_pre_hook(lambda module, args: check()) for block in blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class FaceModelInterface:
    """GFPGAN's calling convention for a network whose ``_restore(x, fidelity)`` gives the faces."""

    out_size: int = 512
    takes_fidelity: bool = False

    def _restore(self, x: torch.Tensor, fidelity: float) -> torch.Tensor:
        raise NotImplementedError

    def _blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_rgb: bool = True, randomize_noise: bool = False,
                fidelity: float = 1.0, check: Callable[[], None] | None = None
                ) -> tuple[torch.Tensor, None]:
        """Faces ``[N,3,512,512]`` in [-1, 1] → restored faces, and None where GFPGAN gives its
        to-RGB images (``return_rgb`` and ``randomize_noise`` do not apply: no noise inputs)."""
        fidelity = check_fidelity(fidelity)
        if check is not None:
            check()
        with _stop_checks(self._blocks(), check):
            return self._restore(x, fidelity), None


def _children(*lists: nn.Module) -> list[nn.Module]:
    return [child for modules in lists for child in modules.children()]


class RestoreFormer(FaceModelInterface, _SpandrelRestoreFormer):
    """RestoreFormer (Wang et al., CVPR 2022): the official release's configuration by default."""

    def __init__(self, **kwargs) -> None:
        _SpandrelRestoreFormer.__init__(self, **kwargs)

    def _blocks(self) -> list[nn.Module]:
        return [block for level in (*self.encoder.down, *self.decoder.up) for block in level.block]

    def _restore(self, x: torch.Tensor, fidelity: float) -> torch.Tensor:
        return _SpandrelRestoreFormer.forward(self, x)[0]


class RestoreFormerPlusPlus(RestoreFormer):
    """RestoreFormer++ (Wang et al., TPAMI 2023): RestoreFormer whose decoder also attends to the
    encoder's features one level up (32² for 512² faces), with 4 attention heads."""

    def __init__(self, *, head_size: int = 4, attn_resolutions: tuple[int, ...] = (16,),
                 decoder_attn_resolutions: tuple[int, ...] = (16, 32), **kwargs) -> None:
        super().__init__(head_size=head_size, attn_resolutions=attn_resolutions, **kwargs)
        enc = self.encoder
        self.decoder = _RF_MODULE.MultiHeadDecoderTransformer(
            ch=enc.ch, out_ch=self.decoder.conv_out.out_channels, ch_mult=tuple(kwargs.get("ch_mult", (1, 2, 2, 4, 4, 8))),
            num_res_blocks=enc.num_res_blocks, attn_resolutions=decoder_attn_resolutions,
            dropout=kwargs.get("dropout", 0.0), in_channels=enc.in_channels, resolution=enc.resolution,
            z_channels=self.post_quant_conv.out_channels, enable_mid=enc.enable_mid, head_size=head_size)

    def _restore(self, x: torch.Tensor, fidelity: float) -> torch.Tensor:
        quant, _, _, skips = self.encode(x)
        # the extra decoder level attends to the encoder's output at its resolution, which the
        # encoder keeps as 'block_<level>' ('block_<level>_atten' exists only for the innermost one)
        for level in range(len(self.decoder.up)):
            if f"block_{level}" in skips:
                skips.setdefault(f"block_{level}_atten", skips[f"block_{level}"])
        return self.decode(quant, skips)


class CodeFormer(FaceModelInterface, _SpandrelCodeFormer):
    """CodeFormer (Zhou et al., NeurIPS 2022); ``fidelity`` is its fidelity weight ``w``."""

    takes_fidelity = True

    def __init__(self, **kwargs) -> None:
        _SpandrelCodeFormer.__init__(self, **kwargs)

    def _blocks(self) -> list[nn.Module]:
        return _children(self.encoder.blocks, self.ft_layers, self.generator.blocks)

    def _restore(self, x: torch.Tensor, fidelity: float) -> torch.Tensor:
        return _SpandrelCodeFormer.forward(self, x, weight=fidelity)[0]
