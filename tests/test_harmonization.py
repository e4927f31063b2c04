"""Harmonization and editing on real images: a nucleus of the real nuclei image pasted at another place (2D), and a
ball of real tissue from the MNI152 T1 template pasted into another block of it (3D, a simulated lesion)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, T1, WM, mni_crop, tiny_config
from monai.transforms import GaussianSmooth
from PIL import Image

from monai_singanseg import SinGANSegInputError, SinGANSegTrainer, load_training_pair, read_image
from monai_singanseg.cli import main
from monai_singanseg.harmonization import harmonize, paste_lesion


@pytest.fixture(scope="module")
def real():
    image, label = read_image(NUCLEI_IMAGE).as_tensor(), read_image(NUCLEI_LABEL).as_tensor()
    donor_mask = torch.zeros_like(label)
    donor_mask[:, 100:140, 100:140] = label[:, 100:140, 100:140]
    return image, donor_mask


def test_paste_puts_the_lesion_where_asked(real):
    image, donor_mask = real
    composite, pasted = paste_lesion(image, image, donor_mask, location=(60, 200))
    assert pasted.sum() == (donor_mask > 0).sum()
    ys, xs = torch.nonzero(pasted[0], as_tuple=True)
    assert abs(ys.float().mean() - 60) < 20 and abs(xs.float().mean() - 200) < 20
    assert torch.equal(composite[pasted.bool()], composite[pasted.bool()])
    assert torch.equal(composite[:, :30, :30], image[:, :30, :30])


def test_region_and_errors(real):
    image, donor_mask = real
    region = torch.zeros_like(donor_mask)
    region[:, 200:210, 30:40] = 1
    _, pasted = paste_lesion(image, image, donor_mask, region=region, rng=np.random.RandomState(0))
    ys, xs = torch.nonzero(pasted[0], as_tuple=True)
    assert 170 < ys.float().mean() < 240 and 0 < xs.float().mean() < 70
    with pytest.raises(SinGANSegInputError, match="empty mask"):
        paste_lesion(image, image, torch.zeros_like(donor_mask))
    with pytest.raises(SinGANSegInputError, match="does not fit"):
        paste_lesion(image, image, donor_mask, location=(2, 2))


@pytest.mark.parametrize("mode", ["harmonize", "edit"])
def test_changes_near_the_lesion_and_not_far_away(nuclei_model, real, mode):
    model, _ = nuclei_model
    image, donor_mask = real
    out, label, composite = harmonize(model, image, image, donor_mask, at_scale=1, location=(60, 200), mode=mode)
    assert out.shape == image.shape and set(label.unique().tolist()) == {0.0, 255.0}
    near = (out - composite)[:, 45:75, 185:215].abs().mean()
    assert near > 0.5
    far = (out - image)[:, 150:, :100].abs().max()
    assert far < 1e-3


def test_edit_blends_wider_than_harmonize(nuclei_model, real):
    model, _ = nuclei_model
    image, donor_mask = real
    changed = {}
    for mode in ("harmonize", "edit"):
        out, _, _ = harmonize(model, image, image, donor_mask, at_scale=1, location=(60, 200), mode=mode)
        changed[mode] = int(((out - image).abs() > 0.5).sum())
    assert changed["edit"] > changed["harmonize"]


def test_cli_writes_the_three_files(nuclei_model, tmp_path, real):
    _, path = nuclei_model
    _, donor_mask = real
    donor_label = tmp_path / "donor_label.png"
    Image.fromarray(donor_mask[0].numpy().T.astype(np.uint8)).save(donor_label)
    out = tmp_path / "h"
    args = ["harmonize", str(path), "--image", str(NUCLEI_IMAGE), "--donor-image", str(NUCLEI_IMAGE),
            "--donor-label", str(donor_label), "--at-scale", "1", "--out", str(out), "--location", "60", "200"]
    assert main(args) == 0
    label = np.array(Image.open(out / "harmonized_label.png"))
    assert label.shape == (256, 256) and set(np.unique(label)) == {0, 255}
    assert (out / "harmonized_image.png").exists() and (out / "composite_image.png").exists()
    assert main(args) == 2  # nothing overwritten without --overwrite
    edited = tmp_path / "e"  # 'edit' names its results after itself (it wrote harmonized_* files)
    assert main(["edit", *args[1:args.index("--out")], "--out", str(edited), "--location", "60", "200"]) == 0
    assert sorted(p.name for p in edited.iterdir()) == ["composite_image.png", "edited_image.png", "edited_label.png"]


@pytest.mark.parametrize("target, warning", [
    (lambda image: image[:200, :200], "size (200, 200), the model"),  # a crop: not the model's training image
    (lambda image: image.astype(np.uint16) + 1000, "values 1000..1128 in channel 0"),  # another intensity range
], ids=["other size", "other intensity range"])
def test_cli_warns_of_a_target_the_model_was_not_trained_on(tmp_path, real, caplog, target, warning):
    # the same check as 'report': the target of harmonize is the model's training image
    pair = load_training_pair([NUCLEI_IMAGE], NUCLEI_LABEL)
    path = tmp_path / "nuclei.pt"  # trained as 'singanseg train' does, keeping the source's shape
    SinGANSegTrainer(tiny_config(iters=2), progress=False).fit(pair.real, pair.intensity, pair.labels, path,
                                                               source=pair.source)
    donor_label = tmp_path / "donor_label.png"
    Image.fromarray(real[1][0].numpy().T.astype(np.uint8)).save(donor_label)
    other = tmp_path / "other.png"
    Image.fromarray(target(np.array(Image.open(NUCLEI_IMAGE)))).save(other)
    args = ["harmonize", str(path), "--image", str(other), "--donor-image", str(NUCLEI_IMAGE), "--donor-label",
            str(donor_label), "--at-scale", "1", "--out", str(tmp_path / "h"), "--location", "60", "100"]
    with caplog.at_level("WARNING", logger="monai_singanseg"):
        assert main(args) == 0
    warned = [r.getMessage() for r in caplog.records if "is this its training image?" in r.getMessage()]
    assert len(warned) == 1 and "other.png" in warned[0] and warning in warned[0], warned


def test_cli_refuses_an_unfinished_model_as_sample_does(tmp_path, real, capsys):
    pair = load_training_pair([NUCLEI_IMAGE], NUCLEI_LABEL)
    path = tmp_path / "part.pt"
    SinGANSegTrainer(tiny_config(), progress=False, stop_after=1).fit(pair.real, pair.intensity, pair.labels,
                                                                             path)
    donor_label = tmp_path / "donor_label.png"
    Image.fromarray(real[1][0].numpy().T.astype(np.uint8)).save(donor_label)
    args = ["harmonize", str(path), "--image", str(NUCLEI_IMAGE), "--donor-image", str(NUCLEI_IMAGE),
            "--donor-label", str(donor_label), "--at-scale", "1", "--out", str(tmp_path / "h")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"singanseg: error: {path}: training is not finished (1/3 scales); resume it first (singanseg " \
                  "train ... --resume).", err
    assert not (tmp_path / "h").exists()


def _bank_and_sample(nuclei_model, real, folder):
    """The nuclei model in a bank under the image's name, and the real image as a sample with a centre region."""
    import shutil

    from monai.transforms import LoadImaged

    shutil.copy(nuclei_model[1], folder / "nuclei_image.pt")
    region = torch.zeros_like(real[1])
    region[:, 60:200, 60:200] = 1
    data = LoadImaged("image", ensure_channel_first=True, image_only=True)({"image": str(NUCLEI_IMAGE)})
    data["brain"] = region
    return data


def test_harmonization_dictionary_transform(nuclei_model, real, tmp_path):
    from monai_singanseg.transforms import SinGANSegHarmonized

    data = _bank_and_sample(nuclei_model, real, tmp_path)
    image, donor_mask = real
    transform = SinGANSegHarmonized("image", "lesion", tmp_path, donors=[(image, donor_mask)], prob=1.0,
                                    at_scale=(1, 2), region_key="brain")
    first = transform.set_random_state(3)(data)
    again = transform.set_random_state(3)(data)
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["lesion"], again["lesion"])
    assert first["image"].shape == data["image"].shape and torch.equal(first["image"].affine, data["image"].affine)
    assert first["lesion"].sum() / 255 == (donor_mask > 0).sum()
    ys, xs = torch.nonzero(first["lesion"][0], as_tuple=True)
    assert 40 < ys.float().mean() < 220 and 40 < xs.float().mean() < 220


def test_harmonization_array_transform_matches_the_dictionary_one(nuclei_model, real, tmp_path):
    """``SinGANSegHarmonize`` does the work; ``SinGANSegHarmonized`` gives the same result for the same seed."""
    from monai.data import MetaTensor

    from monai_singanseg import SinGANSegHarmonize, SinGANSegHarmonized

    data = _bank_and_sample(nuclei_model, real, tmp_path)
    image, donor_mask = real
    region = data["brain"]
    options = {"donors": [(image, donor_mask)], "at_scale": (1, 2)}
    dictionary = SinGANSegHarmonized("image", "lesion", tmp_path, prob=1.0, region_key="brain", **options)
    array = SinGANSegHarmonize(tmp_path, prob=1.0, **options)
    expected = dictionary.set_random_state(3)(data)
    out, lesion = array.set_random_state(3)(data["image"], region=region, name="nuclei_image")
    assert torch.equal(out, expected["image"]) and torch.equal(lesion, expected["lesion"])
    assert isinstance(out, MetaTensor) and out.dtype == data["image"].dtype and out.shape == data["image"].shape
    assert torch.equal(out.affine, data["image"].affine) and torch.equal(lesion.affine, data["image"].affine)
    assert out.meta["filename_or_obj"] == data["image"].meta["filename_or_obj"]

    # numpy in, numpy out (dtype kept); the label's type and dtype go to the lesion; a bank of one needs no name
    label = np.zeros((1, 256, 256), np.uint8)
    out_np, lesion_np = array.set_random_state(3)(data["image"].numpy(), label, region=region.numpy())
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32 and lesion_np.dtype == np.uint8
    assert np.array_equal(out_np, out.numpy()) and np.array_equal(lesion_np, lesion.numpy().astype(np.uint8))

    # with prob < 1 both decide alike: the dictionary's draw and the array's first draw come from the same seed
    dictionary.prob = array.prob = 0.5
    fired = set()
    for seed in range(4):
        changed = dictionary.set_random_state(seed)(data)
        image_out, lesion_out = array.set_random_state(seed)(data["image"], region=region, name="nuclei_image")
        assert ("lesion" in changed) == (lesion_out is not None)
        assert torch.equal(image_out, changed["image"])
        fired.add(lesion_out is not None)
    assert fired == {True, False}
    array.prob = 1.0
    # one model serves any name, as SinGANSegAugment's does: matching by name is for banks of several
    other, other_lesion = array.set_random_state(3)(data["image"], region=region, name="other")
    assert torch.equal(other, out) and torch.equal(other_lesion, lesion)
    import shutil

    shutil.copy(tmp_path / "nuclei_image.pt", tmp_path / "second_image.pt")
    with pytest.raises(SinGANSegInputError, match="no SinGAN-Seg model for sample 'other'"):
        SinGANSegHarmonize(tmp_path, prob=1.0, **options)(data["image"], name="other")


def test_injector_and_harmonize_share_one_injection(nuclei_model, real):
    """``harmonize`` and ``SinGANSegInjector`` run the same ``inject``; a partly trained model's coarser output is
    resampled smoothly to the input's size (no blocks of repeated pixels, as nearest neighbour would give)."""
    import copy

    from monai_singanseg.harmonization import blend_weights
    from monai_singanseg.networks import SinGANSegInjector
    from monai_singanseg.networks.wrappers import inject

    model, _ = nuclei_model
    image, donor_mask = real
    out, label, composite = harmonize(model, image, image, donor_mask, at_scale=1, location=(60, 200), seed=5)
    x = torch.cat([model.intensity.normalize(composite), model.labels.encode((label > 0) * model.labels.values[-1])])
    injected = inject(model, x[None], 1, seed=5)
    assert torch.equal(injected, SinGANSegInjector(model, start_scale=1, seed=5)(x[None]))
    weights = blend_weights(label, 2)
    redrawn = model.intensity.denormalize(injected[0, : model.config.image_channels])
    assert torch.allclose(out, weights * redrawn + (1 - weights) * image, atol=1e-3)

    partial = copy.deepcopy(model)
    partial.generators = partial.generators[:-1]  # training stopped before the finest scale
    coarse = inject(partial, x[None], 1, seed=5)
    ratio = [s / t for s, t in zip(x.shape[1:], model.shapes[-1])]
    raw = partial.generate(1, 1, scale_ratio=ratio, initial=x[None], generator=torch.Generator().manual_seed(5))
    assert raw.shape[2:] != x.shape[1:] and coarse.shape == x[None].shape and coarse.abs().max() <= 1.0
    nearest = torch.nn.functional.interpolate(raw, size=x.shape[1:])

    def repeats(t: torch.Tensor) -> float:
        """Fraction of horizontally adjacent image pixels that are equal (away from the tanh's saturated -1 and 1)."""
        left, right = t[:, 0, :, :-1], t[:, 0, :, 1:]
        unsaturated = (left.abs() < 0.99) & (right.abs() < 0.99)
        return float((left == right)[unsaturated].float().mean())

    assert repeats(coarse) < 0.01 and repeats(nearest) > 0.1


def test_blend_weights_dilate_like_a_max_filter(real):
    """MONAI's ``dilate`` behind the blend gives the (2d+1)-box max filter it replaced, in 2D and 3D."""
    from monai_singanseg.harmonization import blend_weights

    _, donor_mask = real
    mask2d = (donor_mask > 0).float()
    ball = (torch.stack(torch.meshgrid(*[torch.arange(s) for s in (24, 24, 20)], indexing="ij")) - 7.0).norm(dim=0)
    cases = ((mask2d, torch.nn.functional.max_pool2d), ((ball <= 3).float()[None], torch.nn.functional.max_pool3d))
    for mask, pool in cases:
        for dilation in (2, 12):
            dilated = pool(mask[None], 2 * dilation + 1, stride=1, padding=dilation)[0]
            reference = GaussianSmooth(sigma=1.5)(dilated).clamp(0.0, 1.0)
            assert torch.allclose(blend_weights(mask, dilation), reference.as_subclass(torch.Tensor), atol=1e-6)


# ---- 3D: a simulated lesion in a real MRI volume ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mni_3d(tmp_path_factory):
    """A tiny 3D model of a 24x24x20 block of the real MNI152 T1 (+ white-matter mask), and a simulated lesion.

    The lesion is not a real tumour: it is a ball of radius 3 voxels of real tissue (lateral ventricle, caudate and
    white matter) cut from another place of the same template, written as a donor image + mask.
    """
    folder = tmp_path_factory.mktemp("mni_3d")
    box = (slice(86, 110), slice(120, 144), slice(92, 112))
    target, affine = mni_crop(T1, box)
    white_matter = (mni_crop(WM, box)[0] > 128).astype(np.uint8)
    donor, _ = mni_crop(T1, (slice(100, 124), slice(130, 154), slice(80, 100)))
    ball = (np.indices(donor.shape) - np.array([6, 6, 8])[:, None, None, None]) ** 2
    donor_mask = (ball.sum(0) <= 9).astype(np.uint8)
    for name, array in (("t1", target), ("wm", white_matter), ("donor", donor), ("donor_mask", donor_mask)):
        nib.save(nib.Nifti1Image(array, affine), folder / f"{name}.nii.gz")
    pair = load_training_pair([folder / "t1.nii.gz"], folder / "wm.nii.gz")
    config = tiny_config(spatial_dims=3)
    config.pyramid.min_size, config.pyramid.max_size = 12, 16
    model = SinGANSegTrainer(config.validate(), progress=False).fit(pair.real, pair.intensity, pair.labels,
                                                                    folder / "t1.pt", source=pair.source)
    return model, folder, affine


def test_3d_harmonize_changes_the_lesion_and_keeps_far_voxels(mni_3d):
    model, folder, _ = mni_3d
    target, donor, donor_mask = (read_image(folder / f"{n}.nii.gz").as_tensor() for n in ("t1", "donor", "donor_mask"))
    assert model.config.spatial_dims == 3 and model.num_scales >= 2
    out, label, composite = harmonize(model, target, donor, donor_mask, at_scale=1, location=(7, 7, 7))
    assert out.shape == composite.shape == target.shape == (1, 24, 24, 20) and label.shape == (1, 24, 24, 20)
    lesion = label[0] > 0
    assert int(lesion.sum()) == int((donor_mask > 0).sum()) == 123  # a ball of radius 3
    assert torch.equal(composite[0][lesion], donor[0][donor_mask[0] > 0])  # the paste copies the donor's voxels
    assert (out - composite)[0][lesion].abs().mean() > 1.0  # redrawn by the model (T1 units 0-255)
    distance = (torch.stack(torch.meshgrid(*[torch.arange(s) for s in (24, 24, 20)], indexing="ij")) - 7).float()
    far = distance.norm(dim=0) > 3 + 10  # beyond the lesion's 2-voxel dilation and the blur
    assert far.sum() > 1000 and (out - target)[0][far].abs().max() < 1e-3


def test_3d_edit_reworks_a_wider_region_than_harmonize(mni_3d):
    model, folder, _ = mni_3d
    target, donor, donor_mask = (read_image(folder / f"{n}.nii.gz").as_tensor() for n in ("t1", "donor", "donor_mask"))
    changed = {}
    for mode in ("harmonize", "edit"):
        out, _, _ = harmonize(model, target, donor, donor_mask, at_scale=1, location=(12, 12, 10), mode=mode)
        changed[mode] = int(((out - target).abs() > 0.5).sum())
    assert changed["edit"] > 2 * changed["harmonize"]


def test_3d_array_and_dictionary_transforms_agree_and_keep_the_affine(mni_3d):
    """On the real MNI152 block (NIfTI in, affine kept): a lesion inside the white matter, array = dictionary."""
    from monai.transforms import LoadImaged

    from monai_singanseg import SinGANSegHarmonize, SinGANSegHarmonized

    _, folder, affine = mni_3d
    donor, donor_mask = (read_image(folder / f"{n}.nii.gz").as_tensor() for n in ("donor", "donor_mask"))
    data = LoadImaged(["t1", "wm"], ensure_channel_first=True, image_only=True)(
        {"t1": str(folder / "t1.nii.gz"), "wm": str(folder / "wm.nii.gz")})
    options = {"donors": [(donor, donor_mask)], "prob": 1.0, "at_scale": 1}
    expected = SinGANSegHarmonized("t1", "lesion", folder, region_key="wm", **options).set_random_state(0)(data)
    out, lesion = SinGANSegHarmonize(folder, **options).set_random_state(0)(data["t1"], data["wm"], region=data["wm"],
                                                                           name="t1")
    assert torch.equal(out, expected["t1"]) and torch.equal(lesion, expected["lesion"])
    assert out.shape == lesion.shape == (1, 24, 24, 20) and int((lesion > 0).sum()) == 123
    assert np.allclose(out.affine.numpy(), affine) and np.allclose(lesion.affine.numpy(), affine)
    assert lesion.dtype == data["wm"].dtype and out.dtype == data["t1"].dtype
    centre = torch.nonzero(lesion[0] > 0).float().mean(0).round().long()
    assert data["wm"][(0, *centre)] > 0  # the lesion's centre lies in the white matter (region)


def test_3d_cli_harmonize_writes_nifti_with_the_target_affine(mni_3d, tmp_path):
    _, folder, affine = mni_3d
    out = tmp_path / "h3d"
    assert main(["harmonize", str(folder / "t1.pt"), "--image", str(folder / "t1.nii.gz"), "--donor-image",
                 str(folder / "donor.nii.gz"), "--donor-label", str(folder / "donor_mask.nii.gz"), "--at-scale", "1",
                 "--out", str(out), "--location", "7", "7", "7"]) == 0
    for name in ("harmonized_image", "harmonized_label", "composite_image"):
        written = nib.load(out / f"{name}.nii.gz")
        assert written.shape == (24, 24, 20) and np.allclose(written.affine, affine)
    assert set(np.unique(nib.load(out / "harmonized_label.nii.gz").get_fdata())) == {0.0, 1.0}


def test_harmonize_refuses_nan_other_dimensions_and_empty_donors_by_file(nuclei_model, tmp_path, real, capsys):
    _, path = nuclei_model
    image, donor_mask = real
    donor_label = tmp_path / "donor_label.png"
    Image.fromarray(donor_mask[0].numpy().T.astype(np.uint8)).save(donor_label)
    nan_target = tmp_path / "nan_target.nii.gz"
    with_nan = image[0].numpy().astype(np.float32).copy()
    with_nan[5, 5] = np.nan
    nib.save(nib.Nifti1Image(with_nan, np.eye(4)), nan_target)
    volume = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(np.repeat(image[0].numpy()[..., None], 12, -1).astype(np.float32), np.eye(4)), volume)
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(empty)
    base = ["harmonize", str(path), "--donor-image", str(NUCLEI_IMAGE), "--at-scale", "1", "--out",
            str(tmp_path / "h")]
    for target, label, message in ((nan_target, donor_label, "nan_target.nii.gz: holds NaN"),
                                   (volume, donor_label, "volume.nii.gz: a 3D image; the model"),
                                   (NUCLEI_IMAGE, empty, "empty.png: empty mask")):
        assert main(base + ["--image", str(target), "--donor-label", str(label)]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "h").exists()
    with pytest.raises(SinGANSegInputError, match="3D image for a 2D model"):
        harmonize(nuclei_model[0], image.unsqueeze(-1).repeat(1, 1, 1, 12), image, donor_mask, 1)
