"""The surface both generators share: the PairGenerator base, the registry of kinds, one checkpoint envelope, one
check of a stacked pair."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_diffusion_config

from monai_singanseg.checkpoint_envelope import check_complete, load_weights_only
from monai_singanseg.diffusion import PairDiffusion
from monai_singanseg.diffusion.checkpoint_format import DiffusionTrainingState
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generation import write_samples
from monai_singanseg.generator_protocol import PAIR_VALUE_TOLERANCE, PairGenerator, check_pair_values
from monai_singanseg.generators import GENERATOR_KINDS, GENERATORS, checkpoint_kind, load_generator
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.networks import SinGANSeg
from monai_singanseg.networks.checkpoint_format import TrainingState
from monai_singanseg.report import report_rows
from monai_singanseg.stylegan import PairStyleGAN
from monai_singanseg.transforms import SinGANSegHarmonize


def test_the_registry_names_each_kind_with_its_class_and_marker():
    assert {name: kind.cls for name, kind in GENERATORS.items()} == {"singanseg": SinGANSeg,
                                                                    "diffusion": PairDiffusion,
                                                                    "stylegan": PairStyleGAN}
    assert GENERATOR_KINDS == {"monai-singanseg": "singanseg", "monai-singanseg-diffusion": "diffusion",
                               "monai-singanseg-stylegan": "stylegan"}
    assert all(issubclass(kind.cls, PairGenerator) and kind.cls.kind == name for name, kind in GENERATORS.items())


def test_both_kinds_load_through_the_registry_and_join_inverts_split(nuclei_model, nuclei_pair, tmp_path):
    diffusion = PairDiffusion(tiny_diffusion_config(), nuclei_pair.intensity, nuclei_pair.labels)
    diffusion.save(tmp_path / "diffusion.pt")
    for path, cls in ((nuclei_model[1], SinGANSeg), (tmp_path / "diffusion.pt", PairDiffusion)):
        model = load_generator(path)
        assert type(model) is cls and checkpoint_kind(path) == model.kind
        image, label = model.split(nuclei_pair.real[None])
        # the real pair's mask channels are exactly -1/+1, and its image channels invert the intensity map
        assert torch.allclose(model.join(image[0], label[0]), nuclei_pair.real, atol=1e-5)
        assert torch.equal(model.join(image[0], (label[0] != 0).float(), indices=True)[1:], nuclei_pair.real[1:])
    assert not load_generator(nuclei_model[1]).draws_at_any_size and PairDiffusion.draws_at_any_size


def test_a_diffusion_checkpoint_is_the_envelope_around_its_unet(tmp_path):
    model = PairDiffusion(tiny_diffusion_config())
    model.save(tmp_path / "d.pt", DiffusionTrainingState("abc", step=3))
    stored = load_weights_only(tmp_path / "d.pt")
    assert list(stored) == ["format", "format_version", "config", "unet", "intensity", "labels", "source", "training"]
    assert stored["training"]["step"] == 3 and stored["training"]["complete"] is False
    loaded, state = PairDiffusion.from_checkpoint(tmp_path / "d.pt")
    assert state == DiffusionTrainingState("abc", step=3)
    assert all(torch.equal(a, b) for a, b in zip(model.unet.state_dict().values(),
                                                 loaded.unet.state_dict().values()))
    with pytest.raises(SinGANSegInputError, match="d.pt: diffusion training stopped at step 3 of 10"):
        load_generator(tmp_path / "d.pt")


def test_one_completeness_check_speaks_for_each_kind(nuclei_model):
    model = nuclei_model[0]
    check_complete("m.pt", model, None)  # no resume state: a finished model
    check_complete("m.pt", model, TrainingState("abc", complete=True))
    with pytest.raises(SinGANSegInputError, match=r"m.pt: training is not finished \(\d+/\d+ scales\)"):
        check_complete("m.pt", model, TrainingState("abc", complete=False))
    # a file written before 'complete' existed counts as finished, as it always did
    assert TrainingState.from_dict({"fingerprint": "abc"}).complete


def test_one_pair_check_with_one_tolerance():
    check_pair_values(torch.full((2, 4, 4), 1.0 + PAIR_VALUE_TOLERANCE / 2), "pair 0", "hint.")
    for bad in (1.0 + 2 * PAIR_VALUE_TOLERANCE, float("nan")):
        with pytest.raises(SinGANSegInputError, match=r"^pair 0: values outside \[-1, 1\] \(or not finite\); hint\.$"):
            check_pair_values(torch.full((2, 4, 4), bad), "pair 0", "hint.")


class _PlainConfig:
    """The config a toy kind needs: the protocol's PairConfig."""

    image_channels, mask_channels, spatial_dims = 1, 1, 2

    @property
    def channels(self) -> int:
        return self.image_channels + self.mask_channels


class _PlainGenerator(torch.nn.Module, PairGenerator):
    """A third kind as the protocol's defaults describe it: new pairs at the training size, no pyramid, no denoising,
    no injection; not registered."""

    kind = "plain"

    def __init__(self) -> None:
        super().__init__()
        self.config = _PlainConfig()
        self.intensity = IntensityMapping([0.0], [255.0])
        self.labels = LabelEncoding([0.0, 1.0])
        self.source = {"shape": [12, 10]}
        self.weight = torch.nn.Parameter(torch.ones(()))

    @property
    def device(self) -> torch.device:
        return self.weight.device

    @classmethod
    def from_checkpoint(cls, path, device="cpu", *, require_complete=False, payload=None):
        raise NotImplementedError

    def generate(self, num: int = 1, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.tanh(torch.randn(num, 2, 12, 10, generator=generator))


def test_a_third_kind_is_served_by_generation_the_report_and_harmonize_unchanged(tmp_path):
    """What differs between kinds is asked of the model (start_scales, denoises, supports_injection, display_name),
    so a kind with the protocol's defaults writes pairs, gets report rows and is refused by harmonize by name, with
    no edit outside its own class."""
    model = _PlainGenerator().eval()
    assert (model.display_name, tuple(model.start_scales), model.denoises, model.supports_injection) == (
        "plain", (), False, False)
    items = write_samples(model, tmp_path / "pairs", 3, seed=1)
    assert len(items) == 3 and all(Path(item["label"]).is_file() for item in items)
    with pytest.raises(SinGANSegInputError, match="a plain model has no pyramid"):
        write_samples(model, tmp_path / "other", 3, start_scale=1)
    real = model.generate(1, generator=torch.Generator().manual_seed(0))
    section, rows = report_rows(model, real)
    assert section == "samplers" and [row.key for row in rows] == ["sample"]
    assert rows[0].draw(2, 5).shape == (2, 2, 12, 10)
    with pytest.raises(SinGANSegInputError, match="start scales are SinGAN-Seg's; a plain model has none"):
        report_rows(model, real, start_scales=[0])
    harmonizer = SinGANSegHarmonize(model, donors=[(torch.zeros(1, 12, 10), torch.zeros(1, 12, 10))], prob=1.0)
    with pytest.raises(SinGANSegInputError, match="a plain model; harmonization injects"):
        harmonizer(torch.zeros(1, 12, 10))


def test_the_two_kinds_say_what_they_offer(nuclei_model):
    model = nuclei_model[0]
    assert (SinGANSeg.display_name, SinGANSeg.supports_injection, SinGANSeg.denoises) == ("SinGAN-Seg", True, False)
    assert (PairDiffusion.display_name, PairDiffusion.supports_injection, PairDiffusion.denoises) == (
        "diffusion", False, True)
    assert list(model.start_scales) == list(range(model.trained_scales)) and model.trained_scales > 1
    assert tuple(PairDiffusion(tiny_diffusion_config()).start_scales) == ()
