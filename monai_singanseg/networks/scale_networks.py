"""The per-scale generator and critic of SinGAN, built from MONAI blocks for 2D and 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.utils import look_up_option
from torch import nn

from monai_singanseg.config import ACTS, CRITICS, NORMS, NetworkConfig

__all__ = ["ScaleCritic", "ScaleGenerator", "Window", "crop_windows", "drop_norm_biases", "init_weights", "split_state", "stack_states",
           "widen_state"]

# in place: the norm before each activation keeps its own input for backward, so the output can be overwritten
_ACT_ARGS = {
    "leakyrelu": ("leakyrelu", {"negative_slope": 0.2, "inplace": True}),
    "elu": ("elu", {"inplace": True}),
    "relu": ("relu", {"inplace": True}),
}
_NORM_ARGS = {"batch": "batch", "instance": ("instance", {"affine": True}), "none": None}


def _conv_stack(spatial_dims: int, in_channels: int, width: int, config: NetworkConfig, groups: int) -> nn.Sequential:
    """Head and body: ``num_layers - 1`` unpadded conv → norm → act blocks of constant width (per group).

    A convolution followed by a norm has no bias: the norm subtracts it again, so its gradient is zero up to
    rounding, and Adam would turn that rounding noise into full-size steps (the reference keeps these biases;
    :func:`drop_norm_biases` reads its checkpoints and this project's older ones).
    """
    act = _ACT_ARGS[look_up_option(config.act, ACTS)]
    norm = _NORM_ARGS[look_up_option(config.norm, NORMS)]
    layers = []
    for i in range(config.num_layers - 1):
        layers.append(
            Convolution(
                spatial_dims,
                groups * (in_channels if i == 0 else width),
                groups * width,
                kernel_size=config.kernel_size,
                padding=0,
                act=act,
                norm=norm,
                groups=groups,
                bias=norm is None,
            )
        )
    return nn.Sequential(*layers)


Window = tuple[slice, ...]
"""A box of a spatial grid: one ``slice(start, stop)`` per axis."""


def crop_windows(x: torch.Tensor, windows: Sequence[Window], margin: int = 0) -> torch.Tensor:
    """Each group's own window of ``x`` ``(N, groups * C, *spatial)``: group ``k``'s channels cut to ``windows[k]``
    grown by ``margin`` pixels at the far end of every axis (the context a padded input adds), stacked back along the
    channels. Windows of one size, so grouped models trained side by side each see the windows they would see
    alone."""
    if len(windows) == 1:
        return x[(..., *(slice(w.start, w.stop + margin) for w in windows[0]))]
    blocks = x.chunk(len(windows), dim=1)
    return torch.cat([b[(..., *(slice(w.start, w.stop + margin) for w in window))]
                      for b, window in zip(blocks, windows)], dim=1)


class ScaleGenerator(nn.Module):
    """Generator of one scale: adds a residual learnt from noise to the upsampled coarser output.

    ``forward(noise, previous)`` pads ``noise + previous`` by ``config.receptive_pad`` per side (with zeros, the
    reference, or by reflection or replication: ``config.padding``), runs
    ``num_layers`` unpadded convolutions (the last one with tanh) and adds ``previous``, so the output has the
    input's shape.

    With ``groups=K`` the module is K independent generators side by side (grouped convolutions; batch and instance
    norms work per channel anyway): model ``k`` reads and writes channels ``k * channels ... (k + 1) * channels - 1``.
    :func:`stack_states` and :func:`split_state` convert between K single generators and one grouped generator.

    Args:
        spatial_dims: 2 or 3.
        channels: channels of the image + mask tensor (of one model).
        width: feature maps of the hidden layers (of one model).
        config: architecture options.
        groups: models trained side by side in this module.

    Example:
        >>> g = ScaleGenerator(2, channels=4, width=32, config=NetworkConfig())
        >>> g(torch.zeros(1, 4, 25, 25), torch.zeros(1, 4, 25, 25)).shape
        torch.Size([1, 4, 25, 25])
    """

    def __init__(self, spatial_dims: int, channels: int, width: int, config: NetworkConfig, groups: int = 1) -> None:
        super().__init__()
        self.pad = config.receptive_pad
        self.pad_mode = {"zeros": "constant"}.get(config.padding, config.padding)  # F.pad's names
        self.features = _conv_stack(spatial_dims, channels, width, config, groups)
        self.tail = Convolution(spatial_dims, groups * width, groups * channels, kernel_size=config.kernel_size,
                                padding=0, conv_only=True, groups=groups)
        self.out_act = nn.Tanh()

    def forward(self, noise: torch.Tensor, previous: torch.Tensor,
                windows: Sequence[Window] | None = None) -> torch.Tensor:
        """The output ``(N, C, *spatial)``, or only its part in ``windows`` (one window per group, each a slice per
        spatial axis, all of one size; see :func:`crop_windows`): computed from each window and its padding's worth
        of context, so it equals that part of the whole output."""
        x = F.pad(noise + previous, [self.pad] * (2 * (noise.ndim - 2)), mode=self.pad_mode)
        if windows is None:
            return self.out_act(self.tail(self.features(x))) + previous
        return self.out_act(self.tail(self.features(crop_windows(x, windows, 2 * self.pad)))) + crop_windows(
            previous, windows)


class ScaleCritic(nn.Module):
    """Markovian (patch) critic of one scale: a map of scores, one per receptive field.

    With ``config.critic == "content_layout"`` (One-Shot GAN's content and layout critic, Sushko et al., CVPR 2021)
    the critic also has two branches on its shared features (the ``num_layers - 1`` blocks before the patch tail):

    - content: a 1x1 convolution and activation at every position, averaged over all positions, then a linear
      score: one per sample, which judges what the image holds (the distribution of its feature vectors) wherever
      it is. The head comes before the pooling because a batch norm over one sample (training draws one) sets
      every feature map's mean: the plain averages of the features would tell real from fake almost nothing;
    - layout: the features reduced to one channel by a 1x1 convolution, then three 3-wide convolutions dilated by
      1, 2 and 4 (padded by replication, so the map keeps the features' size however small the scale or window):
      a score map whose receptive field (23 pixels with the defaults) spans the coarsest scale, which judges where
      things are from a map that no longer says what they are.

    The branches run at the ``config.critic_scales`` coarsest scales (``scale`` below); a finer scale's critic holds
    them (so every critic of a model has one set of weights, as the checkpoint's check of a stored critic expects)
    but does not use them. The score map the losses read is then the patch map plus each sample's content score and
    mean layout score at every position: its mean is the sum of the three branches' means (the WGAN loss), and the
    gradient penalty, taken on its sum as for the patch critic alone, is the penalty on that sum times the number of
    patch positions. ``branch_scores`` gives the three apart.

    With ``groups=K``, K independent critics side by side: channel ``k`` of every score map belongs to model ``k``,
    and model ``k``'s branches read its own feature maps only.

    Args:
        spatial_dims: 2 or 3.
        channels: channels of the image + mask tensor (of one model).
        width: feature maps of the hidden layers (of one model).
        config: architecture options.
        groups: models side by side in this module.
        scale: pyramid level (0 = coarsest) the critic judges; with the content and layout critic, the branches run
            when ``scale < config.critic_scales`` or ``scale`` is ``None``.

    Example:
        >>> ScaleCritic(2, 4, 32, NetworkConfig())(torch.zeros(2, 4, 25, 25)).shape
        torch.Size([2, 1, 15, 15])
        >>> scores = ScaleCritic(2, 4, 32, NetworkConfig(critic="content_layout")).branch_scores(torch.zeros(2, 4, 25, 25))
        >>> [tuple(v.shape) for v in scores.values()]
        [(2, 1, 15, 15), (2, 1, 1, 1), (2, 1, 17, 17)]
    """

    def __init__(self, spatial_dims: int, channels: int, width: int, config: NetworkConfig, groups: int = 1,
                 scale: int | None = None) -> None:
        super().__init__()
        self.features = _conv_stack(spatial_dims, channels, width, config, groups)
        self.tail = Convolution(spatial_dims, groups * width, groups, kernel_size=config.kernel_size, padding=0,
                                conv_only=True, groups=groups)
        self.branched = False
        if look_up_option(config.critic, CRITICS) == "content_layout":
            act = _ACT_ARGS[look_up_option(config.act, ACTS)]
            hidden = max(1, width // 4)  # of the layout head, per model
            self.content = nn.Sequential(
                Convolution(spatial_dims, groups * width, groups * width, kernel_size=1, act=act, norm=None,
                            groups=groups),
                Convolution(spatial_dims, groups * width, groups, kernel_size=1, conv_only=True, groups=groups),
            )
            self.layout_reduce = Convolution(spatial_dims, groups * width, groups, kernel_size=1, conv_only=True,
                                             groups=groups)
            self.layout = nn.ModuleList(
                Convolution(spatial_dims, groups * (1 if d == 1 else hidden), groups * (1 if d == 4 else hidden),
                            kernel_size=3, dilation=d, padding=0, act=act, norm=None, conv_only=d == 4,
                            groups=groups)
                for d in (1, 2, 4)
            )
            self.branched = scale is None or scale < config.critic_scales

    def _layout(self, features: torch.Tensor) -> torch.Tensor:
        x = self.layout_reduce(features)
        for conv in self.layout:
            x = conv(F.pad(x, [conv.conv.dilation[0]] * (2 * (x.ndim - 2)), mode="replicate"))
        return x

    def branch_scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The score maps of ``x`` ``(N, groups * C, *spatial)`` by branch: ``patch`` ``(N, groups, *patch_map)``,
        and with the branches, ``content`` ``(N, groups, 1, ...)`` and ``layout`` ``(N, groups, *feature_map)``."""
        features = self.features(x)
        scores = {"patch": self.tail(features)}
        if self.branched:
            dims = tuple(range(2, x.ndim))
            scores["content"] = self.content[1](self.content[0](features).mean(dims, keepdim=True))
            scores["layout"] = self._layout(features)
        return scores

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The score map ``(N, groups, *patch_map)`` the losses read (see the class docstring)."""
        if not self.branched:
            return self.tail(self.features(x))
        scores = self.branch_scores(x)
        layout = scores["layout"].mean(tuple(range(2, x.ndim)), keepdim=True)
        return scores["patch"] + scores["content"] + layout


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Reference initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.InstanceNorm3d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(m.bias)


def stack_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """State dict of a grouped module (``groups=len(states)``) made of the state dicts of single modules.

    A grouped convolution's weight is its groups' weights one after the other along the output axis, and every
    norm parameter or running statistic is per channel, so each entry is a concatenation along dim 0. The batch
    counter of batch norms (a scalar, equal for modules trained in step) is taken from the first.
    """
    return {k: states[0][k].clone() if states[0][k].ndim == 0 else torch.cat([s[k] for s in states]) for k in states[0]}


def split_state(state: dict[str, torch.Tensor], groups: int) -> list[dict[str, torch.Tensor]]:
    """The inverse of :func:`stack_states`: one detached state dict per group."""
    parts: list[dict[str, torch.Tensor]] = [{} for _ in range(groups)]
    for key, value in state.items():
        chunks = [value] * groups if value.ndim == 0 else value.chunk(groups)
        for part, chunk in zip(parts, chunks):
            part[key] = chunk.detach().clone()
    return parts


def widen_state(wide: dict[str, torch.Tensor], narrow: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Embed a narrow network's state in a freshly initialised wider one of the same layout, preserving its function.

    Every tensor of ``narrow`` goes into the leading block of its ``wide`` counterpart (the first output channels,
    the first input channels); weights from the new input channels into the old output channels are zero, so the
    old channels compute what they computed, and the tail reads the new channels with zero weights, so the output
    is the narrow network's (batch and instance norms are per channel). The new channels keep their initialisation
    and learn from the first step: a wider scale starts where the previous scale ended instead of from scratch.

    Args:
        wide: state dict of the wider network (a single one, ``groups=1``), initialised (e.g. by
            :func:`init_weights`).
        narrow: state dict of the same architecture with fewer feature maps (bias-free layout before norms: see
            :func:`drop_norm_biases`).

    Returns:
        A new state dict with the shapes of ``wide``.

    Raises:
        ValueError: the two states are not of one architecture, or ``narrow`` is larger somewhere.
    """
    def fits(old: torch.Tensor, new: torch.Tensor) -> bool:  # channels may grow, kernels may not change
        return old.ndim == new.ndim and old.shape[2:] == new.shape[2:] and all(
            n <= w for n, w in zip(old.shape[:2], new.shape[:2]))

    if narrow.keys() != wide.keys() or not all(fits(narrow[k], wide[k]) for k in wide):
        raise ValueError("widen_state: the narrow state is not a narrower network of the wide one's architecture.")
    out = {}
    for key, value in wide.items():
        old, value = narrow[key], value.clone()
        if value.ndim == 0:  # a batch-norm counter
            out[key] = old.clone()
            continue
        value[tuple(slice(0, n) for n in old.shape[:2])] = old
        if value.ndim > 1:
            value[: old.shape[0], old.shape[1]:] = 0
        out[key] = value
    return out


def drop_norm_biases(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a state dict whose convolutions before a norm have a bias to the bias-free layout, exactly.

    Before batch norm the bias moves into the running mean (``mean - bias``: the same output in eval mode, and
    training mode ignores both); before instance norm it has no effect at all and is dropped. Other biases stay.
    """
    state = dict(state)
    for key in [k for k in state if k.endswith("conv.bias")]:
        norm = key[: -len("conv.bias")] + "adn.N."
        if any(k.startswith(norm) for k in state):
            bias = state.pop(key)
            if norm + "running_mean" in state:
                state[norm + "running_mean"] = state[norm + "running_mean"] - bias
    return state
