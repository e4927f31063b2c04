"""The StyleGAN generator's parts without training: config, network shapes (both designs, any channel count, 2D and
3D), DiffAugment, checkpoints and the registrations."""

from __future__ import annotations

import json

import pytest
import torch

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generators import GENERATORS, checkpoint_kind, load_generator
from monai_singanseg.networks.checkpoint_format import SINGANSEG_CHECKPOINT
from monai_singanseg.stylegan import PairStyleGAN, StyleGANConfig, StyleGANTrainer, binarize_mask
from monai_singanseg.stylegan.networks import Critic, ModulatedConv, minibatch_stddev
from monai_singanseg.transforms.sampling import SAMPLERS


def tiny(image_channels: int = 1, mask_channels: int = 1, design: str = "joint", spatial_dims: int = 2,
         **fields) -> StyleGANConfig:
    """A network of a few thousand weights at 16 pixels (toy arrays only: shapes and errors)."""
    return StyleGANConfig(spatial_dims=spatial_dims, image_channels=image_channels, mask_channels=mask_channels,
                          resolution=16 if spatial_dims == 2 else 8, widths=(16, 8, 8), latent_dim=8, style_dim=8,
                          mapping_layers=2, design=design, **fields).validate()


def test_config_round_trips_through_json_and_refuses_bad_fields():
    config = tiny(3, 2, "mask_then_image", num_classes=4, augment=["color"])
    again = StyleGANConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert again == config and again.resolution == (16, 16) and again.augment == ("color",)
    assert config.start_size == (4, 4) and config.channels == 5
    with pytest.raises(ValueError, match="multiple of 4"):
        StyleGANConfig(resolution=18, widths=(8, 8, 8)).validate()
    with pytest.raises(ValueError, match="design"):
        StyleGANConfig(design="image_then_mask").validate()
    with pytest.raises(ValueError, match="augment"):
        StyleGANConfig(augment=("rotate",)).validate()
    with pytest.raises(ValueError, match="unknown"):
        StyleGANConfig.from_dict({**config.to_dict(), "truncation": 0.7})


@pytest.mark.parametrize("design", ["joint", "mask_then_image"])
@pytest.mark.parametrize("image_channels, mask_channels", [(1, 1), (3, 1), (2, 3)])
def test_both_designs_make_pairs_of_any_channel_count(design, image_channels, mask_channels):
    model = PairStyleGAN(tiny(image_channels, mask_channels, design))
    x = model.generate(3, seed=1)
    assert x.shape == (3, image_channels + mask_channels, 16, 16)
    assert float(x.abs().max()) <= 1.0
    assert torch.equal(x, model.generate(3, seed=1)) and not torch.equal(x, model.generate(3, seed=2))
    image, label = model.split(x)
    assert image.shape == (3, image_channels, 16, 16) and label.shape == (3, 1, 16, 16)
    assert set(label.unique().tolist()) <= set(model.labels.values)
    if design == "mask_then_image":  # the drawn mask is hard before the image is drawn for it
        assert set(x[:, image_channels:].unique().tolist()) <= {-1.0, 1.0}


def test_volumes_and_classes():
    model = PairStyleGAN(tiny(2, 1, "mask_then_image", spatial_dims=3, num_classes=3))
    x = model.generate(2, seed=0, classes=[0, 2])
    assert x.shape == (2, 3, 8, 8, 8)
    assert not torch.equal(x, model.generate(2, seed=0, classes=[1, 1]))
    with pytest.raises(SinGANSegInputError, match="class indices in 0..2"):
        model.generate(2, seed=0, classes=[0, 3])
    critic = Critic(3, 3, (16, 8, 8), (8, 8, 8), num_classes=3)
    assert critic(x, torch.tensor([0, 2])).shape == (2,)


def test_images_for_given_masks_keep_the_masks():
    model = PairStyleGAN(tiny(1, 1, "mask_then_image"))
    masks = torch.zeros(2, 1, 16, 16) - 1.0
    masks[:, :, 4:10, 6:12] = 1.0
    x = model.generate_for_masks(masks, seed=0)
    assert x.shape == (2, 2, 16, 16) and torch.equal(x[:, 1:], masks)
    assert not torch.equal(x[:, :1], model.generate_for_masks(masks * -1.0, seed=0)[:, :1])  # the mask matters
    with pytest.raises(SinGANSegInputError, match="masks: shape"):
        model.generate_for_masks(torch.zeros(2, 1, 8, 8))
    with pytest.raises(SinGANSegInputError, match="design 'joint'"):
        PairStyleGAN(tiny()).generate_for_masks(masks)


def test_demodulation_gives_unit_output_variance_for_any_style():
    torch.manual_seed(0)
    conv = ModulatedConv(2, 64, 64, 3, 8)
    x = torch.randn(4, 64, 16, 16)
    for scale in (0.1, 10.0):  # styles of any size: demodulation removes their scale
        with torch.no_grad():
            y = conv(x, torch.randn(4, 8) * scale)
        assert 0.7 < float(y[:, :, 1:-1, 1:-1].std()) < 1.3


def test_minibatch_stddev_adds_one_channel_of_the_group_spread():
    x = torch.randn(6, 3, 4, 4)
    y = minibatch_stddev(x, group_size=4)  # 6 samples: groups of 3
    assert y.shape == (6, 4, 4, 4) and torch.equal(y[:, :3], x)
    same = minibatch_stddev(x[:1].expand(6, 3, 4, 4))[:, 3]  # identical samples: the spread is sqrt(eps)
    assert torch.allclose(same, torch.full((6, 4, 4), 1e-4))


def test_binarize_mask_binary_and_one_hot():
    assert binarize_mask(torch.tensor([[[-0.2, 0.3]]])).tolist() == [[[-1.0, 1.0]]]
    soft = torch.tensor([[[0.1], [0.5], [-0.9]]])  # (1, 3 classes, 1)
    assert binarize_mask(soft).tolist() == [[[-1.0], [1.0], [-1.0]]]


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    model = PairStyleGAN(tiny(2, 1, "mask_then_image", num_classes=2), source={"shape": [16, 16]})
    path = tmp_path / "stylegan.pt"
    model.save(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format"] == "monai-singanseg-stylegan" and set(payload["generators"]) == {"mask", "image"}
    again = PairStyleGAN.load(path)
    assert again.config == model.config and again.source == model.source
    assert torch.equal(again.generate(2, seed=3), model.generate(2, seed=3))
    assert checkpoint_kind(path) == "stylegan" and isinstance(load_generator(path), PairStyleGAN)


def test_damaged_and_foreign_checkpoints_are_one_line(tmp_path):
    path = tmp_path / "stylegan.pt"
    PairStyleGAN(tiny()).save(path)
    payload = torch.load(path, weights_only=True)
    payload["generators"]["pair"]["synthesis.const"] = payload["generators"]["pair"]["synthesis.const"][:1]
    torch.save(payload, tmp_path / "damaged.pt")
    with pytest.raises(SinGANSegInputError, match="damaged.pt: damaged monai-singanseg StyleGAN checkpoint"):
        PairStyleGAN.load(tmp_path / "damaged.pt")
    torch.save({"format": SINGANSEG_CHECKPOINT.marker}, tmp_path / "singanseg.pt")  # the marker is read first
    with pytest.raises(SinGANSegInputError, match="a SinGAN-Seg checkpoint, not a StyleGAN one"):
        PairStyleGAN.load(tmp_path / "singanseg.pt")


def test_the_kind_is_registered_with_a_sampler():
    assert GENERATORS["stylegan"].cls is PairStyleGAN and "stylegan" in SAMPLERS


def test_volumes_train_and_resize_to_the_resolution(tmp_path):
    # toy volumes (shapes only: the 2D tests train on real data) of 12^3, resized to the model's 8^3
    config = tiny(2, 1, "mask_then_image", spatial_dims=3, batch_size=2, train_steps=2, r1_interval=1)
    generator = torch.Generator().manual_seed(0)
    pairs = [torch.cat([torch.rand(2, 12, 12, 12, generator=generator) * 2 - 1,
                        torch.where(torch.rand(1, 12, 12, 12, generator=generator) > 0.5, 1.0, -1.0)])
             for _ in range(3)]
    model = StyleGANTrainer(config, progress=False).fit(pairs, tmp_path / "volume.pt")
    assert model.generate(2, seed=0).shape == (2, 3, 8, 8, 8)
    assert PairStyleGAN.load(tmp_path / "volume.pt").config.spatial_dims == 3
    with pytest.raises(SinGANSegInputError, match="pair 1: 4 channels"):
        StyleGANTrainer(config, progress=False).fit([pairs[0], torch.cat([pairs[1], pairs[1][:1]])],
                                                    tmp_path / "bad.pt")
    with pytest.raises(SinGANSegInputError, match="pair 0: values outside"):
        StyleGANTrainer(config, progress=False).fit([pairs[0] * 3], tmp_path / "bad.pt")
