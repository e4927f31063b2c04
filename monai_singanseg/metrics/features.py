"""The Inception-v3 stem that SIFID reads its features from, with its weights found in a local file.

SIFID (Shaham et al., SinGAN, ICCV 2019) compares the statistics of the 64-channel feature map that Inception-v3
produces before its second max pooling: ``Conv2d_1a_3x3 -> Conv2d_2a_3x3 -> Conv2d_2b_3x3 -> max pool``. The layers
here carry torchvision's and pytorch-fid's parameter names, so either project's ImageNet weights load into them
with ``torch.load(weights_only=True)``; nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from monai_singanseg.errors import SinGANSegInputError

__all__ = [
    "INCEPTION_WEIGHTS_ENV",
    "INCEPTION_WEIGHT_FILES",
    "FeatureExtractor",
    "InceptionStem",
    "extract",
    "find_inception_weights",
    "load_inception_stem",
    "to_three_channels",
]

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]
"""Any callable from images ``(N, 3, H, W)`` in ``[-1, 1]`` to feature maps ``(N, C, h, w)``."""

INCEPTION_WEIGHT_FILES = ("pt_inception-2015-12-05-6726825d.pth", "inception_v3_google-0cc3c7bd.pth")
"""File names of pytorch-fid's FID Inception weights and torchvision's ImageNet Inception-v3 weights."""

INCEPTION_WEIGHTS_ENV = "SINGANSEG_INCEPTION_WEIGHTS"


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001) and ReLU: Inception-v3's building block."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class InceptionStem(nn.Module):
    """Inception-v3 up to its first max pooling: images ``(N, 3, H, W)`` in ``[-1, 1]`` → ``(N, 64, h, w)``.

    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016. The input is used at
    its own size (as SIFID does; no resizing to 299): ``h = ((H - 3) // 2 - 4) // 2 + 1``, so a 64² image gives a
    14² map (196 positions) and a 32² image only 6² (36 positions, fewer than the 64 feature channels: the
    covariance is then singular and SIFID less reliable).

    Example:
        >>> stem = InceptionStem().eval()
        >>> stem(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 64, 14, 14])
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))


def find_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The Inception weight file to use: ``path``, else ``$SINGANSEG_INCEPTION_WEIGHTS``, else the torch hub cache.

    In the torch hub cache (``torch.hub.get_dir()/checkpoints``) the file names of :data:`INCEPTION_WEIGHT_FILES`
    are looked for, which is where pytorch-fid and torchvision keep them after their own downloads.

    Raises:
        SinGANSegInputError: no weight file is found; the message lists the places and names looked for.
    """
    if path is not None:
        if not Path(path).is_file():
            raise SinGANSegInputError(f"{path}: Inception weight file not found.")
        return Path(path)
    env = os.environ.get(INCEPTION_WEIGHTS_ENV)
    if env:
        if not Path(env).is_file():
            raise SinGANSegInputError(f"{env} (from ${INCEPTION_WEIGHTS_ENV}): Inception weight file not found.")
        return Path(env)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in INCEPTION_WEIGHT_FILES:
        if (cache / name).is_file():
            return cache / name
    raise SinGANSegInputError(
        f"no Inception-v3 weights for SIFID: looked for {' or '.join(INCEPTION_WEIGHT_FILES)} in {cache} and in "
        f"${INCEPTION_WEIGHTS_ENV} (unset). Copy pytorch-fid's or torchvision's Inception weight file there, "
        f"or set ${INCEPTION_WEIGHTS_ENV}=/path/to/file.pth, or pass its path (--inception-weights)."
    )


def load_inception_stem(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> InceptionStem:
    """An :class:`InceptionStem` in eval mode with the stem's weights from a local file (see
    :func:`find_inception_weights`); the rest of the file's layers are ignored.

    Raises:
        SinGANSegInputError: no file found, or the file lacks the stem's parameters.
    """
    file = find_inception_weights(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or damaged files
        raise SinGANSegInputError(f"{file}: cannot be read as a weights-only state dict ({err}).") from err
    stem = InceptionStem()
    wanted = [k for k in stem.state_dict() if not k.endswith("num_batches_tracked")]
    missing = [k for k in wanted if k not in state]
    if missing:
        raise SinGANSegInputError(f"{file}: not an Inception-v3 state dict (no {missing[0]}).")
    stem.load_state_dict({k: state[k] for k in wanted}, strict=False)
    return stem.to(device).eval()


def to_three_channels(images: torch.Tensor) -> list[torch.Tensor]:
    """Inputs for a 3-channel extractor from ``(N, C, H, W)``: the images as they are when ``C == 3``, otherwise
    one grey image per channel repeated to 3 channels (a list of ``C`` tensors ``(N, 3, H, W)``)."""
    if images.shape[1] == 3:
        return [images]
    return [images[:, c : c + 1].expand(-1, 3, *images.shape[2:]) for c in range(images.shape[1])]


def extract(extractor: FeatureExtractor, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """``extractor`` applied in batches without gradients: ``(N, 3, H, W)`` → ``(N, C, h, w)``."""
    with torch.no_grad():
        return torch.cat([extractor(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)])
