"""SinGANSegAugment / SinGANSegAugmentd inside MONAI pipelines, on the real nuclei sample."""

from __future__ import annotations

import pickle
import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, tiny_config
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged, Resized, ScaleIntensityd, SpatialCropd

from monai_singanseg import (
    IntensityMapping,
    LabelEncoding,
    ModelBank,
    SinGANSegAugment,
    SinGANSegAugmentd,
    SinGANSegInputError,
    SinGANSegTrainer,
    model_name,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, nuclei_model):
    """A folder holding the nuclei model under the image's own name, and under two other names."""
    _, path = nuclei_model
    folder = tmp_path_factory.mktemp("bank")
    for name in ("nuclei_image", "case_b", "case_c"):
        shutil.copy(path, folder / f"{name}.pt")
    return folder


@pytest.fixture()
def sample():
    return LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True)(
        {"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)}
    )


def test_model_name_matches_images_and_checkpoints():
    assert model_name("imagesTr/case_001.nii.gz") == model_name("models/case_001.pt") == "case_001"


def test_output_keeps_shape_type_dtype_metadata_and_label_values(model_dir, sample):
    aug = SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0)
    aug.set_random_state(0)
    ops_before = len(sample["image"].applied_operations)
    out = aug(sample)
    image, label = out["image"], out["label"]
    assert isinstance(image, MetaTensor) and image.shape == sample["image"].shape == (1, 256, 256)
    assert image.dtype == sample["image"].dtype and label.dtype == sample["label"].dtype
    assert torch.equal(image.affine, sample["image"].affine)
    assert image.meta["filename_or_obj"] == sample["image"].meta["filename_or_obj"]
    assert len(image.applied_operations) == ops_before  # not recorded as an invertible spatial transform
    assert set(label.unique().tolist()) == {0.0, 255.0}
    assert 0 <= image.min() and image.max() <= 128  # the real image's range
    assert not torch.equal(image, sample["image"])


def test_numpy_in_numpy_out_and_label_scale_follows_the_pipeline(model_dir, sample):
    image = sample["image"].numpy()
    label = (sample["label"].numpy() > 0).astype(np.uint8)  # 0/1 labels, as after AsDiscrete
    out_image, out_label = SinGANSegAugment(model_dir, prob=1.0)(image, label, name="nuclei_image")
    assert isinstance(out_image, np.ndarray) and out_image.dtype == image.dtype and out_image.shape == image.shape
    assert isinstance(out_label, np.ndarray) and out_label.dtype == np.uint8
    assert set(np.unique(out_label).tolist()) == {0, 1}


def test_set_random_state_reproduces_and_prob_zero_is_identity(model_dir, sample):
    aug = SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0, start_scale=(0, 1))
    first = aug.set_random_state(5)(sample)["image"]
    again = aug.set_random_state(5)(sample)["image"]
    other = aug.set_random_state(6)(sample)["image"]
    assert torch.equal(first, again) and not torch.equal(first, other)
    keep = SinGANSegAugmentd(["image"], "label", model_dir, prob=0.0)(sample)
    assert keep["image"] is sample["image"]


def test_matching_missing_model_and_random_choice(model_dir):
    image, label = torch.rand(1, 64, 64) * 100, (torch.rand(1, 64, 64) > 0.7).float()
    matched = SinGANSegAugment(model_dir, prob=1.0)
    with pytest.raises(SinGANSegInputError, match="no SinGAN-Seg model for sample 'unknown'"):
        matched(image, label, name="unknown")
    skip = SinGANSegAugment(model_dir, prob=1.0, on_missing="skip")
    assert skip(image, label, name="unknown")[0] is image
    random_choice = SinGANSegAugment(model_dir, prob=1.0, model_choice="random").set_random_state(0)
    assert random_choice(image, label)[0].shape == image.shape


def test_channel_mismatch_names_the_checkpoint(model_dir):
    aug = SinGANSegAugment(model_dir, prob=1.0)
    with pytest.raises(SinGANSegInputError,
                       match=r"nuclei_image\.pt: model makes 1 image channel\(s\), the data has 3"):
        aug(torch.rand(3, 32, 32), torch.zeros(1, 32, 32), name="nuclei_image")


def test_the_label_listed_among_the_image_keys_is_named(model_dir):
    # MONAI's habit keys=["image", "label"] stacked the label as a second image channel: "the data has 2"
    with pytest.raises(SinGANSegInputError, match=r"label_key 'label' is also listed in keys \['image', 'label'\]: "
                                                  "keys are the image keys only"):
        SinGANSegAugmentd(keys=["image", "label"], label_key="label", models=model_dir, prob=1.0)


def test_a_chain_without_ensure_channel_first_names_it(model_dir):
    # LoadImaged alone gives (256, 256): the message said "the data has 256" image channels
    chain = Compose([LoadImaged(["image", "label"], image_only=True),
                     SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0)])
    with pytest.raises(RuntimeError) as caught:  # Compose wraps the transform's error, the cause is ours
        chain({"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)})
    cause = caught.value.__cause__
    assert isinstance(cause, SinGANSegInputError), caught.value
    assert "shape (256, 256) has no channel axis" in str(cause) and "add EnsureChannelFirstd" in str(cause)
    assert "the data has 256" not in str(cause)


@pytest.mark.parametrize("cache_size", [-1, 0, 1.5, True, "8"])
def test_a_cache_size_below_one_model_is_refused(model_dir, cache_size):
    # max(1, -1) kept one model without a word
    with pytest.raises(ValueError, match=rf"cache_size must be a whole number of at least 1 .*got {cache_size!r}"):
        SinGANSegAugmentd(["image"], "label", model_dir, cache_size=cache_size)
    assert ModelBank(model_dir, cache_size=2).cache_size == 2


def test_missing_key_is_named(model_dir, sample):
    del sample["label"]
    with pytest.raises(SinGANSegInputError, match="missing key 'label'"):
        SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0)(sample)


def test_bank_loads_lazily_keeps_a_bounded_cache_and_pickles_empty(model_dir):
    bank = ModelBank(model_dir, cache_size=2)
    assert bank.names == ["case_b", "case_c", "nuclei_image"] and bank.loaded == []
    for name in ("case_b", "case_c", "nuclei_image"):
        bank.get(name)
    assert bank.loaded == ["case_c", "nuclei_image"]
    clone = pickle.loads(pickle.dumps(SinGANSegAugment(bank, prob=1.0)))
    assert clone.bank.loaded == [] and clone.bank.names == bank.names


def test_several_keys_are_stacked_and_split_back(tmp_path):
    labels = LabelEncoding([0.0, 1.0])
    g = torch.Generator().manual_seed(0)
    real = torch.cat([torch.rand(2, 24, 24, generator=g) * 2 - 1, -torch.ones(1, 24, 24)])
    real[2, 5:15, 5:15] = 1
    config = tiny_config(image_channels=2, iters=2)
    SinGANSegTrainer(config, progress=False).fit(real, IntensityMapping([0.0, 100.0], [10.0, 200.0]), labels,
                                                tmp_path / "case.pt")
    data = {"t1": torch.rand(1, 40, 40), "t2": torch.rand(1, 40, 40) * 20, "seg": torch.zeros(1, 40, 40),
            "name": "case.nii.gz"}
    out = SinGANSegAugmentd(["t1", "t2"], "seg", tmp_path, prob=1.0, model_key="name")(data)
    assert out["t1"].shape == out["t2"].shape == (1, 40, 40)
    # each contrast comes back from its own channel, in its own units
    assert 0 <= out["t1"].min() and out["t1"].max() <= 10
    assert 100 <= out["t2"].min() and out["t2"].max() <= 200


def test_pool_serves_batched_samples_reproducibly(model_dir, sample):
    aug = SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0, pool_size=4)
    aug.set_random_state(1)
    first = [aug(sample)["image"] for _ in range(5)]
    aug.set_random_state(1)
    second = [aug(sample)["image"] for _ in range(5)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[1])


def test_pool_refresh_reuses_samples_and_keeps_the_pool_turning_over(nuclei_model, sample, monkeypatch):
    model, _ = nuclei_model
    generated = []
    generate = model.generate
    monkeypatch.setattr(model, "generate", lambda num, **kw: generated.append(num) or generate(num, **kw))
    aug = SinGANSegAugmentd(["image"], "label", [model], prob=1.0, model_choice="random", pool_size=8,
                            pool_refresh=0.25).set_random_state(3)
    images = [aug(sample)["image"] for _ in range(40)]
    distinct = {img.numpy().tobytes() for img in images}
    # a quarter of the draws drop their sample: far fewer generated than served, yet more than one pool's worth
    assert 8 < sum(generated) < 30
    assert 8 < len(distinct) < 40
    aug.set_random_state(3)
    assert all(torch.equal(a, aug(sample)["image"]) for a in images[:10])  # still reproducible
    with pytest.raises(ValueError, match="pool_refresh"):
        SinGANSegAugmentd(["image"], "label", [model], pool_size=8, pool_refresh=0.0)
    with pytest.raises(ValueError, match="pool_size must be >= 0"):
        SinGANSegAugmentd(["image"], "label", [model], pool_size=-1)


def test_dataloader_workers_draw_different_samples(model_dir):
    from monai.data import DataLoader, Dataset

    items = [{"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)}] * 4
    chain = Compose([
        LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True),
        SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0),
    ]).set_random_state(0)
    loader = DataLoader(Dataset(items, chain), batch_size=1, num_workers=2)
    images = [batch["image"][0] for batch in loader]
    assert len(images) == 4
    assert all(not torch.equal(images[i], images[j]) for i in range(4) for j in range(i + 1, 4))


def test_thread_dataloader_recipe_for_device_generation(model_dir):
    """MONAI's GPU recipe: cached deterministic part, ThreadDataLoader, generation on ``device`` (CPU here)."""
    from monai.data import CacheDataset, ThreadDataLoader
    from monai.transforms import EnsureTyped

    items = [{"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)}] * 4
    chain = Compose([
        LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True),
        EnsureTyped(["image", "label"], device="cpu"),
        SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0, device="cpu", pool_size=4),
    ]).set_random_state(0)
    loader = ThreadDataLoader(CacheDataset(items, chain, progress=False), batch_size=2, num_workers=0, buffer_size=1)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["image"].shape == (2, 1, 256, 256)
    images = [b["image"][i] for b in batches for i in range(2)]
    assert all(not torch.equal(images[i], images[j]) for i in range(4) for j in range(i + 1, 4))
    assert all(set(torch.unique(b["label"]).tolist()) <= {0.0, 255.0} for b in batches)


def test_supervised_trainer_with_the_transform_on_real_data(model_dir):
    from monai.data import CacheDataset, DataLoader
    from monai.engines import SupervisedTrainer
    from monai.losses import DiceLoss
    from monai.networks.nets import UNet
    from monai.transforms import AsDiscreted, RandSpatialCropd

    items = [{"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)}] * 4
    deterministic = [LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True),
                     AsDiscreted("label", threshold=0.5)]
    random_part = [SinGANSegAugmentd(["image"], "label", model_dir, prob=0.5),
                   ScaleIntensityd("image"), RandSpatialCropd(["image", "label"], (64, 64), random_size=False)]
    dataset = CacheDataset(items, Compose(deterministic + random_part), progress=False)
    net = UNet(2, 1, 1, channels=(8, 16), strides=(2,))
    before = [p.detach().clone() for p in net.parameters()]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=2, train_data_loader=DataLoader(dataset, batch_size=2),
        network=net, optimizer=torch.optim.Adam(net.parameters(), 1e-2), loss_function=DiceLoss(sigmoid=True),
    )
    trainer.run()
    assert trainer.state.iteration == 4 and np.isfinite(trainer.state.output[0]["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_earlier_spatial_transforms_stay_invertible(model_dir):
    from monai.transforms import SpatialPadd

    chain = Compose([
        LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True),
        SpatialPadd(["image", "label"], (300, 280)),
        SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0),
    ]).set_random_state(0)
    out = chain({"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)})
    assert out["image"].shape == (1, 300, 280)
    restored = chain.inverse(out)
    assert restored["image"].shape == restored["label"].shape == (1, 256, 256)
    assert len(restored["label"].applied_operations) == 0


def test_one_checkpoint_serves_every_sample(nuclei_model):
    _, path = nuclei_model
    image, label = torch.rand(1, 64, 64) * 100, (torch.rand(1, 64, 64) > 0.7).float()
    aug = SinGANSegAugmentd(["image"], "label", models=str(path), prob=1.0).set_random_state(0)
    out = aug({"image": image, "label": label, "other": 1})  # no model is named like the sample: still served
    assert out["image"].shape == image.shape and not torch.equal(out["image"], image)
    with pytest.raises(ValueError, match="prob"):
        SinGANSegAugmentd(["image"], "label", models=str(path), prob=float("nan"))


def test_synthetic_image_follows_an_earlier_intensity_normalisation(model_dir):
    # the usual chain: intensities scaled to 0..1 in the cached part, the augmentation afterwards
    chain = Compose([LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True),
                     ScaleIntensityd("image")])
    data = chain({"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)})
    assert float(data["image"].max()) == 1.0
    plain = SinGANSegAugmentd(["image"], "label", models=model_dir, prob=1.0).set_random_state(1)
    with pytest.warns(UserWarning, match="match_intensity=True"):
        raw_units = plain(dict(data))["image"]
    assert float(raw_units.max()) > 10  # the training image's 0..128 units, not the chain's 0..1
    matched = SinGANSegAugmentd(["image"], "label", models=model_dir, prob=1.0, match_intensity=True)
    out = matched.set_random_state(1)(dict(data))["image"]
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0 + 1e-6
    # the same sample, only rescaled: 0..128 -> 0..1
    torch.testing.assert_close(out.as_tensor(), raw_units.as_tensor() / 128.0, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="intensity_percentiles"):
        SinGANSegAugment(model_dir, match_intensity=True, intensity_percentiles=(99, 1))


def test_a_label_that_is_not_binary_is_refused(model_dir, sample):
    label = sample["label"].clone().float() / 255.0
    label[0, :4, :4] = 0.5  # what a bilinear resize of a mask leaves behind
    aug = SinGANSegAugment(model_dir, prob=1.0)
    with pytest.raises(SinGANSegInputError, match="not binary"):
        aug(sample["image"], label, name="nuclei_image")


@pytest.mark.parametrize("label_of, match", [
    (lambda label: label[:, :, :128], r"label of shape \(1, 256, 128\) does not fit the image \(1, 256, 256\)"),
    (lambda label: label[0], r"label of shape \(256, 256\) does not fit.*add EnsureChannelFirstd for the label"),
    (lambda label: label.float().masked_fill(label > 0, float("nan")), "label holds NaN"),
])
def test_a_label_that_is_not_the_images_is_refused(model_dir, sample, label_of, match):
    # the pair is replaced as a whole, so a label of another shape would come back silently reshaped
    aug = SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0)
    with pytest.raises(SinGANSegInputError, match=match):
        aug({**sample, "label": label_of(sample["label"])})


def test_a_nan_in_the_image_is_refused_when_its_intensities_are_matched(model_dir, sample):
    image = sample["image"].clone().float()
    image[0, 7, 7] = float("nan")  # would make the whole synthetic image NaN through the intensity map
    with pytest.raises(SinGANSegInputError, match="image holds NaN"):
        SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0, match_intensity=True)({**sample, "image": image})
    out = SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0)({**sample, "image": image})
    assert bool(torch.isfinite(out["image"]).all())  # the training image's units: the incoming values are not read


def test_diversity_is_drawn_per_sample_and_checked(model_dir, sample):
    fixed = SinGANSegAugment(model_dir, prob=1.0, diversity=0.0).set_random_state(3)
    fixed.randomize()
    assert fixed.last_draw.diversity == 0.0
    ranged = SinGANSegAugment(model_dir, prob=1.0, diversity=(0.2, 0.6)).set_random_state(3)
    drawn = []
    for _ in range(20):
        ranged.randomize()
        drawn.append(ranged.last_draw.diversity)
    assert 0.2 <= min(drawn) < max(drawn) <= 0.6
    # a lower diversity keeps the synthetic pair closer to the real one
    aug = lambda d: SinGANSegAugmentd(["image"], "label", models=model_dir, prob=1.0, diversity=d)
    gaps = []
    for d in (0.0, 1.0):
        outs = [aug(d).set_random_state(seed)(dict(sample))["label"] for seed in range(6)]
        gaps.append(np.mean([float((o != sample["label"]).float().mean()) for o in outs]))
    assert gaps[0] < gaps[1], gaps
    # pooled batches draw each sample's diversity too, reproducibly
    pooled = lambda: SinGANSegAugmentd(["image"], "label", models=model_dir, prob=1.0, pool_size=4,
                                       diversity=(0.0, 1.0)).set_random_state(2)
    first, second = pooled()(dict(sample)), pooled()(dict(sample))
    assert torch.equal(first["image"], second["image"])
    for bad in (1.2, (0.8, 0.2), (-0.1, 0.5)):
        with pytest.raises(ValueError, match="diversity"):
            SinGANSegAugment(model_dir, diversity=bad)


def test_matching_without_a_sample_name_asks_for_model_key_and_never_prints_pixels(model_dir, sample):
    image, label = sample["image"].numpy(), sample["label"].numpy()
    for data in ({"image": image, "label": label}, {"image": torch.as_tensor(image), "label": label}):
        with pytest.raises(SinGANSegInputError, match="no sample name") as err:
            SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0).set_random_state(0)(data)
        message = str(err.value)
        assert "model_key" in message and "filename_or_obj" in message
        assert "[[" not in message and "tensor(" not in message and len(message) < 500, message
    with pytest.raises(SinGANSegInputError, match="no sample name.*pass name="):
        SinGANSegAugment(model_dir, prob=1.0)(image, label)
    # a pixel array that reached the name argument counts as no name, and on_missing='skip' passes the sample on
    skip = SinGANSegAugment(model_dir, prob=1.0, on_missing="skip")
    assert skip(image, label, name=str(image))[0] is image


def test_a_start_scale_beyond_the_model_is_refused_and_a_range_past_it_is_clipped(nuclei_model, model_dir):
    model, _ = nuclei_model
    last = model.num_scales - 1
    image, label = torch.rand(1, 40, 40) * 100, (torch.rand(1, 40, 40) > 0.7).float()
    with pytest.raises(SinGANSegInputError, match=rf"nuclei_image\.pt: start_scale {last + 1} is beyond the model's "
                                                  rf"last scale {last}"):
        SinGANSegAugment(model_dir, prob=1.0, start_scale=last + 1)(image, label, name="nuclei_image")
    ranged = SinGANSegAugment(model_dir, prob=1.0, start_scale=(last, last + 3)).set_random_state(0)
    for _ in range(3):  # draws above the last scale are served from the last scale
        assert ranged(image, label, name="nuclei_image")[0].shape == image.shape


def test_keep_original_adds_synthetic_pairs_beside_the_real_one_in_every_batch(model_dir):
    from monai.data import DataLoader, Dataset
    from monai.transforms import RandSpatialCropd

    items = [{"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)}] * 3
    load = LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True)
    real = load(dict(items[0]))
    add = SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0, num_samples=3, keep_original=True)
    out = add.set_random_state(0)(real)
    assert isinstance(out, list) and len(out) == 3
    assert torch.equal(out[0]["image"], real["image"]) and torch.equal(out[0]["label"], real["label"])
    assert not torch.equal(out[1]["image"], real["image"]) and not torch.equal(out[1]["image"], out[2]["image"])
    assert all(set(o["label"].unique().tolist()) <= {0.0, 255.0} for o in out)
    # in a chain the later transforms run on every item, and the loader's collate puts them all in the batch
    chain = Compose([load, SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0, num_samples=2,
                                             keep_original=True),
                     RandSpatialCropd(["image", "label"], (64, 64), random_size=False)]).set_random_state(0)
    batch = next(iter(DataLoader(Dataset(items, chain), batch_size=3)))
    assert batch["image"].shape == (6, 1, 64, 64)
    # a second multi-sample transform nests the lists: MONAI's FlattenSequence after it makes them one again
    from monai.transforms import FlattenSequence, RandSpatialCropSamplesd

    chain = Compose([load, SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0, num_samples=2,
                                             keep_original=True),
                     RandSpatialCropSamplesd(["image", "label"], (64, 64), num_samples=2, random_size=False),
                     FlattenSequence()]).set_random_state(0)
    batch = next(iter(DataLoader(Dataset(items, chain), batch_size=3)))
    assert batch["image"].shape == (12, 1, 64, 64)
    # without keep_original every item is its own draw: prob 0 keeps all of them real
    same = SinGANSegAugmentd(["image"], "label", model_dir, prob=0.0, num_samples=2)(real)
    assert len(same) == 2 and all(torch.equal(o["image"], real["image"]) for o in same)
    assert same[1]["image"] is not real["image"]  # a copy: a later in-place step cannot reach the original
    with pytest.raises(ValueError, match="num_samples"):
        SinGANSegAugmentd(["image"], "label", model_dir, num_samples=0)
    with pytest.raises(ValueError, match="keep_original"):
        SinGANSegAugmentd(["image"], "label", model_dir, keep_original=True)


def test_the_study_recipe_is_one_call_and_its_batches_say_which_items_are_synthetic(model_dir):
    from monai.data import DataLoader, Dataset, list_data_collate

    recipe = SinGANSegAugmentd.add_beside_real(["image"], "label", model_dir)
    assert (recipe.augment.start_range, recipe.augment.diversity_range, recipe.augment.match_intensity) == \
        ((0, 0), (0.4, 0.4), True)
    assert (recipe.prob, recipe.num_samples, recipe.keep_original, recipe.synthetic_key) == \
        (1.0, 2, True, "synthetic")
    items = [{"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)}] * 2
    load = LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True)
    real = load(dict(items[0]))
    chain = Compose([load, recipe]).set_random_state(0)
    loader = DataLoader(Dataset(items, chain), batch_size=2, collate_fn=list_data_collate)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 1, 256, 256)
    assert batch["synthetic"].dtype == torch.bool and batch["synthetic"].tolist() == [False, True, False, True]
    for image, synthetic in zip(batch["image"], batch["synthetic"]):  # the mark tells the real items apart
        assert torch.equal(image.as_tensor(), real["image"].as_tensor()) != bool(synthetic)
    # replacing by a coin (num_samples=1) marks each item as drawn; a sample the transform passes through is real
    coin = SinGANSegAugmentd(["image"], "label", model_dir, prob=0.5, synthetic_key="synthetic")
    marks = [bool(coin.set_random_state(seed)(real)["synthetic"]) for seed in range(8)]
    assert True in marks and False in marks
    skip = SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0, on_missing="skip", synthetic_key="synthetic")
    passed = skip({**real, "image": MetaTensor(real["image"].as_tensor(), meta={"filename_or_obj": "other.png"})})
    assert not bool(passed["synthetic"])
    # overrides change one part of the recipe; the plain constructor adds no key, as before
    assert SinGANSegAugmentd.add_beside_real(["image"], "label", model_dir, num_samples=3).num_samples == 3
    assert "synthetic" not in SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0)(real)


@pytest.fixture(scope="module")
def model_with_source(tmp_path_factory, nuclei_pair):
    """A tiny nuclei model that knows its training image's affine and shape, as the command line's models do."""
    path = tmp_path_factory.mktemp("sourced") / "nuclei_image.pt"
    SinGANSegTrainer(tiny_config(), progress=False).fit(nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels,
                                                         path, source=nuclei_pair.source)
    return path


def test_a_crop_before_the_transform_is_warned_about_once(model_with_source, sample):
    # the synthetic pair is the model's whole field of view resized into the crop: nuclei a quarter of their size
    model_dir = model_with_source
    crop = SpatialCropd(["image", "label"], roi_center=(128, 128), roi_size=(64, 64))(dict(sample))
    aug = SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(2):
            aug(dict(crop))
    seen = [str(w.message) for w in record if "field of view" in str(w.message)]
    assert len(seen) == 1 and "covers 0.25 of the field of view" in seen[0] and "4.0x smaller" in seen[0], seen
    # resized (MONAI updates the affine: 4 px spacing) or cropped by less than half, the view is the model's: silent,
    # and a crop in the training units (0..255, a darker part of the range) is not taken for other units either
    resized = Resized(["image", "label"], (64, 64), mode=("area", "nearest"))(dict(sample))
    half = SpatialCropd(["image", "label"], roi_center=(128, 128), roi_size=(128, 128))(dict(sample))
    for data in (resized, half):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert SinGANSegAugmentd(["image"], "label", model_dir, prob=1.0)(dict(data))["image"].shape == \
                data["image"].shape


def test_a_sample_missing_one_of_its_contrasts_passes_with_allow_missing_keys(model_dir, sample):
    aug = SinGANSegAugmentd(["image", "t2"], "label", model_dir, prob=1.0, allow_missing_keys=True)
    out = aug(dict(sample))
    assert out["image"] is sample["image"] and out["label"] is sample["label"]
    with pytest.raises(KeyError, match="t2"):  # MONAI's own message for a missing key
        SinGANSegAugmentd(["image", "t2"], "label", model_dir, prob=1.0)(dict(sample))


def test_a_foreign_checkpoint_in_a_bank_is_refused_when_the_bank_is_made(model_dir, tmp_path):
    bank = tmp_path / "bank"
    shutil.copytree(model_dir, bank)
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, bank / "unet.pt")  # a segmentation network's file
    with pytest.raises(SinGANSegInputError, match=r"unet\.pt: not a monai-singanseg checkpoint"):
        SinGANSegAugmentd(["image"], "label", bank, prob=1.0, model_choice="random")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_a_cuda_device_without_cuda_fails_when_the_transform_is_built(model_dir):
    # it failed at the first sample, maybe in a DataLoader worker hours into a training, with a torch traceback
    with pytest.raises(SinGANSegInputError, match=r"^device cuda: this machine has no CUDA GPU"):
        SinGANSegAugmentd(["image"], "label", model_dir, device="cuda")


def test_an_unknown_device_fails_when_the_transform_is_built(model_dir):
    with pytest.raises(SinGANSegInputError, match=r"^device tpu9: not a device name"):
        SinGANSegAugmentd(["image"], "label", model_dir, device="tpu9")


@pytest.mark.parametrize("start_scale", [1.5, (0, 1.5), (2, 1), -1, True, "1"])
def test_a_start_scale_that_is_no_int_or_range_is_named(model_dir, start_scale):
    # 1.5 said "'float' object is not iterable"
    with pytest.raises(ValueError, match=rf"^start_scale must be an int >= 0 or a \(low, high\) range of ints, got "
                                         rf"{re.escape(repr(start_scale))}\.$"):
        SinGANSegAugmentd(["image"], "label", model_dir, start_scale=start_scale)
