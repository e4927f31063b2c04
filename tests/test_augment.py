"""DiffAugment of stacked image + mask pairs (``monai_singanseg.training.augment``), which the StyleGAN critics and,
as an option, SinGAN-Seg's coarsest critics see their inputs through."""

from __future__ import annotations

import torch

from monai_singanseg.training import diff_augment
from monai_singanseg.training.augment import cutout, translate


def test_diff_augment_moves_image_and_mask_alike():
    generator = torch.Generator().manual_seed(0)
    mask = torch.where(torch.rand(8, 1, 32, 32, generator=generator) > 0.7, 1.0, -1.0)
    pairs = torch.cat([mask, mask, mask], dim=1)  # two image channels equal to the mask, then the mask
    out = diff_augment(pairs, 2, ("translation", "cutout"), torch.Generator().manual_seed(1))
    assert out.shape == pairs.shape and not torch.equal(out, pairs)
    # foreground where and only where the image is bright; what moved in or was cut out is grey and background
    assert torch.equal(out[:, 0] > 0, out[:, 2] > 0) and torch.equal(out[:, 1] > 0, out[:, 2] > 0)
    assert set(out[:, 2].unique().tolist()) == {-1.0, 1.0}
    assert torch.equal((out[:, 0] == 0), (out[:, 2] == -1.0) & (out[:, 0] != -1.0))


def test_diff_augment_colours_the_image_only_and_is_differentiable():
    pairs = (torch.rand(4, 4, 16, 16) * 2 - 1).requires_grad_()
    out = diff_augment(pairs, 3, ("color", "translation", "cutout"), torch.Generator().manual_seed(0))
    out.square().sum().backward()
    assert pairs.grad is not None and float(pairs.grad.abs().sum()) > 0
    coloured = diff_augment(pairs.detach(), 3, ("color",), torch.Generator().manual_seed(0))
    assert torch.equal(coloured[:, 3], pairs[:, 3].detach()) and not torch.equal(coloured[:, :3], pairs[:, :3])
    volume = diff_augment(torch.rand(2, 2, 8, 8, 8), 1, ("color", "translation", "cutout"))
    assert volume.shape == (2, 2, 8, 8, 8)


def test_translation_and_cutout_by_hand():
    x = torch.arange(1.0, 5.0).reshape(1, 1, 1, 4).expand(1, 2, 1, 4)  # image channel, mask channel
    moved = translate(x, 1, torch.tensor([[0, 1]]))
    assert moved[0, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0] and moved[0, 1, 0].tolist() == [-1.0, 1.0, 2.0, 3.0]
    cut = cutout(x, 1, torch.tensor([[0, 3]]), [1, 2])
    assert cut[0, 0, 0].tolist() == [1.0, 2.0, 0.0, 0.0] and cut[0, 1, 0].tolist() == [1.0, 2.0, -1.0, -1.0]
