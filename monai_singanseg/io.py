"""Reading training pairs with MONAI's readers and writing outputs with MONAI's writers.

``monai.transforms.LoadImage`` reads PNG/JPG/TIFF (PIL), NIfTI (nibabel) and DICOM files or series folders (ITK or
pydicom); ``monai.data.PILWriter`` writes PNG and nibabel writes NIfTI with the source affine.
Arrays follow MONAI's layout: channel first, then spatial axes in reader order (for PNG: width, height).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor, PILWriter
from monai.transforms import LoadImage

from monai_singanseg.config import OUTPUT_FORMATS
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write
from monai_singanseg.intensity import IntensityMapping, LabelEncoding

__all__ = [
    "OUTPUT_FORMATS",
    "TrainingPair",
    "check_percentiles",
    "image_writer",
    "load_training_pair",
    "model_name",
    "prepare_training_pair",
    "read_image",
    "read_mask",
    "read_stacked_images",
    "write_image",
]

logger = logging.getLogger(__name__)

_SUFFIXES = (".nii.gz", ".pt", ".nii", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".mha", ".nrrd")


def model_name(path: Any) -> str:
    """The name a checkpoint or an image is known by: its file name without folder and known extensions.

    ``model_name("models/case_001.pt") == model_name("imagesTr/case_001.nii.gz") == "case_001"``, which is how a
    sample is matched to the model trained on it, and how contrasts are named in outputs.
    """
    name = Path(str(path)).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


class _DropMessages(logging.Filter):
    """A logging filter that drops records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def _quiet_nvimgcodec() -> Iterator[None]:
    """Silence MONAI's notice that its GPU DICOM decoder plugin is unavailable, for this block only.

    Expected on every machine without nvImageCodec; the logger's level and everything else it would say stay as the
    application set them, and the filter is removed on the way out.
    """
    logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    notice = _DropMessages("nvImageCodec is not available")
    logger.addFilter(notice)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
            yield
    finally:
        logger.removeFilter(notice)


@functools.lru_cache(maxsize=1)
def _loader() -> LoadImage:
    """One MONAI loader for the process: building it registers every reader, which is slow and noisy."""
    with _quiet_nvimgcodec():
        return LoadImage(image_only=True, ensure_channel_first=True)


@dataclass
class TrainingPair:
    """An image + label ready for training.

    Attributes:
        real: ``(image_channels + mask_channels, *spatial)`` float tensor in ``[-1, 1]``.
        intensity: the map of the image channels to ``[-1, 1]``.
        labels: the map of the label to mask channels.
        meta: the first image's metadata (affine, source file), to write outputs alike.
    """

    real: torch.Tensor
    intensity: IntensityMapping
    labels: LabelEncoding
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> dict[str, Any]:
        """What a checkpoint keeps of the source: affine, spatial shape, contrast names (no pixels)."""
        affine = np.asarray(self.meta.get("affine", np.eye(4)), dtype=np.float64)
        return {"affine": affine.tolist(), "shape": list(self.real.shape[1:]),
                "contrasts": list(self.meta.get("contrasts", []))}

    @property
    def spatial_dims(self) -> int:
        return self.real.ndim - 1

    @property
    def image_channels(self) -> int:
        return len(self.intensity.lower)


def check_percentiles(percentiles: Sequence[float] | None) -> None:
    """Refuse intensity percentiles that are not ``0 <= low < high <= 100`` (a reversed pair inverts the image)."""
    if percentiles is not None and not 0.0 <= float(percentiles[0]) < float(percentiles[1]) <= 100.0:
        raise SinGANSegInputError(f"percentiles {tuple(percentiles)}: need 0 <= low < high <= 100.")


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read one file or DICOM series folder as a channel-first MetaTensor, with singleton spatial axes dropped.

    Raises:
        SinGANSegInputError: the file is missing or no MONAI reader can read it.
    """
    path = Path(path)
    if not path.exists():
        raise SinGANSegInputError(f"{path}: file not found.")
    if not path.is_dir() and not path.is_file():  # a named pipe nobody writes would block the reader for ever
        raise SinGANSegInputError(f"{path}: not a regular file or folder (a named pipe or a device?); give an image "
                                  "file or a DICOM series folder.")
    if path.is_dir() and not any(p.is_file() for p in path.iterdir()):
        raise SinGANSegInputError(f"{path}: empty folder (a DICOM series folder must hold the slice files).")
    if path.is_dir():
        _check_one_series(path)
    try:
        image = _loader()(str(path))
    except Exception as err:  # readers raise many types; the user needs the file name and the reason
        reason = _dicom_problem(path) if path.is_dir() or path.suffix.lower() == ".dcm" else None
        if reason is None:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SinGANSegInputError(f"{path}: unreadable image ({reason}).") from err
    keep = [0] + [i + 1 for i, s in enumerate(image.shape[1:]) if s > 1]
    if len(keep) < image.ndim:
        image = image.squeeze(tuple(i for i in range(1, image.ndim) if i not in keep))
    return image


def _check_one_series(folder: Path) -> None:
    """A DICOM folder must hold one series: MONAI's readers pick one of several and only log it, so a user could
    train on the wrong one (say a localiser) without noticing."""
    import pydicom

    series: dict[str, str] = {}
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        if not pydicom.misc.is_dicom(file):
            continue
        try:
            header = pydicom.dcmread(file, stop_before_pixels=True, specific_tags=["SeriesInstanceUID",
                                                                                 "SeriesDescription", "Modality"])
        except Exception:  # noqa: BLE001, S112 - an unreadable file is diagnosed when the series is read
            continue
        uid = str(header.get("SeriesInstanceUID", ""))
        series.setdefault(uid, f"{header.get('Modality', '?')} {header.get('SeriesDescription', '')}".strip())
    if len(series) > 1:
        found = "; ".join(f"{what} ({uid})" for uid, what in series.items())
        raise SinGANSegInputError(f"{folder}: holds {len(series)} DICOM series ({found}); give the folder of one "
                                  "series.")


def _dicom_problem(path: Path) -> str | None:
    """Why a DICOM file or series folder failed to load, in words (pydicom's diagnosis), or ``None`` if unknown.

    ITK, which MONAI picks for DICOM, only says it "could not create IO object"; pydicom tells a file that is not
    DICOM from one whose pixel data is cut short.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file()]
        if not any(pydicom.misc.is_dicom(p) for p in files):
            return f"no DICOM file among its {len(files)} file(s)"
        return None
    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError:
        return "not a DICOM file: no 'DICM' marker after the 128-byte preamble"
    except Exception as err:  # noqa: BLE001 - a header cut short raises one of many types; the reason is reported
        return f"corrupt or truncated DICOM header: {err}"
    if "PixelData" not in dataset:
        return "the DICOM file holds no pixel data: no image, or the file is cut short"
    try:
        _ = dataset.pixel_array
    except Exception as err:  # noqa: BLE001 - truncated pixel data, or a compressed syntax without its decoder
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"DICOM pixel data cannot be decoded: {reason}"
    return None


def _check_finite(array: torch.Tensor, path: str) -> None:
    if not torch.isfinite(array).all():
        raise SinGANSegInputError(f"{path}: contains NaN or infinite values.")


def _grey(mask: torch.Tensor) -> torch.Tensor:
    """A mask whose channels are all equal (a grey mask saved as RGB) as its one channel; others unchanged."""
    if mask.shape[0] > 1 and all(torch.equal(mask[0], mask[c]) for c in range(1, mask.shape[0])):
        return mask[:1]
    return mask


def _label_encoding(label: torch.Tensor, path: str, num_classes: int | None) -> tuple[LabelEncoding, torch.Tensor]:
    """Work out how ``label`` ``(C, *spatial)`` becomes mask channels; returns the encoding and a 1-channel label."""
    label = _grey(label)
    if label.shape[0] > 1:
        values = torch.unique(label)
        if not (set(values.tolist()) <= {0.0, 1.0} and torch.all(label.sum(0) == 1)):
            raise SinGANSegInputError(
                f"{path}: a {label.shape[0]}-channel mask must be one-hot (0/1 values, one 1 per pixel)."
            )
        return LabelEncoding(list(range(label.shape[0])), one_hot=True), label.argmax(0, keepdim=True).float()
    values = sorted(torch.unique(label).tolist())
    if num_classes is not None:
        if not set(values) <= set(range(num_classes)):
            raise SinGANSegInputError(f"{path}: mask values {values[:10]} are not class indices 0..{num_classes - 1}.")
        if values == [0.0]:
            raise SinGANSegInputError(f"{path}: empty mask (no foreground pixel).")
        absent = sorted(set(range(num_classes)) - {int(v) for v in values})
        if absent:  # a typo in the class count trained empty mask channels without a word
            shown = ", ".join(map(str, absent[:6])) + (", ..." if len(absent) > 6 else "")
            logger.warning("%s: class(es) %s of the %d asked for (--num-classes / num_classes) never appear in this "
                           "mask (it holds %s): %d of its mask channels are trained empty. Fine when other images "
                           "hold them; else give the number of classes the masks hold.", path, shown, num_classes,
                           ", ".join(f"{v:g}" for v in values), len(absent))
        return LabelEncoding(list(range(num_classes)), one_hot=num_classes > 2), label
    if len(values) == 1:
        what = "empty mask (no foreground pixel)" if values[0] == 0 else "mask has no background (one value only)"
        raise SinGANSegInputError(f"{path}: {what}.")
    if len(values) > 2:
        raise SinGANSegInputError(
            f"{path}: mask is not binary ({len(values)} distinct values); give a binary mask, a one-hot mask, "
            "or the number of classes of a class-index mask."
        )
    return LabelEncoding(values, one_hot=False), label


def prepare_training_pair(
    image: torch.Tensor,
    label: torch.Tensor,
    image_name: str = "image",
    label_name: str = "label",
    num_classes: int | None = None,
    percentiles: Sequence[float] | None = None,
    intensity: IntensityMapping | None = None,
) -> TrainingPair:
    """Check an image ``(C, *spatial)`` and a label ``(1 or K, *spatial)`` and stack them into a training tensor.

    Raises:
        SinGANSegInputError: NaN/inf values, a size mismatch, an empty or non-binary mask (naming the source).
    """
    image = torch.as_tensor(image).float()
    label = torch.as_tensor(label).float()
    _check_finite(image, image_name)
    _check_finite(label, label_name)
    if tuple(image.shape[1:]) != tuple(label.shape[1:]):
        raise SinGANSegInputError(
            f"{label_name}: size {tuple(label.shape[1:])} does not match the image {image_name} "
            f"size {tuple(image.shape[1:])}."
        )
    labels, label = _label_encoding(label, label_name, num_classes)
    flat = image.reshape(image.shape[0], -1)
    constant = [c for c in range(image.shape[0]) if bool((flat[c] == flat[c, 0]).all())]
    if constant:
        alpha = " (an RGBA file's alpha channel? save the image as RGB or grey)" if constant == [3] else ""
        raise SinGANSegInputError(f"{image_name}: image channel {constant[0]} holds one value only "
                                  f"({float(flat[constant[0], 0]):g}); there is nothing to learn from it{alpha}.")
    if intensity is not None and percentiles is not None:
        raise SinGANSegInputError("a fixed intensity window (--window) and percentiles (--percentiles) exclude each "
                                  "other; give one.")
    intensity = intensity or IntensityMapping.fit(image, percentiles)
    normalized = intensity.normalize(image)
    _check_not_clipped_flat(normalized, image, intensity, image_name, percentiles)
    real = torch.cat([normalized, labels.encode(label)], dim=0)
    meta = dict(getattr(image, "meta", {}) or {})
    return TrainingPair(real.as_subclass(torch.Tensor), intensity, labels, meta)


def _check_not_clipped_flat(normalized: torch.Tensor, image: torch.Tensor, intensity: IntensityMapping,
                            image_name: str, percentiles: Sequence[float] | None) -> None:
    """Refuse a window (or percentiles) that maps every pixel of a channel to one value: the image was not constant,
    but what the networks would see is, and training on it learns noise while exiting 0."""
    flat = normalized.reshape(normalized.shape[0], -1)
    for c in range(flat.shape[0]):
        if bool((flat[c] == flat[c, 0]).all()):
            window = f"({intensity.lower[c]:g}, {intensity.upper[c]:g})"
            what = f"window {window}" if percentiles is None else f"percentiles {tuple(percentiles)} (window {window})"
            raise SinGANSegInputError(
                f"{image_name}: the intensity {what} clips every pixel of image channel {c} (range "
                f"{float(image[c].min()):g}..{float(image[c].max()):g}) to one value; choose a window that overlaps "
                "the image's range."
            )


def _slice_affine(affine: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Affine of the 2D slice ``index`` along spatial ``axis``: the kept axes' columns, origin moved to the slice."""
    kept = [a for a in range(3) if a != axis]
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2] = affine[:3, kept[0]], affine[:3, kept[1]], affine[:3, axis]
    out[:3, 3] = affine[:3, 3] + affine[:3, axis] * index
    return out


def read_stacked_images(images: Sequence[str | os.PathLike]) -> MetaTensor:
    """Read image file(s) and stack them as channels ``(C, *spatial)``, with the first file's metadata.

    Several files (e.g. MRI contrasts) must be co-registered: same spatial shape and affine, else an error names the
    file that differs.
    """
    if not images:
        raise SinGANSegInputError("no image given.")
    parts = [read_image(p) for p in images]
    for path, part in zip(images[1:], parts[1:]):
        if tuple(part.shape[1:]) != tuple(parts[0].shape[1:]):
            raise SinGANSegInputError(
                f"{path}: size {tuple(part.shape[1:])} differs from {images[0]} {tuple(parts[0].shape[1:])}; "
                "stacked images must be co-registered."
            )
        if not np.allclose(np.asarray(part.affine), np.asarray(parts[0].affine), atol=1e-3):
            raise SinGANSegInputError(
                f"{path}: affine differs from {images[0]}'s (other orientation, spacing or origin); "
                "stacked images must be co-registered."
            )
    if len(parts) == 1:
        return parts[0]
    return MetaTensor(torch.cat([p.as_tensor() for p in parts], dim=0), meta=dict(parts[0].meta))


def load_training_pair(
    images: Sequence[str | os.PathLike],
    label: str | os.PathLike,
    num_classes: int | None = None,
    percentiles: Sequence[float] | None = None,
    window: Sequence[float] | None = None,
    slice_axis: int | None = None,
    slice_index: int | str = "largest",
) -> TrainingPair:
    """Read image file(s) and a label file; several images are stacked as channels (they must be co-registered).

    Args:
        images: image files or DICOM series folders; several are stacked as channels.
        label: the mask file.
        num_classes: the mask holds class indices ``0..K-1``.
        percentiles: map these intensity percentiles (e.g. ``(0.5, 99.5)`` for MR) to the range ends.
        window: a fixed ``(low, high)`` intensity window (e.g. ``(-160, 240)`` HU for abdominal CT); outputs come
            back in the same units.
        slice_axis: train on one 2D slice of a volume along this spatial axis (0, 1 or 2).
        slice_index: the slice, or ``"largest"`` for the one with the largest mask area.
    """
    stacked = read_stacked_images(images)
    meta = dict(stacked.meta)
    affine = np.asarray(stacked.affine, dtype=np.float64)
    stacked = stacked.as_tensor()
    label_m = read_image(label)
    _check_same_space(label, label_m, images[0], affine, tuple(stacked.shape[1:]))
    label_t = label_m.as_tensor()
    if slice_axis is not None:
        if stacked.ndim != 4 or slice_axis not in (0, 1, 2):
            raise SinGANSegInputError(f"{images[0]}: slicing needs a 3D volume and an axis 0-2.")
        if slice_index == "largest":
            if tuple(label_t.shape[1:]) != tuple(stacked.shape[1:]):
                raise SinGANSegInputError(f"{label}: size {tuple(label_t.shape[1:])} does not match the image.")
            areas = (label_t[0] > 0).sum(dim=[a for a in range(3) if a != slice_axis])
            slice_index = int(areas.argmax())
        slice_index = int(slice_index)
        if not 0 <= slice_index < stacked.shape[slice_axis + 1]:
            raise SinGANSegInputError(f"{images[0]}: slice {slice_index} is outside axis {slice_axis}.")
        stacked = stacked.select(slice_axis + 1, slice_index)
        label_t = label_t.select(slice_axis + 1, slice_index) if label_t.ndim == 4 else label_t
        affine = _slice_affine(affine, slice_axis, slice_index)
    intensity = None
    check_percentiles(percentiles)
    if window is not None:
        low, high = float(window[0]), float(window[1])
        if not high > low:
            raise SinGANSegInputError(f"window ({low}, {high}): the high end must exceed the low end.")
        intensity = IntensityMapping([low] * stacked.shape[0], [high] * stacked.shape[0])
    if stacked.ndim - 1 not in (2, 3):
        raise SinGANSegInputError(
            f"{images[0]}: a {stacked.ndim - 1}D image of shape {tuple(stacked.shape[1:])} (after dropping axes of "
            "size 1); 2D images and 3D volumes are supported."
        )
    pair = prepare_training_pair(stacked, label_t, str(images[0]), str(label), num_classes, percentiles, intensity)
    meta["affine"] = affine
    meta["contrasts"] = [model_name(p) for p in images]
    pair.meta = meta
    return pair


_GEOMETRY_SUFFIXES = (".nii", ".nii.gz", ".mha", ".nrrd")  # formats whose affine places the voxels in the scanner


def _has_geometry(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(_GEOMETRY_SUFFIXES)


def _check_same_space(label: str | os.PathLike, label_image: MetaTensor, image: str | os.PathLike,
                      affine: np.ndarray, shape: tuple[int, ...]) -> None:
    """A mask of the image's shape but another affine (origin, spacing, orientation) covers other anatomy. Checked
    where both files carry a geometry (NIfTI, MHA, NRRD); a PNG has none, and DICOM affines depend on the reader."""
    if not (_has_geometry(label) and _has_geometry(image)) or tuple(label_image.shape[1:]) != shape:
        return
    if not np.allclose(np.asarray(label_image.affine, dtype=np.float64), affine, atol=1e-3):
        raise SinGANSegInputError(
            f"{label}: affine differs from {image}'s (other origin, spacing or orientation); the mask must be in "
            "the image's space (resample it onto the image, e.g. with MONAI's ResampleToMatch)."
        )


def read_mask(path: str | os.PathLike, like: Sequence[int] | None = None, like_name: str = "the image",
              binary: bool = True, nonempty: bool = True) -> torch.Tensor:
    """Read a mask that selects pixels (a region, a lesion): finite, of the spatial size ``like`` when given,
    non-empty unless ``nonempty`` is false, and, when ``binary``, one channel ``(1, *spatial)`` holding 0 and one
    other value (``binary=False`` takes class indices or one-hot channels as they are).

    Raises:
        SinGANSegInputError: naming ``path`` and what is wrong.
    """
    mask = read_image(path).as_tensor().float()
    if binary:
        mask = _grey(mask)
    if binary and mask.shape[0] != 1:
        raise SinGANSegInputError(f"{path}: a {mask.shape[0]}-channel mask; give a one-channel mask.")
    _check_finite(mask, str(path))
    if like is not None and tuple(mask.shape[1:]) != tuple(like):
        raise SinGANSegInputError(f"{path}: size {tuple(mask.shape[1:])} does not match {like_name} {tuple(like)}.")
    values = torch.unique(mask).tolist()
    if binary and (len(values) > 2 or (len(values) == 2 and values[0] != 0)):
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise SinGANSegInputError(f"{path}: mask is not binary (values {shown}); give 0 for background and one value "
                                  "inside.")
    if nonempty and values == [0.0]:
        raise SinGANSegInputError(f"{path}: empty mask (no foreground pixel).")
    return mask


def _output_dtype(array: np.ndarray, fmt: str) -> np.dtype:
    if fmt == "png":
        return np.dtype(np.uint8) if array.min() >= 0 and array.max() <= 255 else np.dtype(np.uint16)
    return np.dtype(np.float32)


def write_image(
    array: torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    meta: dict[str, Any] | None = None,
    is_label: bool = False,
) -> None:
    """Write ``array`` ``(C, *spatial)`` to ``path`` (``.png`` or ``.nii.gz``), atomically.

    NIfTI output (nibabel) carries the affine from ``meta`` (the source image's); PNG output (MONAI's PILWriter) is
    8-bit, 16-bit when values exceed 255. Labels are written as integers.
    """
    atomic_write(path, image_writer(array, path, meta, is_label))


def image_writer(
    array: torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    meta: dict[str, Any] | None = None,
    is_label: bool = False,
) -> Callable[[str], None]:
    """The function that writes ``array`` as :func:`write_image` does, to the file name it is given (for
    :func:`~monai_singanseg.files.atomic_write_together`, which writes an image and its label as one)."""
    data = np.asarray(torch.as_tensor(array).detach().cpu().numpy())
    if Path(path).suffix.lower() == ".png":
        data = np.clip(np.rint(data), 0, 65535)
        writer = PILWriter(output_dtype=_output_dtype(data, "png"), scale=None)
        writer.set_data_array(data, channel_dim=0, squeeze_end_dims=True)
        writer.set_metadata({}, resample=False)
        return lambda tmp: writer.write(tmp)
    # nibabel directly: MONAI's NibabelWriter pads 2D arrays to 4D and cannot squeeze them without resampling
    import nibabel as nib

    affine = np.asarray((meta or {}).get("affine", np.eye(4)), dtype=np.float64)
    if data.shape[0] == 1:
        data = data[0]
    else:
        data = np.moveaxis(data, 0, -1)
        if data.ndim == 3:  # 2D with channels: NIfTI keeps the channel axis fourth
            data = data[:, :, None, :]
    dtype = np.uint8 if is_label and data.min() >= 0 and data.max() <= 255 else np.float32
    image = nib.Nifti1Image(data.astype(dtype), affine)
    return lambda tmp: nib.save(image, tmp)
