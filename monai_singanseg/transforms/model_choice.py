"""Which model of a bank makes a sample's synthetic pair: the one trained on it (by name), or a drawn one."""

from __future__ import annotations

from typing import Any

from monai.utils import look_up_option

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.transforms.model_bank import ModelBank

__all__ = ["MODEL_CHOICES", "ON_MISSING", "ModelChoice", "sample_name_or_none"]

MODEL_CHOICES = ("matched", "random")
ON_MISSING = ("error", "skip")
_MAX_NAME_LENGTH = 255  # longest file name most file systems allow: anything longer is not a sample's name


def sample_name_or_none(name: Any) -> str | None:
    """``name`` when it can name a sample, else ``None``.

    A data dictionary whose ``model_key`` holds pixels (a plain array or tensor, no file name) hands over the
    array's printout as the name; that must read as "no name", never be echoed into an error message.
    """
    if not isinstance(name, str) or "\n" in name or len(name) > _MAX_NAME_LENGTH:
        return None
    return name


class ModelChoice:
    """Picks a sample's model from a bank.

    Args:
        bank: the models.
        model_choice: ``"matched"`` (the model named like the sample; a bank of one serves every sample) or
            ``"random"`` (the drawn one).
        on_missing: with ``"matched"``, a sample with no model raises (``"error"``) or passes through (``"skip"``).
    """

    def __init__(self, bank: ModelBank, model_choice: str = "matched", on_missing: str = "error") -> None:
        self.bank = bank
        self.model_choice = look_up_option(model_choice, MODEL_CHOICES)
        self.on_missing = look_up_option(on_missing, ON_MISSING)

    def where(self, name: str) -> Any:
        """What messages call the model ``name``: its checkpoint's path, or its name for a loaded model."""
        return self.bank.path(name) or name

    def select(self, name: str | None, drawn: str) -> tuple[str, PairGenerator] | None:
        """``(model name, model)`` for a sample named ``name``, ``drawn`` the bank's name drawn for this call.

        Returns:
            ``None`` when the sample has no model and ``on_missing="skip"``.

        Raises:
            SinGANSegInputError: no model matches (or no name to match by) and ``on_missing="error"``.
        """
        if self.model_choice == "random":
            return drawn, self.bank.get(drawn)
        name = sample_name_or_none(name)
        if name is not None and name in self.bank:
            return name, self.bank.get(name)
        if len(self.bank) == 1:  # matching by name is for banks; one model serves every sample
            only = self.bank.names[0]
            return only, self.bank.get(only)
        if self.on_missing == "skip":
            return None
        models = f"models: {', '.join(self.bank.names[:5])}{', ...' if len(self.bank) > 5 else ''}"
        if name is None:
            raise SinGANSegInputError(
                f"model_choice='matched' found no sample name to match a model by ({models}): pass name= to "
                "SinGANSegAugment, or give SinGANSegAugmentd a model_key holding the image's file path or a "
                "MetaTensor with 'filename_or_obj' in its meta; else use model_choice='random'."
            )
        raise SinGANSegInputError(
            f"no SinGAN-Seg model for sample {name!r} ({models}); train one, use model_choice='random', "
            "or on_missing='skip'."
        )
