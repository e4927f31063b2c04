"""DICOM inputs: a real CT slice, a DICOM series written from a real MRI volume, and unreadable DICOM.

Real data used:
    - ``CT_small.dcm`` and ``MR_truncated.dcm`` from the test files inside the pydicom wheel
      (``pydicom/data/test_files``). Its README says ``CT_small.dcm`` is a CT slice downsized to 128x128 from NEMA's
      WG04 ``CT1_UNC`` sample (ftp://medical.nema.org/MEDICAL/Dicom/DataSets/WG04/), ``MR_truncated.dcm`` a cut copy
      of the 64x64 MR sample from the same set, patient names replaced, and that "there is no restriction on using
      any of these files in this manner" (pydicom is MIT licensed).
    - The MNI152 2009a T1 template inside the nilearn wheel, written here as a DICOM series with pydicom.

MONAI's ``LoadImage`` picks ``ITKReader`` for ``.dcm`` files and for folders (ITK claims every suffix and is tried
before pydicom); the series tests also read the folder with ``PydicomReader`` and expect the same voxels and affine.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from conftest import T1, mni_crop
from monai.transforms import LoadImage
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from monai_singanseg import SinGANSeg, SinGANSegInputError, load_training_pair, read_image
from monai_singanseg.cli import main
from monai_singanseg.generation import output_affine
from monai_singanseg.io import write_image

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))
MR_TRUNCATED = Path(get_testdata_file("MR_truncated.dcm"))
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # DICOM patient space (LPS) <-> the RAS world MONAI and NIfTI use
# the faithful schedule: its 3 + 3 steps per iteration learn enough in 2 iterations for the unit checks below
TINY = ["--min-size", "12", "--iters", "2", "--base-channels", "8", "--schedule", "faithful", "--quiet"]


def dicom_affine_ras(dataset: pydicom.Dataset) -> np.ndarray:
    """The RAS affine of a single-slice DICOM from its tags, voxel (column, row, 0) -> world, for comparison."""
    row_cosine, column_cosine = np.asarray(dataset.ImageOrientationPatient[:3]), dataset.ImageOrientationPatient[3:]
    spacing_between_rows, spacing_between_columns = map(float, dataset.PixelSpacing)
    affine = np.eye(4)
    affine[:3, 0] = row_cosine * spacing_between_columns  # moving along a row = the next column
    affine[:3, 1] = np.asarray(column_cosine) * spacing_between_rows
    affine[:3, 2] = np.cross(row_cosine, column_cosine) * float(dataset.SliceThickness)
    affine[:3, 3] = np.asarray(dataset.ImagePositionPatient, dtype=float)
    return LPS @ affine


def write_dicom_series(volume: np.ndarray, affine: np.ndarray, folder: Path, slice_axis: int = 2,
                       rows_flipped: bool = False, slope: float = 0.5, intercept: float = -10.0) -> Path:
    """Write ``volume`` (a RAS NIfTI-style array with ``affine``) as an MR DICOM series, one file per slice.

    Slices are cut along ``slice_axis``; in each, columns follow the first remaining voxel axis and rows the second
    (reversed when ``rows_flipped``, as in sagittal images whose rows run head to feet). Pixels are stored as int16
    through ``RescaleSlope``/``RescaleIntercept``. Files are written in shuffled order and named in reverse slice
    order, so a reader must sort by ``ImagePositionPatient``, not by name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    col_axis, row_axis = [a for a in range(3) if a != slice_axis]
    col_step, row_step = LPS[:3, :3] @ affine[:3, col_axis], LPS[:3, :3] @ affine[:3, row_axis]
    if rows_flipped:
        row_step = -row_step
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    count = volume.shape[slice_axis]
    order = list(range(count))
    random.Random(0).shuffle(order)
    for k in order:
        plane = np.take(volume, k, axis=slice_axis).T  # (rows, columns)
        if rows_flipped:
            plane = plane[::-1]
        corner = np.zeros(3)
        corner[slice_axis] = k
        corner[row_axis] = volume.shape[row_axis] - 1 if rows_flipped else 0
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientName, ds.PatientID, ds.InstanceNumber = "MR", "MNI152^Template", "MNI152", k + 1
        ds.ImageOrientationPatient = [*(col_step / np.linalg.norm(col_step)), *(row_step / np.linalg.norm(row_step))]
        ds.ImagePositionPatient = list(LPS[:3, :3] @ (affine[:3, :3] @ corner + affine[:3, 3]))
        ds.PixelSpacing = [float(np.linalg.norm(row_step)), float(np.linalg.norm(col_step))]
        ds.SliceThickness = float(np.linalg.norm(affine[:3, slice_axis]))
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.rint((plane - intercept) / slope).astype(np.int16).tobytes()
        ds.save_as(folder / f"IM{count - k:04d}.dcm", enforce_file_format=True)
    return folder


def assert_same_world_grid(loaded: torch.Tensor, volume: np.ndarray, affine: np.ndarray) -> None:
    """Every voxel of ``loaded`` (a MetaTensor ``(1, *spatial)``) sits at a source voxel's world point, with its value.

    ``inv(affine) @ loaded.affine`` must map voxel indices to whole source voxel indices (an axis permutation with
    flips), and the values must agree there within the rescale rounding (slope 0.5).
    """
    mapping = np.linalg.inv(affine) @ np.asarray(loaded.affine, dtype=np.float64)
    assert np.allclose(mapping, np.rint(mapping), atol=1e-4), mapping
    index = np.indices(loaded.shape[1:]).reshape(3, -1)
    source_index = np.rint(mapping[:3, :3] @ index + mapping[:3, 3:]).astype(int)
    assert source_index.min() >= 0 and all(source_index[a].max() < volume.shape[a] for a in range(3))
    assert np.allclose(loaded[0].numpy().reshape(-1), volume[tuple(source_index)], atol=0.25)


# ---- one real CT slice --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ct_bone_mask(tmp_path_factory):
    """A bone mask of ``CT_small.dcm`` (> 200 HU: vertebra, contrast-filled aorta) as NIfTI on the slice's grid."""
    ct = read_image(CT_SMALL)
    mask = (ct > 200).float()
    path = tmp_path_factory.mktemp("ct") / "bone.nii.gz"
    write_image(mask, path, dict(ct.meta), is_label=True)
    return path


def test_real_ct_slice_loads_in_hounsfield_units_with_its_affine(ct_bone_mask):
    dataset = pydicom.dcmread(CT_SMALL)
    pair = load_training_pair([CT_SMALL], ct_bone_mask, window=(-300, 700))
    assert tuple(pair.real.shape) == (2, 128, 128) and pair.spatial_dims == 2
    hu = dataset.pixel_array.T * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)  # (column, row)
    restored = pair.intensity.denormalize(pair.real[:1])[0].numpy()
    inside = (hu > -300) & (hu < 700)
    assert np.allclose(restored[inside], hu[inside], atol=1e-2) and hu.min() < -800  # air below the window
    assert np.allclose(pair.meta["affine"], dicom_affine_ras(dataset), atol=1e-4)


def test_cli_trains_on_a_real_ct_slice_and_samples_nifti_in_hu_on_its_grid(ct_bone_mask, tmp_path):
    model_path = tmp_path / "ct.pt"
    assert main(["train", "--image", str(CT_SMALL), "--label", str(ct_bone_mask), "--window", "-300", "700",
                 "--out", str(model_path), "--max-size", "32"] + TINY) == 0
    model = SinGANSeg.load(model_path)
    assert model.intensity.lower == [-300.0] and model.intensity.upper == [700.0]
    out = tmp_path / "samples"
    assert main(["sample", str(model_path), "--num", "2", "--out", str(out), "--format", "nii.gz"]) == 0
    image = nib.load(out / "sample_0000_image.nii.gz")
    values = image.get_fdata()
    assert image.shape == (32, 32) and -300 - 1e-3 <= values.min() and values.max() <= 700 + 1e-3
    assert values.max() - values.min() > 2  # HU, not the network's [-1, 1]
    assert set(np.unique(nib.load(out / "sample_0000_label.nii.gz").get_fdata())) <= {0.0, 1.0}
    expected = dicom_affine_ras(pydicom.dcmread(CT_SMALL))
    expected[:3, :2] *= 128 / 32  # 0.66 mm pixels of the 128x128 slice, sampled at 32x32
    assert np.allclose(image.affine, expected, atol=1e-4)
    assert np.allclose(image.header.get_zooms(), [0.661468 * 4] * 2, atol=1e-4)
    # HU below 0 do not fit a PNG: the default format is NIfTI, and PNG is refused with the reason
    assert main(["sample", str(model_path), "--num", "1", "--out", str(tmp_path / "default")]) == 0
    assert (tmp_path / "default" / "sample_0000_image.nii.gz").exists()
    assert main(["sample", str(model_path), "--num", "1", "--out", str(tmp_path / "png"), "--format", "png"]) == 2


# ---- a DICOM series written from a real MRI volume ----------------------------------------------------------------


@pytest.fixture(scope="module")
def mni_block():
    """A 20x24x16 block of the real MNI152 T1 (1 mm, RAS): deep white matter, ventricle edge and grey matter."""
    return mni_crop(T1, (slice(80, 100), slice(100, 124), slice(80, 96)))


@pytest.mark.parametrize("slice_axis, rows_flipped", [(2, False), (0, True)], ids=["axial", "sagittal-head-down"])
def test_series_folder_reads_back_the_volume_on_the_same_world_grid(mni_block, tmp_path, slice_axis, rows_flipped):
    volume, affine = mni_block
    folder = write_dicom_series(volume, affine, tmp_path / "series", slice_axis, rows_flipped)
    assert min(p.name for p in folder.iterdir()) == "IM0001.dcm"  # the last slice: names run backwards
    loaded = read_image(folder)  # MONAI's choice: ITKReader
    assert loaded.shape[0] == 1 and sorted(loaded.shape[1:]) == sorted(volume.shape)
    assert_same_world_grid(loaded, volume, affine)
    if slice_axis == 2:  # axial: the voxel grid itself comes back, as the NIfTI had it
        assert tuple(loaded.shape[1:]) == volume.shape and np.allclose(loaded.affine, affine, atol=1e-4)
    # PydicomReader may stack the slices the other way round, but must land on the same world grid
    assert_same_world_grid(LoadImage(image_only=True, ensure_channel_first=True, reader="PydicomReader")(str(folder)),
                           volume, affine)


def test_series_trains_a_3d_model_and_samples_nifti_with_the_series_affine(mni_block, tmp_path):
    volume, affine = mni_block
    folder = write_dicom_series(volume, affine, tmp_path / "series")
    series = read_image(folder)
    mask = tmp_path / "white_matter.nii.gz"
    write_image((series > 120).float(), mask, dict(series.meta), is_label=True)  # T1-bright tissue of the block
    pair = load_training_pair([folder], mask)
    assert tuple(pair.real.shape) == (2, 20, 24, 16) and np.allclose(pair.meta["affine"], affine, atol=1e-4)
    model_path = tmp_path / "series.pt"
    assert main(["train", "--image", str(folder), "--label", str(mask), "--out", str(model_path),
                 "--max-size", "16"] + TINY) == 0
    model = SinGANSeg.load(model_path)
    assert model.shapes[-1] == (13, 16, 11) and model.config.spatial_dims == 3
    out = tmp_path / "samples"
    assert main(["sample", str(model_path), "--num", "1", "--out", str(out)]) == 0
    written = nib.load(out / "sample_0000_image.nii.gz")
    assert written.shape == (13, 16, 11)
    stretched = affine.copy()
    stretched[:3, :3] *= np.array([20 / 13, 24 / 16, 16 / 11])  # same origin and axes, bigger voxels
    assert np.allclose(written.affine, stretched, atol=1e-4)
    assert np.allclose(written.affine, output_affine(model, (13, 16, 11)), atol=1e-6)
    assert 0 - 1e-3 <= written.get_fdata().min() and written.get_fdata().max() <= 255 + 1e-3


# ---- unreadable DICOM ---------------------------------------------------------------------------------------------


def _truncated_copy(tmp_path: Path, keep: int = -5000) -> Path:
    path = tmp_path / "CT_cut.dcm"
    path.write_bytes(CT_SMALL.read_bytes()[:keep])  # by default the pixel data is cut short
    return path


def _not_dicom(tmp_path: Path) -> Path:
    path = tmp_path / "notes.dcm"
    path.write_text("exported by mistake: a text file with a .dcm name\n")
    return path


@pytest.mark.parametrize("make, problem", [
    (lambda tmp: shutil.copy(MR_TRUNCATED, tmp / "MR_truncated.dcm"), "pixel data cannot be decoded"),
    (_truncated_copy, "pixel data cannot be decoded"),
    (lambda tmp: _truncated_copy(tmp, keep=3000), "holds no pixel data"),  # cut before the pixel data
    (_not_dicom, "not a DICOM file"),
    (lambda tmp: (tmp / "empty_series").mkdir() or tmp / "empty_series", "empty folder"),
], ids=["pydicom-truncated", "cut-copy", "cut-header", "text-named-dcm", "empty-folder"])
def test_unreadable_dicom_names_the_file_and_the_problem(tmp_path, capsys, ct_bone_mask, make, problem):
    path = Path(make(tmp_path))
    with pytest.raises(SinGANSegInputError, match=rf"{path.name}: .*{problem}"):
        read_image(path)
    out = tmp_path / "model.pt"
    assert main(["train", "--image", str(path), "--label", str(ct_bone_mask), "--out", str(out)] + TINY) == 2
    assert f"{path}: " in capsys.readouterr().err and not out.exists()


def test_series_folder_of_non_dicom_files(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    _not_dicom(folder)
    with pytest.raises(SinGANSegInputError, match=r"series: unreadable image \(no DICOM file among its 1 file"):
        read_image(folder)
