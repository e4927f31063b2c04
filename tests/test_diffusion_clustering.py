"""Clustering the training pairs before diffusion training, on the real nuclei tiles (2D) and the real MNI152 template
(2D slices and 3D crops): groups that clearly differ are found exactly, the same seed gives the same clusters,
features do not depend on the pair's size, clusters survive a JSON round trip, and bad requests are refused."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import GM, T1, WM, mni_crop
from parameterized import parameterized

from monai_singanseg import SinGANSegInputError, TrainingPair, load_training_pair, prepare_training_pair
from monai_singanseg.diffusion.clustering import PairClusters, cluster_features, cluster_pairs, pair_features
from monai_singanseg.intensity import IntensityMapping
from monai_singanseg.metrics.features import INCEPTION_WEIGHTS_ENV, InceptionStem
from monai_singanseg.pyramid import resize

TILES = Path(__file__).resolve().parents[1] / "data" / "nuclei" / "tiles"
UNITS = IntensityMapping([0.0], [255.0])  # 8-bit PNG units


@functools.lru_cache(maxsize=1)
def tiles() -> tuple[TrainingPair, ...]:
    """The four real 256x256 nuclei tiles (grey image + binary mask), each in its own intensity map."""
    return tuple(load_training_pair([TILES / f"nuclei_tile_{t}_image.png"], TILES / f"nuclei_tile_{t}_label.png")
                 for t in "abcd")


def quadrants(pair: TrainingPair) -> list[TrainingPair]:
    """The four 128x128 quadrants of a 256x256 pair."""
    return [TrainingPair(pair.real[:, y : y + 128, x : x + 128].clone(), pair.intensity, pair.labels, {})
            for y in (0, 128) for x in (0, 128)]


def inverted(pair: TrainingPair) -> TrainingPair:
    """The same pair with the image negated in 8-bit units (bright background, dark nuclei), mask unchanged."""
    image = 255.0 - pair.intensity.denormalize(pair.real[:1])
    return prepare_training_pair(image, (pair.real[1:] > 0).float(), intensity=UNITS)


@functools.lru_cache(maxsize=1)
def mni_slices() -> tuple[TrainingPair, ...]:
    """Six axial slices (197x233) of the real MNI152 T1 template with the white-matter mask: brain MRI."""
    box = (slice(0, 197), slice(0, 233), slice(60, 120, 10))  # one read of each file (the files are gzipped)
    t1, wm = mni_crop(T1, box)[0], (mni_crop(WM, box)[0] > 128).astype(np.float32)
    return tuple(prepare_training_pair(torch.from_numpy(t1[None, ..., z]), torch.from_numpy(wm[None, ..., z]),
                                       intensity=UNITS) for z in range(t1.shape[-1]))


def nuclei_crops() -> list[TrainingPair]:
    return [q for tile in tiles() for q in quadrants(tile)]


def groups_of(clusters: PairClusters, sizes: list[int]) -> list[list[int]]:
    """The clusters of consecutive groups of pairs of the given sizes."""
    bounds = np.cumsum([0, *sizes])
    return [sorted(set(clusters.assignments[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]


@parameterized.expand([("inverted_intensity",), ("mri_slices",)])
def test_two_clearly_different_groups_are_separated_exactly(name):
    crops = nuclei_crops()  # 16 quadrants of the 4 tiles, in the tiles' own maps (0 to 143 ... 235)
    other = [inverted(c) for c in crops] if name == "inverted_intensity" else list(mni_slices())
    clusters = cluster_pairs(crops + other, 2, seed=0)
    assert clusters.assignments == [0] * len(crops) + [1] * len(other)
    assert clusters.sizes == [len(crops), len(other)] and clusters.members(1)[0] == len(crops)
    assert clusters.features_method == "intensity" and clusters.inertia > 0


def test_a_stacked_batch_of_bare_tensors_is_a_batch_of_pairs():
    crops = [c.real for c in nuclei_crops()[:8:2]]  # bare tensors: read in the identity map of [-1, 1]
    batch = torch.stack(crops + [torch.cat([-c[:1], c[1:]]) for c in crops])  # (8, 2, 128, 128)
    assert cluster_pairs(batch, 2, image_channels=1).assignments == [0] * 4 + [1] * 4


def test_same_seed_same_clusters_numbered_by_first_appearance():
    pairs = nuclei_crops()[::2] + list(mni_slices()[:3])
    first = cluster_pairs(pairs, 3, seed=5)
    assert first.assignments == cluster_pairs(pairs, 3, seed=5).assignments
    seen = []
    for a in first.assignments:  # cluster k first appears after clusters 0..k-1
        if a not in seen:
            assert a == len(seen)
            seen.append(a)
    assert sorted(seen) == [0, 1, 2]
    # the numbering does not depend on k-means' internal label order: the first pair is always in cluster 0
    assert cluster_pairs(pairs, 2, seed=5).assignments == [0] * 8 + [1] * 3
    assert cluster_pairs(pairs[::-1], 2, seed=5).assignments == [0] * 3 + [1] * 8


def test_features_do_not_depend_on_the_pairs_size_or_intensity_map():
    tile = tiles()[0]
    image = resize(tile.real[None, :1], (160, 192))[0].clamp(-1, 1)
    mask = (resize(tile.real[None, 1:], (160, 192))[0] > 0).float() * 2 - 1
    smaller = TrainingPair(torch.cat([image, mask]), tile.intensity, tile.labels, {})
    # the same pixel values expressed in a wider map: common units make them the same image
    wider = prepare_training_pair(tile.intensity.denormalize(tile.real[:1]), (tile.real[1:] > 0).float(),
                                  intensity=UNITS)
    raw = pair_features([*tiles(), smaller, wider], standardize=False)
    assert raw.shape == (6, 16 + 4 + 5 + 64)  # histogram, in/out mean+std, mask fraction+centroid+spread, 8x8
    assert np.allclose(raw[5], raw[0], atol=1e-5)
    size_change = np.linalg.norm(raw[4] - raw[0])
    other_tiles = [np.linalg.norm(raw[i] - raw[0]) for i in (1, 2, 3)]
    assert size_change < 0.3 * min(other_tiles), (size_change, other_tiles)
    assert np.allclose(raw[4, 20:25], raw[0, 20:25], atol=0.01)  # mask fraction, centroid, spread


def test_a_multi_class_mask_gives_layout_features_per_class():
    tile = tiles()[0]
    label = (tile.real[1:] > 0).float()
    label[:, :, 128:] *= 2  # nuclei of the right half become class 2
    pair = prepare_training_pair(tile.intensity.denormalize(tile.real[:1]), label, num_classes=3)
    assert pair.labels.one_hot and pair.real.shape[0] == 4
    mask = pair_features([pair], standardize=False)[0, 20:30]  # per class: fraction, 2 centroids, 2 spreads
    assert mask[2] < 0.5 < mask[7]  # class 1 on the left, class 2 on the right (second spatial axis)
    assert mask[0] + mask[5] == pytest.approx(float((tile.real[1] > 0).float().mean()))


def test_each_feature_group_has_an_equal_share_after_standardisation():
    features = pair_features(nuclei_crops() + list(mni_slices()))
    groups = np.split(features, np.cumsum([16, 4, 5]), axis=1)  # histogram, intensity, mask, thumbnail
    for group in groups:
        assert np.allclose(group.mean(axis=0), 0.0, atol=1e-12)
        assert (group**2).sum(axis=1).mean() == pytest.approx(1.0)
    dropped = pair_features(nuclei_crops() + list(mni_slices()), weights={"thumbnail": 0.0})
    assert np.allclose(dropped[:, 25:], 0.0) and np.allclose(dropped[:, :25], features[:, :25])


def test_3d_pairs_of_two_contrasts_and_different_shapes():
    box = (slice(60, 122), slice(80, 154), slice(60, 120))  # one read of each file, then three crops of it
    t1, gm, wm = (mni_crop(path, box)[0] for path in (T1, GM, WM))
    pairs = []
    for crop in [np.s_[0:24, 0:24, 0:24], np.s_[30:62, 30:58, 10:34], np.s_[10:34, 50:74, 30:60]]:
        image = torch.from_numpy(np.stack([t1[crop], gm[crop]]))
        label = torch.from_numpy((wm[crop] > 128).astype(np.float32))[None]
        pairs.append(prepare_training_pair(image, label, intensity=IntensityMapping([0.0, 0.0], [255.0, 255.0])))
    flipped = [torch.cat([-p.real[:2], p.real[2:]]) for p in pairs]  # bare tensors: both contrasts inverted
    features = pair_features([p.real for p in pairs] + flipped, image_channels=2)
    assert features.shape == (6, 2 * (16 + 4) + 7 + 2 * 64)  # mask: fraction, 3 centroids, 3 spreads; 4x4x4 each
    clusters = cluster_pairs([p.real for p in pairs] + flipped, 2, image_channels=2)
    assert clusters.assignments == [0, 0, 0, 1, 1, 1]


def test_inception_features_through_a_given_extractor():
    torch.manual_seed(0)
    stem = InceptionStem().eval()  # untrained: stands in for a local weight file, the maths is the same
    crops = nuclei_crops()[:4]
    features = pair_features(crops + [inverted(c) for c in crops], method="inception", extractor=stem)
    assert features.shape == (8, 2 * 64 + 5)  # mean and std of the stem's 64 channels, the mask group
    clusters = cluster_features(features, 2, features_method="inception")
    assert clusters.assignments == [0] * 4 + [1] * 4 and clusters.features_method == "inception"


def test_bad_requests_are_refused_with_a_reason(tmp_path, monkeypatch):
    pairs = nuclei_crops()[:3]
    with pytest.raises(SinGANSegInputError, match=r"num_clusters=4: need a whole number from 1 to the number of "
                                                   r"pairs \(3\)"):
        cluster_pairs(pairs, 4)
    with pytest.raises(SinGANSegInputError, match="num_clusters=0"):
        cluster_pairs(pairs, 0)
    with pytest.raises(SinGANSegInputError, match="only 1 of the 3 pairs have distinct features"):
        cluster_pairs([pairs[0]] * 3, 2)
    with pytest.raises(SinGANSegInputError, match="give image_channels"):
        pair_features([p.real for p in pairs])
    with pytest.raises(SinGANSegInputError, match="pair 0: 1 image channels, but 2 given"):
        pair_features(pairs, image_channels=2)
    with pytest.raises(SinGANSegInputError, match="pair 1: 3D, pair 0 is 2D"):
        pair_features([torch.zeros(2, 16, 16), torch.zeros(2, 8, 8, 8)], image_channels=1)
    with pytest.raises(SinGANSegInputError, match="choose one of intensity, inception"):
        pair_features(pairs, method="vgg")
    with pytest.raises(SinGANSegInputError, match="at least 11 pixels a side"):
        pair_features([torch.zeros(2, 10, 32)], image_channels=1, method="inception")
    with pytest.raises(SinGANSegInputError, match="Inception features are 2D only"):
        pair_features([torch.zeros(2, 16, 16, 16)], image_channels=1, method="inception")
    # Inception without weights: the message names the files and the places looked in, and the way out
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(SinGANSegInputError, match="(?s)needs local Inception-v3 weights.*method='intensity'.*"
                                                  "pt_inception-2015-12-05-6726825d.pth.*hub"):
        cluster_pairs(pairs, 2, method="inception")
    with pytest.raises(SinGANSegInputError, match="missing.pth: Inception weight file not found"):
        cluster_pairs(pairs, 2, method="inception", inception_weights=tmp_path / "missing.pth")


def test_one_cluster_needs_no_scikit_learn_and_more_say_how_to_install_it(monkeypatch):
    pairs = nuclei_crops()[:3]
    monkeypatch.setitem(sys.modules, "sklearn.cluster", None)  # as if scikit-learn were not installed
    one = cluster_pairs(pairs, 1)
    assert one.assignments == [0, 0, 0] and one.num_clusters == 1 and one.inertia > 0
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        cluster_pairs(pairs, 2)


def test_clusters_round_trip_through_json(tmp_path):
    pairs = nuclei_crops()[:4] + list(mni_slices()[:2])
    names = [f"case_{i}" for i in range(len(pairs))]
    clusters = cluster_pairs(pairs, 2, seed=1, names=names)
    path = tmp_path / "clusters.json"
    clusters.save(path)
    assert PairClusters.load(path) == clusters == PairClusters.from_dict(clusters.to_dict())
    assert clusters.split(names) == [[names[i] for i in clusters.members(k)] for k in range(2)]
    assert cluster_features(np.eye(3), 3).assignments == [0, 1, 2]
    with pytest.raises(SinGANSegInputError, match=r"cluster\(s\) \[1\] of 2 have no pair"):
        PairClusters.from_dict({**clusters.to_dict(), "assignments": [0] * len(pairs)})
    path.write_text("[1, 2]")
    with pytest.raises(SinGANSegInputError, match="not a pair-clusters file"):
        PairClusters.load(path)
