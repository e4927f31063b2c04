"""Networks: the per-scale generator and critic, and the multi-scale SinGAN-Seg model."""

from __future__ import annotations

from monai_singanseg.networks.scale_networks import ScaleCritic, ScaleGenerator, init_weights
from monai_singanseg.networks.singanseg import SinGANSeg, draw_noise

__all__ = ["ScaleCritic", "ScaleGenerator", "SinGANSeg", "draw_noise", "init_weights"]
