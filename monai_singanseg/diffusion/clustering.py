"""Clustering the training pairs before training, so that one diffusion model is trained per cluster.

A dataset of many image + mask pairs often holds a few kinds of picture (polyps seen in white light or in narrow-band
light, stained slides from two labs, two MRI contrasts); one model per kind learns each kind better than one model
learns the mixture. :func:`cluster_pairs` groups the pairs with k-means (scikit-learn's ``KMeans``) on features of
each pair, and returns a :class:`PairClusters` that says which pair belongs to which cluster (saved as JSON).

Features (:func:`pair_features`):

- ``method="intensity"`` (the default) needs no downloaded weights, runs in milliseconds per pair, in 2D and 3D,
  and is what separates the clusters that matter for a pair generator: how the image looks (its intensity
  distribution, and how the structure stands out from its surroundings) and where and how large the structure is.
  Four groups, per image channel unless said otherwise:

  - ``histogram``: the fraction of voxels in each of ``bins`` equal bins over ``[-1, 1]``;
  - ``intensity``: mean and standard deviation inside the mask (any foreground class) and outside it (the whole
    image's, when one side is empty);
  - ``mask``: per foreground class, the fraction of voxels it covers, its centroid and its spread (the square root of
    the second central moment along each axis), in coordinates ``(index + 0.5) / size`` in ``[0, 1]``;
  - ``thumbnail``: the image channels average-pooled to ``8 x 8`` (2D) or ``4 x 4 x 4`` (3D): the coarse layout
    (lighting, vignetting, where tissue is).

  Every feature is a fraction, a mean or a spread in normalised units, so pairs of different spatial shapes give
  comparable features.
- ``method="inception"`` (2D only) replaces the three image groups by texture statistics: the mean and standard
  deviation over positions of the 64 channels of the Inception-v3 stem that SIFID uses
  (:mod:`monai_singanseg.metrics.features`), with its ImageNet weights read from a local file (nothing is
  downloaded: ``inception_weights``, ``$SINGANSEG_INCEPTION_WEIGHTS`` or the torch hub cache); the ``mask`` group
  is kept. Image channels are fed as the metrics feed them: three channels as RGB, any other count as one grey
  image per channel. Use it for natural-looking colour images whose kinds differ in texture more than in intensity.

Image channels are compared in common units: pairs whose intensity maps differ are re-expressed in one map (per
channel the lowest ``lower`` and the highest ``upper``), as :func:`~monai_singanseg.diffusion.trainer.stack_pairs`
does for training.

Standardisation: each feature group is centred over the pairs and divided by the square root of its total variance
(the sum of its columns' variances), then multiplied by its weight (1 by default). Each group then has a mean
squared distance of 1 (times its weight squared) to its centre, so it has an equal share in the squared Euclidean
distance that k-means minimises, however many columns it has; within a group the columns keep their relative scale,
so a nearly empty histogram bin is not inflated to the weight of a busy one (as per-column z-scores would).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.utils import optional_import

from monai_singanseg.diffusion.config import CLUSTER_FEATURES
from monai_singanseg.diffusion.model import default_labels
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write
from monai_singanseg.generator_protocol import check_pair_values
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.io import TrainingPair
from monai_singanseg.metrics.features import FeatureExtractor, extract, load_inception_stem, to_three_channels

__all__ = [
    "CLUSTERS_FORMAT",
    "FEATURE_GROUPS",
    "FEATURE_METHODS",
    "PairClusters",
    "cluster_features",
    "cluster_pairs",
    "pair_features",
]

CLUSTERS_FORMAT = "monai-singanseg-pair-clusters"
FEATURE_METHODS = CLUSTER_FEATURES
FEATURE_GROUPS = {"intensity": ("histogram", "intensity", "mask", "thumbnail"), "inception": ("inception", "mask")}
"""The feature groups of each method, in the order their columns appear."""

# the smallest side the Inception stem maps to at least one position: ((H - 3) // 2 - 4) // 2 + 1 >= 1
_INCEPTION_MIN_SIDE = 11


@dataclass
class _Pair:
    """One pair ready for features: image channels in common ``[-1, 1]`` units and its class-index mask."""

    image: torch.Tensor  # (n, *spatial) float32
    classes: torch.Tensor  # (*spatial) long, 0 = background


@dataclass
class _Checked:
    """Checked pairs and what turns each into a :class:`_Pair` (one at a time, so large volumes are not all held
    twice in memory)."""

    pairs: list[TrainingPair | torch.Tensor]
    image_channels: int
    classes: int  # foreground classes
    spatial_dims: int
    common: IntensityMapping
    maps: list[IntensityMapping]
    encodings: list[LabelEncoding]

    def __iter__(self) -> Iterator[_Pair]:
        n = self.image_channels
        for pair, pair_map, labels in zip(self.pairs, self.maps, self.encodings):
            real = _real(pair).clamp(-1.0, 1.0)
            image = real[:n] if pair_map == self.common else self.common.normalize(pair_map.denormalize(real[:n]))
            yield _Pair(image, _class_indices(real[n:], labels))


def _raw(pair: TrainingPair | torch.Tensor) -> torch.Tensor:
    return pair.real if isinstance(pair, TrainingPair) else torch.as_tensor(pair)


def _real(pair: TrainingPair | torch.Tensor) -> torch.Tensor:
    """The pair's stacked tensor ``(C, *spatial)`` as float32 on the CPU."""
    return _raw(pair).detach().to("cpu", torch.float32)


def _check(
    pairs: TrainingPair | torch.Tensor | Sequence[TrainingPair | torch.Tensor], image_channels: int | None
) -> _Checked:
    """Check ``pairs`` (a bare tensor is a batch ``(P, C, *spatial)``) and find their common intensity map."""
    if isinstance(pairs, TrainingPair):
        pairs = [pairs]
    pairs = list(pairs)
    if len(pairs) == 0:
        raise SinGANSegInputError("no training pair given to cluster.")
    source = "given" if image_channels is not None else None
    for i, pair in enumerate(pairs):
        if isinstance(pair, TrainingPair):
            if image_channels is not None and pair.image_channels != image_channels:
                raise SinGANSegInputError(f"pair {i}: {pair.image_channels} image channels, but {image_channels} "
                                          f"{source}.")
            image_channels, source = pair.image_channels, source or f"in pair {i}"
    if image_channels is None:
        raise SinGANSegInputError("give image_channels: bare tensors do not say which channels are image and which "
                                  "are mask.")
    n = int(image_channels)
    shape0: tuple[int, ...] = ()
    maps, encodings = [], []
    for i, pair in enumerate(pairs):
        real = _real(pair)
        if real.ndim not in (3, 4):
            raise SinGANSegInputError(
                f"pair {i}: shape {tuple(real.shape)}; give (C, H, W) or (C, D, H, W) tensors (image channels, then "
                "mask channels)."
            )
        if shape0 and real.ndim != len(shape0):
            raise SinGANSegInputError(f"pair {i}: {real.ndim - 1}D, pair 0 is {len(shape0) - 1}D; cluster 2D and "
                                      "3D pairs separately.")
        if shape0 and real.shape[0] != shape0[0]:
            raise SinGANSegInputError(f"pair {i}: {real.shape[0]} channels, pair 0 has {shape0[0]}.")
        if real.shape[0] <= n or n < 1:
            raise SinGANSegInputError(
                f"pair {i}: {real.shape[0]} channels for {n} image channels; a pair needs at least one image and one "
                "mask channel."
            )
        check_pair_values(real, f"pair {i}", "give stacked pairs from load_training_pair or prepare_training_pair.")
        shape0 = shape0 or tuple(real.shape)
        if isinstance(pair, TrainingPair):
            maps.append(pair.intensity)
            encodings.append(pair.labels)
        else:
            maps.append(IntensityMapping([-1.0] * n, [1.0] * n))
            encodings.append(default_labels(real.shape[0] - n))
    # as stack_pairs does for training: one map holding every pair's range, so nothing is clipped
    common = IntensityMapping([min(m.lower[c] for m in maps) for c in range(n)],
                              [max(m.upper[c] for m in maps) for c in range(n)])
    mask_channels = shape0[0] - n
    classes = mask_channels - 1 if mask_channels > 1 else 1  # one-hot: the background channel is no structure
    return _Checked(pairs, n, classes, len(shape0) - 1, common, maps, encodings)


def _class_indices(mask: torch.Tensor, labels: LabelEncoding) -> torch.Tensor:
    """Mask channels ``(M, *spatial)`` in ``[-1, 1]`` → class indices ``(*spatial)`` (0 = background)."""
    if mask.shape[0] == 1 and not labels.one_hot:
        return (mask[0] > 0.0).long()
    return mask.argmax(dim=0)


def _moments(weight: torch.Tensor) -> list[float]:
    """Fraction, centroid and spread per axis of a mask ``(*spatial)`` of 0/1, in normalised coordinates."""
    total = float(weight.sum())
    fraction = total / weight.numel()
    if total == 0.0:  # an absent class: centred and without spread, so it sits with other small structures
        return [0.0] + [0.5] * weight.ndim + [0.0] * weight.ndim
    centroids, spreads = [], []
    for axis in range(weight.ndim):
        # the marginal along one axis holds all its first and second moments; no coordinate grid needed
        marginal = weight.sum(dim=tuple(a for a in range(weight.ndim) if a != axis))
        coords = (torch.arange(weight.shape[axis], dtype=torch.float64) + 0.5) / weight.shape[axis]
        centroid = float((marginal * coords).sum() / total)
        centroids.append(centroid)
        spreads.append(float(((marginal * (coords - centroid) ** 2).sum() / total).clamp_min(0.0).sqrt()))
    return [fraction, *centroids, *spreads]


def _mask_group(pair: _Pair, classes: int) -> np.ndarray:
    return np.array([v for k in range(1, classes + 1) for v in _moments((pair.classes == k).double())])


def _image_groups(pair: _Pair, bins: int, thumbnail: int) -> dict[str, np.ndarray]:
    """The ``histogram``, ``intensity`` and ``thumbnail`` groups of one pair."""
    image = pair.image
    flat = image.reshape(image.shape[0], -1)
    inside = (pair.classes > 0).reshape(-1)
    histogram, stats = [], []
    for channel in flat:
        histogram.append((torch.histc(channel, bins=bins, min=-1.0, max=1.0).double() / channel.numel()).numpy())
        channel = channel.double()  # one channel at a time in float64: exact sums over large volumes
        for part in (channel[inside], channel[~inside]):
            part = part if part.numel() > 0 else channel  # an empty side: the whole image, which is neutral
            stats += [float(part.mean()), float(part.std(unbiased=False))]
    pool = F.adaptive_avg_pool2d if image.ndim == 3 else F.adaptive_avg_pool3d
    thumb = pool(image[None], thumbnail)[0].double().reshape(-1).numpy()
    return {"histogram": np.concatenate(histogram), "intensity": np.array(stats), "thumbnail": thumb}


def _inception_group(pair: _Pair, extractor: FeatureExtractor, device: torch.device) -> np.ndarray:
    """Mean and standard deviation over positions of the stem's channels, per 3-channel input of the pair."""
    values = []
    for rgb in to_three_channels(pair.image[None].to(device)):
        features = extract(extractor, rgb)[0].double()
        features = features.reshape(features.shape[0], -1)
        values += [features.mean(dim=1).cpu().numpy(), features.std(dim=1, unbiased=False).cpu().numpy()]
    return np.concatenate(values)


def _standardize(groups: dict[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Centre each group ``(P, d)``, divide it by the square root of its total variance, weight it, concatenate."""
    blocks = []
    for name, block in groups.items():
        centred = block - block.mean(axis=0, keepdims=True)
        scale = float(np.sqrt((centred**2).sum(axis=1).mean()))
        # a group on which all pairs agree carries no information: zeros, not noise blown up by a tiny scale
        blocks.append(centred / scale * weights.get(name, 1.0) if scale > 1e-12 else np.zeros_like(centred))
    return np.concatenate(blocks, axis=1)


def pair_features(
    pairs: TrainingPair | torch.Tensor | Sequence[TrainingPair | torch.Tensor],
    image_channels: int | None = None,
    method: str = "intensity",
    inception_weights: str | os.PathLike | None = None,
    extractor: FeatureExtractor | None = None,
    bins: int = 16,
    thumbnail: int | None = None,
    weights: Mapping[str, float] | None = None,
    standardize: bool = True,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Features of each pair for clustering (see the module's docstring for what they are and why).

    Args:
        pairs: :class:`~monai_singanseg.io.TrainingPair` objects or tensors ``(C, *spatial)`` in ``[-1, 1]`` (image
            channels then mask channels), 2D or 3D, of any spatial shapes (all of one rank and channel count); or
            one stacked batch ``(P, C, *spatial)`` such as :class:`~monai_singanseg.diffusion.TrainingData`'s
            ``real`` (a bare tensor is read as a batch of pairs, never as one pair).
        image_channels: how many leading channels are image channels; taken from ``TrainingPair`` objects when
            not given (needed for bare tensors, whose mask channels follow the binary / class-index encoding of
            :func:`~monai_singanseg.diffusion.model.default_labels`).
        method: ``"intensity"`` (no weights, 2D and 3D) or ``"inception"`` (local Inception-v3 weights, 2D only).
        inception_weights: the Inception weight file for ``method="inception"`` (default: found as
            :func:`~monai_singanseg.metrics.features.find_inception_weights` finds it).
        extractor: a feature extractor ``(N, 3, H, W) -> (N, F, h, w)`` to use instead of the Inception stem.
        bins: histogram bins over ``[-1, 1]`` per image channel.
        thumbnail: side of the thumbnail (default 8 in 2D, 4 in 3D: 64 values per image channel).
        weights: a weight per feature group name (:data:`FEATURE_GROUPS`; 0 drops a group), default 1 each.
        standardize: standardise each group over the pairs (set-dependent); ``False`` gives the raw features
            (weighted), which depend on the pair alone but for the common intensity map.
        device: where the Inception stem runs.

    Returns:
        ``(P, F)`` float64 array, one row per pair, groups in the order of :data:`FEATURE_GROUPS`.

    Raises:
        SinGANSegInputError: bad pairs, an unknown method or group, Inception features of 3D pairs or of pairs
            smaller than 11 pixels a side, or no Inception weight file found (the message names the places and
            file names looked for).
    """
    weights = _check_feature_options(method, weights, bins, thumbnail)
    checked = _check(pairs, image_channels)
    if method == "intensity":
        groups = _intensity_groups(checked, bins, thumbnail or (8 if checked.spatial_dims == 2 else 4))
    else:
        groups = _inception_groups(checked, extractor, inception_weights, device)
    return _finish(groups, weights, standardize)


def _check_feature_options(method: str, weights: Mapping[str, float] | None, bins: int,
                           thumbnail: int | None) -> dict[str, float]:
    """:func:`pair_features`' options checked before any pair is read; the weights as a dict.

    Raises:
        SinGANSegInputError: an unknown method or feature group, no histogram bin, or a thumbnail side under 1.
    """
    if method not in FEATURE_METHODS:
        raise SinGANSegInputError(f"feature method {method!r}: choose one of {', '.join(FEATURE_METHODS)}.")
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(FEATURE_GROUPS[method]))
    if unknown:
        raise SinGANSegInputError(f"weights for unknown feature group(s) {unknown}; the {method!r} method has "
                                  f"{', '.join(FEATURE_GROUPS[method])}.")
    if bins < 1 or (thumbnail is not None and thumbnail < 1):
        raise SinGANSegInputError(f"bins={bins}, thumbnail={thumbnail}: need at least 1 histogram bin and a "
                                  "thumbnail side of at least 1.")
    return weights


def _intensity_groups(checked: _Checked, bins: int, side: int) -> dict[str, list[np.ndarray]]:
    """The ``"intensity"`` method's feature groups of every pair: histograms and thumbnails of the image channels
    (``bins`` bins, ``side``-pixel thumbnails) and the mask group."""
    groups: dict[str, list[np.ndarray]] = {name: [] for name in FEATURE_GROUPS["intensity"]}
    for pair in checked:
        for name, values in _image_groups(pair, bins, side).items():
            groups[name].append(values)
        groups["mask"].append(_mask_group(pair, checked.classes))
    return groups


def _inception_groups(checked: _Checked, extractor: FeatureExtractor | None,
                      inception_weights: str | os.PathLike | None,
                      device: str | torch.device) -> dict[str, list[np.ndarray]]:
    """The ``"inception"`` method's feature groups of every pair: Inception-v3 stem features (``extractor``, else the
    stem loaded from ``inception_weights``) and the mask group.

    Raises:
        SinGANSegInputError: 3D pairs, a pair under the stem's smallest side, or no Inception weight file found.
    """
    if checked.spatial_dims != 2:
        raise SinGANSegInputError("Inception features are 2D only; use method='intensity' for 3D pairs.")
    small = [i for i, p in enumerate(checked.pairs) if min(_raw(p).shape[1:]) < _INCEPTION_MIN_SIDE]
    if small:
        raise SinGANSegInputError(f"pair {small[0]}: spatial shape {tuple(_raw(checked.pairs[small[0]]).shape[1:])}; "
                                  f"Inception features need at least {_INCEPTION_MIN_SIDE} pixels a side.")
    device = torch.device(device)
    if extractor is None:
        try:
            extractor = load_inception_stem(inception_weights, device=device)
        except SinGANSegInputError as err:
            raise SinGANSegInputError(f"clustering with method='inception' needs local Inception-v3 weights "
                                      f"(or use method='intensity', which needs none): {err}") from err
    groups: dict[str, list[np.ndarray]] = {name: [] for name in FEATURE_GROUPS["inception"]}
    for pair in checked:
        groups["inception"].append(_inception_group(pair, extractor, device))
        groups["mask"].append(_mask_group(pair, checked.classes))
    return groups


def _finish(groups: dict[str, list[np.ndarray]], weights: Mapping[str, float], standardize: bool) -> np.ndarray:
    """The rows of each group stacked, standardised (or only weighted), and concatenated in group order."""
    stacked = {name: np.stack(values).astype(np.float64) for name, values in groups.items()}
    if not standardize:
        return np.concatenate([stacked[name] * weights.get(name, 1.0) for name in stacked], axis=1)
    return _standardize(stacked, weights)


@dataclass
class PairClusters:
    """Which cluster each training pair belongs to; one model is trained per cluster.

    Attributes:
        assignments: the cluster of each pair, ``0 <= k < num_clusters``; clusters are numbered by first appearance
            (pair 0 is in cluster 0, the first pair not in cluster 0 is in cluster 1, ...), so the numbering does
            not depend on k-means' internal label order.
        num_clusters: the number of clusters, each non-empty.
        features_method: the features clustered (``"intensity"``, ``"inception"``, or a caller's name).
        inertia: k-means' sum of squared distances of the pairs to their cluster centres (standardised features).
        seed: the k-means seed.
        names: optional names of the pairs (for example their files), in the order of ``assignments``.

    Example:
        >>> clusters = cluster_pairs(pairs, 2)                                     # doctest: +SKIP
        >>> for k, group in enumerate(clusters.split(pairs)):                     # doctest: +SKIP
        ...     DiffusionTrainer(config).fit(group, f"diffusion_cluster{k}.pt")
    """

    assignments: list[int]
    num_clusters: int
    features_method: str = "intensity"
    inertia: float = 0.0
    seed: int = 0
    names: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        self.assignments = [int(a) for a in self.assignments]
        self.num_clusters = int(self.num_clusters)
        if self.num_clusters < 1 or any(not 0 <= a < self.num_clusters for a in self.assignments):
            raise SinGANSegInputError(
                f"cluster assignments {self.assignments} do not lie in 0..{self.num_clusters - 1}.")
        empty = [k for k in range(self.num_clusters) if k not in self.assignments]
        if empty:
            raise SinGANSegInputError(f"cluster(s) {empty} of {self.num_clusters} have no pair.")
        if self.names is not None:
            self.names = [str(n) for n in self.names]
            if len(self.names) != len(self.assignments):
                raise SinGANSegInputError(f"{len(self.names)} names for {len(self.assignments)} pairs.")

    @property
    def sizes(self) -> list[int]:
        """The number of pairs in each cluster."""
        return [self.assignments.count(k) for k in range(self.num_clusters)]

    def members(self, k: int) -> list[int]:
        """The indices of the pairs in cluster ``k``, in increasing order."""
        if not 0 <= k < self.num_clusters:
            raise IndexError(f"cluster {k}: there are {self.num_clusters} clusters.")
        return [i for i, a in enumerate(self.assignments) if a == k]

    def split(self, items: Sequence[Any]) -> list[list[Any]]:
        """``items`` (one per pair: the pairs, their files, ...) grouped by cluster:
        ``[cluster 0's, cluster 1's, ...]``."""
        if len(items) != len(self.assignments):
            raise SinGANSegInputError(f"{len(items)} items for {len(self.assignments)} clustered pairs.")
        return [[items[i] for i in self.members(k)] for k in range(self.num_clusters)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with a format marker and version; ``sizes`` is informative only)."""
        out = {"format": CLUSTERS_FORMAT, "version": 1, "num_clusters": self.num_clusters,
               "features_method": self.features_method, "seed": self.seed, "inertia": float(self.inertia),
               "sizes": self.sizes, "assignments": list(self.assignments)}
        if self.names is not None:
            out["names"] = list(self.names)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairClusters:
        """The clusters of :meth:`to_dict`'s dict.

        Raises:
            SinGANSegInputError: another format, a missing key, or assignments that leave a cluster empty.
        """
        if data.get("format", CLUSTERS_FORMAT) != CLUSTERS_FORMAT:
            raise SinGANSegInputError(f"not a pair-clusters file (format {data.get('format')!r}).")
        missing = [k for k in ("assignments", "num_clusters") if k not in data]
        if missing:
            raise SinGANSegInputError(f"pair clusters lack {', '.join(missing)}.")
        return cls(list(data["assignments"]), int(data["num_clusters"]), str(data.get("features_method", "intensity")),
                   float(data.get("inertia", 0.0)), int(data.get("seed", 0)), data.get("names"))

    def save(self, path: str | os.PathLike) -> None:
        """Write the clusters as JSON (atomically)."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def load(cls, path: str | os.PathLike) -> PairClusters:
        """Read clusters written by :meth:`save`.

        Raises:
            SinGANSegInputError: the file is missing, not JSON, or not valid pair clusters.
        """
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SinGANSegInputError(f"{path}: cannot read pair clusters ({err}).") from err
        if not isinstance(data, dict):
            raise SinGANSegInputError(f"{path}: not a pair-clusters file (a JSON object is expected).")
        try:
            return cls.from_dict(data)
        except SinGANSegInputError as err:
            raise SinGANSegInputError(f"{path}: {err}") from err


def _renumber(labels: Sequence[int]) -> list[int]:
    """Labels renumbered by first appearance, so equal partitions give equal lists."""
    order: dict[int, int] = {}
    return [order.setdefault(int(label), len(order)) for label in labels]


def cluster_features(
    features: np.ndarray,
    num_clusters: int,
    seed: int = 0,
    features_method: str = "precomputed",
    n_init: int = 10,
    names: Sequence[str] | None = None,
) -> PairClusters:
    """k-means of the rows of ``features`` ``(P, F)`` into ``num_clusters`` non-empty clusters.

    ``num_clusters == 1`` puts every pair in cluster 0 without scikit-learn; otherwise
    ``sklearn.cluster.KMeans(num_clusters, n_init=n_init, random_state=seed)``, so the same seed gives the same
    clusters.

    Raises:
        SinGANSegInputError: ``num_clusters`` below 1 or above the number of pairs (or of distinct feature rows).
        ImportError: scikit-learn is not installed (and ``num_clusters > 1``).
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] == 0:
        raise SinGANSegInputError(f"features of shape {features.shape}: need (pairs, features) with a pair at least.")
    count = features.shape[0]
    if isinstance(num_clusters, bool) or int(num_clusters) != num_clusters or not 1 <= num_clusters <= count:
        raise SinGANSegInputError(f"num_clusters={num_clusters}: need a whole number from 1 to the number of pairs "
                                  f"({count}).")
    num_clusters = int(num_clusters)
    names = list(names) if names is not None else None
    if num_clusters == 1:
        inertia = float(((features - features.mean(axis=0)) ** 2).sum())
        return PairClusters([0] * count, 1, features_method, inertia, seed, names)
    distinct = np.unique(features, axis=0).shape[0]
    if distinct < num_clusters:
        # k-means would leave clusters empty (scikit-learn only warns); say so in the user's terms
        raise SinGANSegInputError(f"only {distinct} of the {count} pairs have distinct features: they cannot form "
                                  f"{num_clusters} clusters; lower num_clusters.")
    KMeans, has_sklearn = optional_import("sklearn.cluster", name="KMeans")
    if not has_sklearn:
        raise ImportError("clustering the training pairs needs scikit-learn: pip install scikit-learn.")
    kmeans = KMeans(n_clusters=num_clusters, n_init=n_init, random_state=seed).fit(features)
    assignments = _renumber(kmeans.labels_.tolist())
    if len(set(assignments)) != num_clusters:  # KMeans relocates empty clusters; kept as a guard
        raise SinGANSegInputError(f"k-means left {num_clusters - len(set(assignments))} of {num_clusters} clusters "
                                  "empty; lower num_clusters.")
    return PairClusters(assignments, num_clusters, features_method, float(kmeans.inertia_), seed, names)


def cluster_pairs(
    pairs: TrainingPair | torch.Tensor | Sequence[TrainingPair | torch.Tensor],
    num_clusters: int,
    seed: int = 0,
    method: str = "intensity",
    image_channels: int | None = None,
    inception_weights: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    **feature_options: Any,
) -> PairClusters:
    """Group the training pairs into ``num_clusters`` clusters by k-means on :func:`pair_features`.

    Args:
        pairs: :class:`~monai_singanseg.io.TrainingPair` objects or ``(C, *spatial)`` tensors in ``[-1, 1]``, 2D or
            3D, of any spatial shapes, or a stacked batch ``(P, C, *spatial)`` (see :func:`pair_features`).
        num_clusters: from 1 (every pair in cluster 0, no scikit-learn needed) to the number of pairs.
        seed: the k-means seed (``random_state``); the same seed gives the same clusters.
        method: ``"intensity"`` (no weights) or ``"inception"`` (local Inception-v3 weights, 2D).
        image_channels: leading image channels of bare tensors (taken from ``TrainingPair`` objects otherwise).
        inception_weights: the Inception weight file for ``method="inception"``.
        names: optional names of the pairs, kept in the result (and its JSON).
        **feature_options: more options of :func:`pair_features` (``extractor``, ``bins``, ``thumbnail``,
            ``weights``, ``device``).

    Returns:
        :class:`PairClusters`, clusters numbered by first appearance.

    Raises:
        SinGANSegInputError: bad pairs, ``num_clusters`` out of range, or missing Inception weights.
        ImportError: scikit-learn is not installed (and ``num_clusters > 1``).

    Example:
        >>> clusters = cluster_pairs([pair_a, pair_b, pair_c], 2, seed=0)          # doctest: +SKIP
        >>> clusters.assignments, clusters.members(1)                               # doctest: +SKIP
        ([0, 1, 0], [1])
    """
    count = 1 if isinstance(pairs, TrainingPair) else len(pairs)
    if isinstance(num_clusters, bool) or int(num_clusters) != num_clusters or not 1 <= num_clusters <= max(count, 1):
        # checked before the features, which may need weights or take a while
        raise SinGANSegInputError(f"num_clusters={num_clusters}: need a whole number from 1 to the number of pairs "
                                  f"({count}).")
    if names is not None and len(names) != count:
        raise SinGANSegInputError(f"{len(names)} names for {count} pairs.")
    features = pair_features(pairs, image_channels, method, inception_weights, **feature_options)
    return cluster_features(features, num_clusters, seed, method, names=names)
