"""The surface both generators share: the PairGenerator base, the registry of kinds, one checkpoint envelope, one
check of a stacked pair."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_diffusion_config

from monai_singanseg.checkpoint_envelope import check_complete, load_weights_only
from monai_singanseg.diffusion import PairDiffusion
from monai_singanseg.diffusion.checkpoint_format import DiffusionTrainingState
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PAIR_VALUE_TOLERANCE, PairGenerator, check_pair_values
from monai_singanseg.generators import GENERATOR_KINDS, GENERATORS, checkpoint_kind, load_generator
from monai_singanseg.networks import SinGANSeg
from monai_singanseg.networks.checkpoint_format import TrainingState
from monai_singanseg.stylegan import PairStyleGAN


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
