"""VGG16 / VGG19 convolutional features laid out like torchvision's, and finding their pretrained weights locally.

torchvision is not needed: :func:`vgg_features` builds the same ``features`` stack (so indices match the keys
``features.<i>.weight`` / ``features.<i>.bias`` of torchvision's ``vgg16-397923af.pth`` and
``vgg19-dcbb9e9d.pth``), and :func:`load_vgg_features` reads such a file with ``torch.load(weights_only=True)`` or
as safetensors. Nothing is ever downloaded: weights come from an explicit path, the ``SINGANSEG_VGG_WEIGHTS``
environment variable, or torchvision's cache ``torch.hub.get_dir()/checkpoints/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from monai.utils import look_up_option, optional_import
from torch import nn

from monai_singanseg.errors import SinGANSegInputError

safetensors_load, has_safetensors = optional_import("safetensors.torch", name="load_file")

__all__ = [
    "VGG_CACHE_FILES",
    "VGG_CONFIGS",
    "WEIGHTS_ENV",
    "VGGWeightsNotFoundError",
    "find_vgg_weights",
    "layer_indices",
    "load_vgg_features",
    "vgg_features",
]

#: channels per convolution, ``"M"`` for a 2x2 pooling (torchvision's configurations "D" and "E")
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
#: torchvision's file names in the torch hub cache, preferred first
VGG_CACHE_FILES = {"vgg19": "vgg19-dcbb9e9d.pth", "vgg16": "vgg16-397923af.pth"}
WEIGHTS_ENV = "SINGANSEG_VGG_WEIGHTS"


class VGGWeightsNotFoundError(SinGANSegInputError):
    """No pretrained VGG weights were found locally (nothing is downloaded)."""


def vgg_features(arch: str = "vgg19", pooling: str = "max") -> nn.Sequential:
    """The convolutional part of VGG as torchvision's ``model.features`` (same indices), randomly initialised.

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``.
        pooling: ``"max"`` (torchvision) or ``"avg"`` (Gatys et al. found average pooling gives smoother
            gradients for image synthesis); parameters are the same either way.

    Returns:
        ``nn.Sequential`` of ``Conv2d(3x3, padding 1)``, ``ReLU`` and 2x2 pooling: input ``(N, 3, H, W)``
        normalised with the ImageNet mean and std.

    Example:
        >>> features = vgg_features("vgg16")
        >>> features[0].weight.shape, features[28].weight.shape
        (torch.Size([64, 3, 3, 3]), torch.Size([512, 512, 3, 3]))
    """
    config = look_up_option(arch, VGG_CONFIGS)
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[look_up_option(pooling, ("max", "avg"))]
    layers: list[nn.Module] = []
    channels = 3
    for value in config:
        if value == "M":
            layers.append(pool(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(value), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            channels = int(value)
    return nn.Sequential(*layers)


def layer_indices(arch: str = "vgg19") -> dict[str, int]:
    """Index in :func:`vgg_features` of the ReLU after every convolution, by the paper's names (``"conv4_2"``).

    Example:
        >>> layer_indices("vgg19")["conv4_2"], layer_indices("vgg16")["conv5_1"]
        (22, 25)
    """
    names, block, conv, index = {}, 1, 0, 0
    for value in look_up_option(arch, VGG_CONFIGS):
        if value == "M":
            block, conv, index = block + 1, 0, index + 1
        else:
            conv += 1
            names[f"conv{block}_{conv}"] = index + 1  # the ReLU that follows the convolution
            index += 2
    return names


def _candidates(path: str | os.PathLike | None) -> list[Path]:
    if path is not None:
        return [Path(path)]
    if os.environ.get(WEIGHTS_ENV):
        return [Path(os.environ[WEIGHTS_ENV])]
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    found = [cache / name for name in VGG_CACHE_FILES.values()]
    for arch in VGG_CACHE_FILES:  # other releases of the same architectures, e.g. vgg19-<hash>.pth
        found += sorted(p for p in cache.glob(f"{arch}-*.pth") if p not in found)
    return found


def find_vgg_weights(path: str | os.PathLike | None = None) -> Path:
    """The weights file to use: ``path``, else ``$SINGANSEG_VGG_WEIGHTS``, else torchvision's cache (VGG19 first).

    Raises:
        VGGWeightsNotFoundError: nothing found; the message says where it looked and how to provide weights.
    """
    candidates = _candidates(path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise VGGWeightsNotFoundError(
        f"pretrained VGG weights not found (looked at: {looked}). VGG style refinement needs a torchvision VGG19 or "
        f"VGG16 state dict ({VGG_CACHE_FILES['vgg19']} or {VGG_CACHE_FILES['vgg16']} from torchvision's model zoo, "
        f"or a file with the same 'features.<i>.weight' keys): pass it with --style-weights PATH (Python: "
        f"weights=PATH), set {WEIGHTS_ENV}=PATH, or copy it into {Path(torch.hub.get_dir()) / 'checkpoints'}. "
        "Nothing is downloaded. Without weights, use --style histogram."
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        if not has_safetensors:
            raise SinGANSegInputError(f"{path}: reading safetensors needs the safetensors package: "
                                      "pip install safetensors.")
        return safetensors_load(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or damaged files
        raise SinGANSegInputError(f"{path}: cannot be read as a weights-only state dict ({type(err).__name__}).") \
            from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SinGANSegInputError(f"{path}: holds a {type(state).__name__}, not a state dict.")
    return state


def load_vgg_features(
    path: str | os.PathLike | None = None, pooling: str = "max", device: str | torch.device = "cpu"
) -> tuple[nn.Sequential, str, Path]:
    """Find (see :func:`find_vgg_weights`) and load pretrained VGG features, frozen, in eval mode.

    The file may be a full torchvision state dict (``features.*`` and ``classifier.*``; the classifier is ignored)
    or the features alone (``features.<i>.weight`` or ``<i>.weight``), as ``.pth`` or ``.safetensors``. The
    architecture (VGG16 or VGG19) is read from the number of convolutions.

    Returns:
        ``(features, arch, path)``.
    """
    found = find_vgg_weights(path)
    raw = _read_state_dict(found)
    state = {k.removeprefix("features."): v for k, v in raw.items()
             if isinstance(v, torch.Tensor) and not k.startswith("classifier.")}
    convs = sum(1 for k in state if k.endswith(".weight") and state[k].ndim == 4)
    arch = {13: "vgg16", 16: "vgg19"}.get(convs)
    if arch is None:
        raise SinGANSegInputError(f"{found}: expected the 13 (VGG16) or 16 (VGG19) convolutions of a torchvision VGG "
                                  f"state dict ('features.<i>.weight'), found {convs}.")
    features = vgg_features(arch, pooling)
    try:
        features.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise SinGANSegInputError(f"{found}: not laid out like torchvision's {arch} features ({err}).") from err
    for p in features.parameters():
        p.requires_grad_(False)
    return features.to(device).eval(), arch, found
