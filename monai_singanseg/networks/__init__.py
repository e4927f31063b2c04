"""Networks: the per-scale generator and critic, the multi-scale SinGAN-Seg model, and bundle adapters."""

from __future__ import annotations

from monai_singanseg.networks.scale_networks import (
    ScaleCritic,
    ScaleGenerator,
    drop_norm_biases,
    init_weights,
    split_state,
    stack_states,
    widen_state,
)
from monai_singanseg.networks.singanseg import SinGANSeg, draw_noise
from monai_singanseg.networks.wrappers import FinalOutput, SinGANSegInjector

__all__ = [
    "FinalOutput",
    "ScaleCritic",
    "ScaleGenerator",
    "SinGANSeg",
    "SinGANSegInjector",
    "draw_noise",
    "drop_norm_biases",
    "init_weights",
    "split_state",
    "stack_states",
    "widen_state",
]
