"""The trainers' base: a new generator's trainer derives from GeneratorTrainer and gets the handler order, the
progress bar, stop_after, old-style function handlers and bit-identical resuming; config differences are records."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from conftest import tiny_config, tiny_diffusion_config
from ignite.engine import Engine, Events

from monai_singanseg import SinGANSegConfig, SinGANSegTrainer
from monai_singanseg.diffusion import DiffusionTrainer
from monai_singanseg.files import atomic_write
from monai_singanseg.training import (
    UNSET,
    CallHandler,
    CheckpointWriter,
    ConfigDifference,
    GeneratorTrainer,
    config_differences,
    fingerprint,
)
from monai_singanseg.training.seeds import stream_seed


@dataclass
class ToyConfig:
    """A config as the trainers' base expects one: ``validate()`` and ``to_dict()``."""

    train_steps: int = 12
    checkpoint_every: int = 5
    seed: int = 0
    lr: float = 0.1
    extra: dict = field(default_factory=dict)

    def validate(self) -> ToyConfig:
        return self

    def to_dict(self) -> dict:
        return {"train_steps": self.train_steps, "checkpoint_every": self.checkpoint_every, "seed": self.seed,
                "lr": self.lr, "extra": dict(self.extra)}


class ToyStep:
    """One step: a noisy pull of the weight towards the data's mean, every draw seeded by ``(seed, step)``."""

    def __init__(self, weight: torch.Tensor, data: torch.Tensor, config: ToyConfig) -> None:
        self.weight, self.data, self.config = weight, data, config

    def __call__(self, engine: Engine, step: int) -> dict[str, torch.Tensor]:
        rng = torch.Generator().manual_seed(stream_seed("toy", self.config.seed, step))
        target = self.data.mean() + 0.1 * torch.randn((), generator=rng)
        self.weight.add_(self.config.lr * (target - self.weight))
        return {"loss": (target - self.weight) ** 2}


class ToyTrainer(GeneratorTrainer):
    """The shape a new generator's trainer takes (docs/design.md, "The trainers")."""

    def fit(self, data: torch.Tensor, checkpoint, resume: bool = False) -> torch.Tensor:
        if resume:
            stored = torch.load(checkpoint, weights_only=False)
            if stored["fingerprint"] != fingerprint(data):
                raise ValueError("other data")
            self.warn_kept_options(checkpoint, stored["config"], self.config, ("train_steps",))
            weight, done = stored["weight"], stored["step"]
        else:
            weight, done = torch.zeros(()), 0

        def write(engine: Engine) -> None:
            payload = {"weight": weight.clone(), "step": done + engine.state.iteration, "config": self.config,
                       "fingerprint": fingerprint(data)}
            atomic_write(checkpoint, lambda tmp: torch.save(payload, tmp))

        with self.open_log() as board:
            engine = self.engine(ToyStep(weight, data, self.config), "toy",
                                 own=[CheckpointWriter(write, self.config.checkpoint_every, first_step=done)],
                                 board=board)
            self.run(engine, range(done, self.last_unit(self.config.train_steps)), lambda e, _s: write(e))
        return weight


def test_a_toy_generator_trainer_derives_from_the_base_and_resumes_bit_for_bit(tmp_path):
    data = torch.arange(6.0)
    whole = ToyTrainer(ToyConfig(), progress=False).fit(data, tmp_path / "whole.pt")
    part = ToyTrainer(ToyConfig(), progress=False, stop_after=7).fit(data, tmp_path / "part.pt")
    assert torch.load(tmp_path / "part.pt", weights_only=False)["step"] == 7 and not torch.equal(part, whole)
    resumed = ToyTrainer(ToyConfig(), progress=False).fit(data, tmp_path / "part.pt", resume=True)
    assert torch.equal(resumed, whole)
    with pytest.raises(ValueError, match="other data"):
        ToyTrainer(ToyConfig(), progress=False).fit(data + 1, tmp_path / "part.pt", resume=True)


def test_handlers_attach_in_order_own_progress_user_board_and_functions_get_the_context():
    order: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def attach(self, engine: Engine) -> None:
            order.append(self.name)

    trainer = ToyTrainer(ToyConfig(), progress=False,
                         handlers=[Named("user object"), lambda engine, scale: order.append(f"function {scale}")])
    engine = trainer.engine(lambda e, b: b, "toy", own=[Named("own")], context=(3,), board=Named("board"),
                            state={"seen": 1})
    assert order == ["own", "user object", "function 3", "board"] and engine.state.seen == 1
    # a progress bar only when asked for (on a terminal only with terminal_only)
    with_bar = ToyTrainer(ToyConfig(), progress=True).engine(lambda e, b: b, "toy")
    assert len(with_bar._event_handlers[Events.ITERATION_COMPLETED]) > 0
    bare = ToyTrainer(ToyConfig(), progress=True).engine(lambda e, b: b, "toy", terminal_only=True)
    assert len(bare._event_handlers[Events.ITERATION_COMPLETED]) == 0  # pytest's stderr is not a terminal


def test_checkpoint_writer_counts_steps_across_resumes():
    written: list[int] = []
    engine = Engine(lambda e, b: b)
    CheckpointWriter(lambda e: written.append(3 + e.state.iteration), every=5, first_step=3).attach(engine)
    engine.run(range(3, 17), max_epochs=1)
    assert written == [5, 10, 15]  # the steps of an uninterrupted run, not 3 + 5k
    calls: list[tuple] = []
    CallHandler(lambda engine, *context: calls.append(context), 2, "x").attach(engine)
    assert calls == [(2, "x")]


def test_config_differences_are_records_whose_text_is_what_users_saw():
    stored, asked = tiny_config(), tiny_config()
    asked.pyramid.max_size, asked.seed = 40, 9
    differences = config_differences(stored, asked)
    assert differences == [ConfigDifference("pyramid.max_size", 32, 40), ConfigDifference("seed", 7, 9)]
    assert [str(d) for d in differences] == ["pyramid.max_size: 32 kept (asked 40)", "seed: 7 kept (asked 9)"]
    # a field on one side only (the coarse scales' overrides are free-form): 'unset', as the messages always said
    fast, faithful = (SinGANSegConfig.for_schedule(s, image_channels=1) for s in ("fast", "faithful"))
    one_side = next(d for d in config_differences(fast, faithful) if d.field == "optim.coarse.iters_per_scale")
    assert one_side.asked is UNSET and str(one_side) == "optim.coarse.iters_per_scale: 2000 kept (asked 'unset')"
    # the diffusion config too: a caller picks fields by path, never by parsing the text
    longer = tiny_diffusion_config(train_steps=20, lr=1e-3)
    fields = [d.field for d in config_differences(tiny_diffusion_config(), longer)]
    assert "train_steps" in fields and "lr" in fields


def test_both_trainers_take_handler_objects_beside_functions(tmp_path, nuclei_pair):
    attached: list[str] = []

    class CountSteps:
        def __init__(self) -> None:
            self.steps = 0

        def attach(self, engine: Engine) -> None:
            attached.append("object")
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.count)

        def count(self, _engine: Engine) -> None:
            self.steps += 1

    counter = CountSteps()
    SinGANSegTrainer(tiny_config(iters=2), progress=False, stop_after=2,
                     handlers=[counter, lambda engine, scale: attached.append(f"scale {scale}")]).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "s.pt")
    assert attached == ["object", "scale 0", "object", "scale 1"] and counter.steps == 4
    steps = CountSteps()
    DiffusionTrainer(tiny_diffusion_config(train_steps=3), progress=False, handlers=[steps]).fit(
        [nuclei_pair.real[:, :48, :48]], tmp_path / "d.pt")
    assert steps.steps == 3
