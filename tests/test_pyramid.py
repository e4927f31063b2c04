from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from monai_singanseg.config import PyramidConfig
from monai_singanseg.pyramid import build_pyramid, resize, scale_shapes


class TestScaleShapes(unittest.TestCase):
    @parameterized.expand([((256, 256), 128), ((300, 200), 250), ((64, 48, 40), 40)])
    def test_coarsest_short_side_is_min_size_and_finest_fits_max_size(self, shape, max_size):
        shapes = scale_shapes(shape, PyramidConfig(min_size=25, max_size=max_size))
        self.assertEqual(min(shapes[0]), 25)
        self.assertLessEqual(max(shapes[-1]), max_size)
        for coarse, fine in zip(shapes, shapes[1:]):
            self.assertTrue(all(c <= f for c, f in zip(coarse, fine)))
            self.assertGreaterEqual(min(c / f for c, f in zip(coarse, fine)), 0.7)  # no step coarser than asked

    def test_aspect_ratio_kept(self):
        shapes = scale_shapes((300, 150), PyramidConfig(min_size=25, max_size=200))
        self.assertEqual(shapes[-1], (200, 100))
        self.assertAlmostEqual(shapes[0][0] / shapes[0][1], 2.0, delta=0.1)

    def test_small_input_gives_one_scale(self):
        self.assertEqual(scale_shapes((20, 24), PyramidConfig(min_size=25)), [(20, 24)])

    def test_bad_config(self):
        with self.assertRaises(ValueError):
            scale_shapes((64, 64), PyramidConfig(scale_factor=1.5))


class TestResize(unittest.TestCase):
    @parameterized.expand([(2,), (3,)])
    def test_shapes_and_range(self, spatial_dims):
        x = torch.rand(1, 2, *([16] * spatial_dims)) * 2 - 1
        small = resize(x, [7] * spatial_dims)
        self.assertEqual(tuple(small.shape), (1, 2) + (7,) * spatial_dims)
        big = resize(small, [16] * spatial_dims)
        self.assertEqual(tuple(big.shape), tuple(x.shape))
        pyramid = build_pyramid(x, [[5] * spatial_dims, [16] * spatial_dims])
        self.assertTrue(all(p.abs().max() <= 1 for p in pyramid))

    def test_downsizing_is_antialiased(self):
        # a one-pixel checkerboard averages to grey when antialiased; plain sampling would keep +-1 extremes
        board = (torch.arange(32).view(-1, 1) + torch.arange(32).view(1, -1)) % 2 * 2.0 - 1.0
        small = resize(board[None, None], (8, 8))
        self.assertLess(small.abs().max().item(), 0.2)
