"""The model on toy tensors: shapes for 2D/3D and channel layouts, sampling options, label decoding."""

from __future__ import annotations

import tempfile
import unittest

import pytest
import torch
from conftest import tiny_config
from parameterized import parameterized

from monai_singanseg import (
    IntensityMapping,
    LabelEncoding,
    ScaleCritic,
    ScaleGenerator,
    SinGANSeg,
    SinGANSegTrainer,
)
from monai_singanseg.config import NetworkConfig

LAYOUTS = [
    ("2d_1+1", 2, 1, LabelEncoding([0.0, 1.0])),
    ("2d_3+1", 2, 3, LabelEncoding([0.0, 255.0])),
    ("2d_1+onehot3", 2, 1, LabelEncoding([0.0, 1.0, 2.0], one_hot=True)),
    ("3d_1+1", 3, 1, LabelEncoding([0.0, 1.0])),
]


def toy_real(spatial_dims: int, image_channels: int, labels: LabelEncoding, size: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    image = torch.rand((image_channels,) + (size,) * spatial_dims, generator=g) * 2 - 1
    label = torch.zeros((1,) + (size,) * spatial_dims)
    label[(0,) + (slice(4, 12),) * spatial_dims] = labels.values[1]
    label[(0,) + (slice(14, 20),) * spatial_dims] = labels.values[-1]
    return torch.cat([image, labels.encode(label)])


class TestNetworks(unittest.TestCase):
    @parameterized.expand([(n, a, d) for n in ("batch", "instance", "none") for a in ("leakyrelu", "elu", "relu")
                           for d in (2, 3)])
    def test_generator_keeps_shape_and_critic_gives_patch_map(self, norm, act, spatial_dims):
        config = NetworkConfig(norm=norm, act=act)
        x = torch.randn((2, 4) + (13,) * spatial_dims)
        out = ScaleGenerator(spatial_dims, 4, 8, config)(x, x)
        self.assertEqual(out.shape, x.shape)
        self.assertEqual(ScaleCritic(spatial_dims, 4, 8, config)(x).shape, (2, 1) + (3,) * spatial_dims)

    def test_width_doubles_every_four_scales_up_to_cap(self):
        config = NetworkConfig()
        self.assertEqual([config.channels_at(s) for s in (0, 3, 4, 8, 12)], [32, 32, 64, 128, 128])


class TestLayouts(unittest.TestCase):
    @parameterized.expand(LAYOUTS)
    def test_train_and_sample_shapes(self, _, spatial_dims, image_channels, labels):
        real = toy_real(spatial_dims, image_channels, labels)
        config = tiny_config(image_channels, labels.channels, spatial_dims, iters=2)
        intensity = IntensityMapping([0.0] * image_channels, [100.0] * image_channels)
        with tempfile.TemporaryDirectory() as tmp:
            model = SinGANSegTrainer(config, progress=False).fit(real, intensity, labels, f"{tmp}/m.pt")
        x = model.generate(3)
        self.assertEqual(tuple(x.shape), (3, real.shape[0]) + tuple(real.shape[1:]))
        image, label = model.sample(3, seed=1)
        self.assertEqual(tuple(image.shape), (3, image_channels) + tuple(real.shape[1:]))
        self.assertEqual(tuple(label.shape), (3, 1) + tuple(real.shape[1:]))
        self.assertTrue(set(label.unique().tolist()) <= set(labels.values))
        self.assertGreaterEqual(image.min().item(), 0.0)
        self.assertLessEqual(image.max().item(), 100.0)
        # another size and aspect ratio, and every start scale
        ratio = [1.5] + [1.0] * (spatial_dims - 1)
        wide = model.generate(2, scale_ratio=ratio)
        self.assertEqual(wide.shape[2], round(real.shape[1] * 1.5))
        for start in range(model.num_scales):
            self.assertEqual(model.generate(1, start_scale=start).shape[2:], real.shape[1:])


class TestLabelEncoding(unittest.TestCase):
    def test_binary_round_trip_keeps_original_values(self):
        enc = LabelEncoding([0.0, 255.0])
        label = torch.tensor([[[0.0, 255.0], [255.0, 0.0]]])
        self.assertTrue(torch.equal(enc.decode(enc.encode(label)), label))

    def test_binary_threshold_is_middle_of_range(self):
        enc = LabelEncoding([0.0, 1.0])
        self.assertEqual(enc.decode(torch.tensor([[[-0.1, 0.1]]])).tolist(), [[[0.0, 1.0]]])

    def test_one_hot_argmax(self):
        enc = LabelEncoding([0.0, 1.0, 2.0], one_hot=True)
        label = torch.tensor([[[0.0, 1.0, 2.0]]])
        encoded = enc.encode(label)
        self.assertEqual(encoded.shape[0], 3)
        self.assertTrue(torch.equal(enc.decode(encoded + 0.3 * torch.rand_like(encoded)), label))

    def test_intensity_round_trip(self):
        mapping = IntensityMapping.fit(torch.tensor([[[-1000.0, 0.0, 3000.0]]]))
        x = torch.tensor([[[-1000.0, 500.0, 3000.0]]])
        self.assertTrue(torch.allclose(mapping.denormalize(mapping.normalize(x)), x))


def test_reconstructions_are_cached_within_a_bound_least_recently_used_dropped_first(nuclei_model):
    _, path = nuclei_model
    model = SinGANSeg.load(path).eval()
    bound = SinGANSeg.RECONSTRUCTION_CACHE_SIZE
    kept = model.reconstruct(1)
    assert model.reconstruct(1) is kept  # served from the cache
    sizes = [model.scaled_shapes(1.0 + 0.1 * i) for i in range(1, 2 * bound + 2)]
    first_size = model.reconstruct(1, sizes[0])
    for shapes in sizes[1:]:
        model.reconstruct(1, shapes)
        assert model.reconstruct(1) is kept  # in use all along, so never the one dropped
        assert len(model._reconstructions) <= bound
    assert all(isinstance(key, tuple) for key in model._reconstructions)
    again = model.reconstruct(1, sizes[0])  # dropped long ago: computed anew, the same values
    assert again is not first_size and torch.equal(again, first_size)


def test_a_changed_model_is_reconstructed_afresh_without_being_told(nuclei_model):
    """The reconstruction cache keys on what a reconstruction is computed from, weights included: changing a weight,
    a noise amplitude, the fixed noise or a whole generator gives a fresh reconstruction with no call to clear it."""
    import copy

    _, path = nuclei_model
    model = SinGANSeg.load(path).eval()
    before = model.reconstruct(2)
    assert model.reconstruct(2) is before  # unchanged: served from the cache
    with torch.no_grad():
        next(model.generators[1].parameters()).mul_(0.5)  # in place, as an optimizer step or load_state_dict does
    changed = model.reconstruct(2)
    assert not torch.equal(changed, before)
    fresh = SinGANSeg.load(path).eval()
    with torch.no_grad():
        next(fresh.generators[1].parameters()).mul_(0.5)
    assert torch.equal(changed, fresh.reconstruct(2))  # the same change made before any reconstruction
    model.noise_amps[0] *= 2.0
    assert not torch.equal(model.reconstruct(2), changed)
    amplified = model.reconstruct(2)
    with torch.no_grad():
        model.fixed_noise.neg_()
    assert not torch.equal(model.reconstruct(2), amplified)
    flipped = model.reconstruct(2)
    model.generators[1] = copy.deepcopy(SinGANSeg.load(path).generators[1])  # new tensors, versions from zero again
    assert not torch.equal(model.reconstruct(2), flipped)
    with pytest.warns(DeprecationWarning, match="notices changed weights by itself"):
        model.forget_reconstructions()  # kept for earlier callers, never needed
