"""The StyleGAN2 networks of stacked image + mask channels, 2D or 3D: mapping network, modulated convolutions with
weight demodulation, per-layer noise inputs, a learned constant input, skip outputs, and a residual critic with a
minibatch standard-deviation channel.

Written from the papers (Karras et al., "A Style-Based Generator Architecture for GANs", CVPR 2019; "Analyzing and
Improving the Image Quality of StyleGAN", CVPR 2020), not from their code. Departures, to stay small and work in 3D:
upsampling and downsampling are plain (bi/tri)linear interpolation and average pooling instead of the papers' FIR
filters, and one ``w`` drives every layer (no style mixing).

Every layer scales its weights at run time by ``1 / sqrt(fan_in)`` (equalised learning rate), so Adam's steps are
alike for every layer whatever its width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Act
from torch import nn

__all__ = ["Critic", "EqualConv", "EqualLinear", "MappingNetwork", "ModulatedConv", "StyleGenerator",
           "SynthesisNetwork", "minibatch_stddev", "resize_condition"]

CONV = {2: F.conv2d, 3: F.conv3d}
POOL = {2: F.avg_pool2d, 3: F.avg_pool3d}
UPSAMPLE = {2: "bilinear", 3: "trilinear"}
GAIN = math.sqrt(2.0)  # a leaky ReLU of slope 0.2 halves about half the signal's power; the gain restores it


def _activation() -> nn.Module:
    """StyleGAN's activation: a leaky ReLU of slope 0.2 from MONAI's factory (the ``GAIN`` is applied beside it)."""
    return Act[Act.LEAKYRELU](negative_slope=0.2)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``(N, C, *spatial)`` at twice the size along every spatial axis (bi/trilinear)."""
    return F.interpolate(x, scale_factor=2.0, mode=UPSAMPLE[x.ndim - 2], align_corners=False)


def resize_condition(condition: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A mask ``(N, M, *spatial)`` in ``[-1, 1]`` averaged down (or, when larger, nearest-upsampled) to ``shape``:
    the mask as a level of the image generator sees it, soft at outlines."""
    if tuple(condition.shape[2:]) == tuple(shape):
        return condition
    mode = "area" if all(s <= c for s, c in zip(shape, condition.shape[2:])) else "nearest"
    return F.interpolate(condition, size=tuple(shape), mode=mode)


class EqualLinear(nn.Module):
    """A fully connected layer with an equalised learning rate.

    Args:
        in_features: inputs. out_features: outputs.
        bias_init: the bias's initial value (1 for the style affines, so styles start at 1).
        lr_mult: learning-rate multiplier (the mapping network's 0.01): weights are stored ``1 / lr_mult`` larger
            and scaled down at run time, so Adam's steps on them are ``lr_mult`` as large in effect.
        activate: apply the leaky ReLU (with its gain).
    """

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mult: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mult)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mult))
        self.weight_gain = lr_mult / math.sqrt(in_features)
        self.lr_mult = lr_mult
        self.act = _activation() if activate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_features) -> (N, out_features)``."""
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mult)
        return self.act(x) * GAIN if self.act is not None else x


class EqualConv(nn.Module):
    """A convolution (stride 1, 'same' padding) with an equalised learning rate, 2D or 3D.

    Args:
        spatial_dims: 2 or 3. in_channels, out_channels: feature maps. kernel_size: odd width.
        bias: add a learned bias. activate: apply the leaky ReLU (with its gain).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
                 bias: bool = True, activate: bool = False) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *(kernel_size,) * spatial_dims))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size ** spatial_dims)
        self.padding = kernel_size // 2
        self.act = _activation() if activate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, *spatial) -> (N, out_channels, *spatial)``."""
        x = CONV[self.spatial_dims](x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        return self.act(x) * GAIN if self.act is not None else x


class MappingNetwork(nn.Module):
    """``z`` (and a class) to the intermediate latent ``w``: a normalised input, then an MLP of leaky-ReLU layers
    with a low learning rate. Keeps a running mean of ``w`` (``w_avg``) for the truncation trick.

    Args:
        latent_dim: size of ``z``. style_dim: size of ``w``. layers: fully connected layers.
        num_classes: K > 0 joins a learned embedding of the class (normalised like ``z``) to ``z``.
        lr_mult: learning-rate multiplier of the layers (StyleGAN's 0.01).
        w_avg_beta: decay of the running mean of ``w`` updated in training.
    """

    def __init__(self, latent_dim: int, style_dim: int, layers: int, num_classes: int = 0, lr_mult: float = 0.01,
                 w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embed = EqualLinear(num_classes, latent_dim) if num_classes > 0 else None
        sizes = [latent_dim * (2 if num_classes > 0 else 1)] + [style_dim] * layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mult=lr_mult, activate=True)
                                      for a, b in zip(sizes[:-1], sizes[1:])])
        self.w_avg_beta = w_avg_beta
        self.register_buffer("w_avg", torch.zeros(style_dim))

    def forward(self, z: torch.Tensor, classes: torch.Tensor | None = None, truncation: float = 1.0,
                update_avg: bool = False) -> torch.Tensor:
        """``w`` ``(N, style_dim)`` for ``z`` ``(N, latent_dim)`` and ``classes`` ``(N,)`` indices (needed iff the
        network has classes); ``truncation`` < 1 pulls ``w`` towards ``w_avg`` (less variety, fewer oddities)."""
        x = _normalize(z)
        if self.embed is not None:
            if classes is None:
                raise ValueError(f"this network is conditioned on {self.num_classes} classes: give a class per sample.")
            onehot = F.one_hot(classes.long(), self.num_classes).to(z.dtype)
            x = torch.cat([x, _normalize(self.embed(onehot))], dim=1)
        w = self.layers(x)
        if update_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation != 1.0:
            w = self.w_avg.lerp(w, truncation)
        return w


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``(N, D)`` scaled to unit second moment per row (StyleGAN's pixel norm of ``z``)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class ModulatedConv(nn.Module):
    """StyleGAN2's modulated convolution: the weights scaled per input channel by a style (an affine map of ``w``)
    and, with ``demodulate``, rescaled per output channel to unit expected output variance (weight demodulation,
    which replaces AdaIN's instance normalisation and its droplet artefacts). Runs as one grouped convolution, the
    batch's samples as groups.

    Args:
        spatial_dims: 2 or 3. in_channels, out_channels: feature maps. kernel_size: odd width.
        style_dim: size of ``w``. demodulate: normalise the output (off for the 1x1 output layers).
        up: double the input's size first.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, up: bool = False) -> None:
        super().__init__()
        self.spatial_dims, self.demodulate, self.up = spatial_dims, demodulate, up
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *(kernel_size,) * spatial_dims))
        self.affine = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size ** spatial_dims)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x`` ``(N, in_channels, *spatial)`` and ``w`` ``(N, style_dim)`` -> ``(N, out_channels, *spatial')``
        (``spatial'`` doubled with ``up``)."""
        if self.up:
            x = upsample(x)
        n, c = x.shape[:2]
        ones = (1,) * self.spatial_dims
        styles = self.affine(w)  # (N, in)
        weight = self.weight[None] * self.weight_gain * styles.reshape(n, 1, c, *ones)  # (N, out, in, *k)
        if self.demodulate:
            sums = weight.square().sum(dim=tuple(range(2, weight.ndim)))  # (N, out)
            weight = weight * torch.rsqrt(sums + 1e-8).reshape(n, -1, 1, *ones)
        out = CONV[self.spatial_dims](x.reshape(1, n * c, *x.shape[2:]), weight.reshape(-1, c, *weight.shape[3:]),
                                      padding=self.padding, groups=n)
        return out.reshape(n, -1, *out.shape[2:])


class StyleLayer(nn.Module):
    """A modulated 3-wide convolution, then per-pixel noise times a learned strength (0 at first), a bias and the
    leaky ReLU. The noise gives the stochastic detail (grain, exact cell outlines) its own source."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, style_dim: int,
                 up: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv(spatial_dims, in_channels, out_channels, 3, style_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.act = _activation()

    def forward(self, x: torch.Tensor, w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.conv(x, w)
        noise = torch.randn((x.shape[0], 1, *x.shape[2:]), generator=generator, device=x.device, dtype=x.dtype)
        x = x + noise * self.noise_strength + self.bias.reshape(1, -1, *(1,) * (x.ndim - 2))
        return self.act(x) * GAIN


class SynthesisNetwork(nn.Module):
    """``w`` to an output ``(N, out_channels, *resolution)``: a learned constant at the start size, two style layers
    per level (the first of each level after the start upsamples), and a 1x1 output layer per level whose outputs
    are upsampled and summed (StyleGAN2's skip generator).

    Args:
        spatial_dims: 2 or 3. out_channels: output channels. widths: feature maps per level, coarsest first.
        start_size: the constant's spatial size. style_dim: size of ``w``.
        condition_channels: M > 0: every style layer also sees an ``(N, M, ...)`` condition (the mask of the
            ``mask_then_image`` design) resized to its input, joined to its input channels.
    """

    def __init__(self, spatial_dims: int, out_channels: int, widths: Sequence[int], start_size: Sequence[int],
                 style_dim: int, condition_channels: int = 0) -> None:
        super().__init__()
        self.condition_channels = condition_channels
        m = condition_channels
        self.const = nn.Parameter(torch.randn(widths[0], *start_size))
        self.levels = nn.ModuleList()
        self.outputs = nn.ModuleList()
        for i, width in enumerate(widths):
            previous = widths[max(i - 1, 0)]
            layers = [StyleLayer(spatial_dims, previous + m, width, style_dim, up=i > 0)] if i > 0 else []
            layers.append(StyleLayer(spatial_dims, width + m, width, style_dim))
            self.levels.append(nn.ModuleList(layers))
            self.outputs.append(ModulatedConv(spatial_dims, width, out_channels, 1, style_dim, demodulate=False))
        self.output_bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, w: torch.Tensor, condition: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """The output for ``w`` ``(N, style_dim)`` (and ``condition`` ``(N, M, *resolution)`` in ``[-1, 1]`` when
        the network is conditioned), noise drawn from ``generator``; unbounded, about ``[-1, 1]`` once trained."""
        if (condition is None) != (self.condition_channels == 0):
            raise ValueError(f"this synthesis network takes a condition of {self.condition_channels} channels "
                             f"(0: none), got {'none' if condition is None else tuple(condition.shape)}.")
        x = self.const[None].expand(w.shape[0], *self.const.shape)
        out = None
        for layers, to_output in zip(self.levels, self.outputs):
            for layer in layers:
                if condition is not None:
                    x = torch.cat([x, resize_condition(condition, x.shape[2:])], dim=1)
                x = layer(x, w, generator)
            y = to_output(x, w)
            out = y if out is None else upsample(out) + y
        return out + self.output_bias.reshape(1, -1, *(1,) * (out.ndim - 2))


class StyleGenerator(nn.Module):
    """A mapping network and a synthesis network: ``(z, class, condition) -> (N, out_channels, *resolution)``.

    Args:
        spatial_dims: 2 or 3. out_channels: output channels. widths: feature maps per level, coarsest first.
        start_size: the constant's spatial size. latent_dim: size of ``z``. style_dim: size of ``w``.
        mapping_layers: layers of the mapping network. num_classes: class labels (0: none).
        condition_channels: channels of the synthesis network's condition (0: none).
        mapping_lr_mult: the mapping network's learning-rate multiplier.

    Example:
        >>> g = StyleGenerator(2, 4, (32, 16, 16), (4, 4), 64, 64, 2)
        >>> g(torch.randn(3, 64)).shape
        torch.Size([3, 4, 16, 16])
    """

    def __init__(self, spatial_dims: int, out_channels: int, widths: Sequence[int], start_size: Sequence[int],
                 latent_dim: int, style_dim: int, mapping_layers: int, num_classes: int = 0,
                 condition_channels: int = 0, mapping_lr_mult: float = 0.01) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.mapping = MappingNetwork(latent_dim, style_dim, mapping_layers, num_classes, mapping_lr_mult)
        self.synthesis = SynthesisNetwork(spatial_dims, out_channels, widths, start_size, style_dim,
                                          condition_channels)

    def forward(self, z: torch.Tensor, classes: torch.Tensor | None = None, condition: torch.Tensor | None = None,
                generator: torch.Generator | None = None, truncation: float = 1.0,
                update_avg: bool = False) -> torch.Tensor:
        """The output for ``z`` ``(N, latent_dim)``; see :class:`MappingNetwork` and :class:`SynthesisNetwork`."""
        w = self.mapping(z, classes, truncation, update_avg)
        return self.synthesis(w, condition, generator)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """``x`` ``(N, C, *spatial)`` with one more channel: the standard deviation over groups of samples, averaged
    over channels and positions (StyleGAN's cue against a generator that makes one sample for every input). The
    group is the largest divisor of ``N`` up to ``group_size``."""
    n = x.shape[0]
    group = min(group_size, n)
    while n % group:
        group -= 1
    y = x.reshape(group, n // group, *x.shape[1:])
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=tuple(range(1, y.ndim - 1)))  # (N / group,)
    y = y.repeat(group).reshape(n, 1, *(1,) * (x.ndim - 2)).expand(n, 1, *x.shape[2:])
    return torch.cat([x, y], dim=1)


class CriticBlock(nn.Module):
    """Two 3-wide convolutions and a halving, beside a 1x1 skip of the halved input, summed at unit variance."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = POOL[spatial_dims]
        self.conv0 = EqualConv(spatial_dims, in_channels, in_channels, 3, activate=True)
        self.conv1 = EqualConv(spatial_dims, in_channels, out_channels, 3, activate=True)
        self.skip = EqualConv(spatial_dims, in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.pool(self.conv1(self.conv0(x)), 2)
        return (main + self.skip(self.pool(x, 2))) / math.sqrt(2.0)


class Critic(nn.Module):
    """StyleGAN2's residual critic: a 1x1 input layer, a residual block per level down to the start size, then a
    minibatch standard-deviation channel, a 3-wide convolution and two fully connected layers to one score per
    sample. With classes, the score adds a projection term (the class embedding's dot product with the features,
    Miyato and Koyama 2018), as StyleGAN2-ADA conditions its critic.

    Args:
        spatial_dims: 2 or 3. in_channels: channels judged. widths: feature maps per level, coarsest first (the
            generator's). resolution: the input size. num_classes: class labels (0: none).

    Example:
        >>> Critic(2, 4, (32, 16, 16), (16, 16))(torch.randn(3, 4, 16, 16)).shape
        torch.Size([3])
    """

    def __init__(self, spatial_dims: int, in_channels: int, widths: Sequence[int], resolution: Sequence[int],
                 num_classes: int = 0) -> None:
        super().__init__()
        fine_first = list(widths)[::-1]
        self.num_classes = num_classes
        self.from_input = EqualConv(spatial_dims, in_channels, fine_first[0], 1, activate=True)
        self.blocks = nn.Sequential(*[CriticBlock(spatial_dims, a, b) for a, b in zip(fine_first[:-1], fine_first[1:])])
        last = fine_first[-1]
        start = [s // 2 ** (len(widths) - 1) for s in resolution]
        self.conv = EqualConv(spatial_dims, last + 1, last, 3, activate=True)
        self.fc = EqualLinear(last * math.prod(start), last, activate=True)
        self.out = EqualLinear(last, 1)
        self.embed = EqualLinear(num_classes, last) if num_classes > 0 else None

    def forward(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(N,)`` (higher: more real) of ``x`` ``(N, in_channels, *resolution)``."""
        h = self.blocks(self.from_input(x))
        h = self.fc(self.conv(minibatch_stddev(h)).flatten(1))
        score = self.out(h)[:, 0]
        if self.embed is not None:
            if classes is None:
                raise ValueError(f"this critic is conditioned on {self.num_classes} classes: give a class per sample.")
            e = self.embed(F.one_hot(classes.long(), self.num_classes).to(h.dtype))
            score = score + (e * h).sum(dim=1) / math.sqrt(h.shape[1])
        return score
