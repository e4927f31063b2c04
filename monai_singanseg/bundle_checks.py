"""Checks that MONAI bundle configs run first (their ``initialize``), so a missing prerequisite ends in one line.

``python -m monai.bundle run`` wraps every error raised while a component is built in a ``RuntimeError`` and prints
the whole chain (about 70 lines for a missing folder). A check here raises :class:`SystemExit` with the message
instead: Python prints it as one line and exits with status 1, and MONAI's expression evaluation (which re-raises
``Exception`` only) lets it through.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["GENERATION_TRAIN", "check_whole", "one_line", "quiet_nvimgcodec", "require_generation_models"]

T = TypeVar("T")

GENERATION_TRAIN = "bundles/singanseg_generation/configs/train.json"
"""The generation bundle's training config, as the segmentation bundle's docs run it (from the repository root)."""


def require_generation_models(models: str | os.PathLike, needed: bool = True) -> None:
    """Stop with one line when the SinGAN-Seg models the segmentation bundle draws synthetic pairs from are missing.

    Args:
        models: a folder of ``*.pt`` checkpoints (what the generation bundle writes) or one checkpoint file.
        needed: ``False`` when no synthetic pair will be drawn (the baseline, ``augment_prob`` 0): nothing is checked.

    Raises:
        SystemExit: naming the folder and the step to run first.
    """
    if not needed:
        return
    path = Path(models)
    if path.is_file() or (path.is_dir() and any(path.glob("*.pt"))):
        return
    what = "no such folder" if not path.exists() else "no SinGAN-Seg models (*.pt) in it"
    raise SystemExit(f"{path}: {what}; run the generation bundle first (python -m monai.bundle run --config_file "
                     f"{GENERATION_TRAIN}), or pass --synthetic_models DIR, or --augment_prob 0 for the baseline "
                     "without synthetic pairs.")


def one_line(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)``, with its :class:`~monai_singanseg.errors.SinGANSegInputError` (bad input: a
    file, an option) turned into :class:`SystemExit` with the same message, so a bundle's ``run`` step that calls the
    library ends in that one line instead of MONAI's wrapped traceback.

    Raises:
        SystemExit: the message of the library's input error.
    """
    from monai_singanseg.errors import SinGANSegInputError

    try:
        return function(*args, **kwargs)
    except SinGANSegInputError as err:
        raise SystemExit(str(err)) from err


def check_whole(option: str, value: Any, minimum: int, meaning: str) -> None:
    """Stop with one line naming the bundle option ``--option`` unless ``value`` is a whole number >= ``minimum``
    (the library's own check names its parameter, e.g. ``num_samples``, which the bundle's user never set).

    Raises:
        SystemExit: naming ``--option``, its value and what it means.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SystemExit(f"--{option} {value!r}: {meaning}, a whole number of at least {minimum}.")


NVIMGCODEC_LOGGER = "monai.data.nvimgcodec_pydicom_plugin"
NVIMGCODEC_NOTICES = ("nvImageCodec is not available",
                      "NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register")
"""MONAI's two notices, when its ``LoadImaged`` is built on a machine without nvImageCodec (its GPU DICOM decoder):
a logging record, then a warning. Expected on every such machine, so they say nothing."""


def quiet_nvimgcodec() -> None:
    """Drop MONAI's two nvImageCodec notices (:data:`NVIMGCODEC_NOTICES`) for the rest of this bundle run, as the
    command line does around its own loader (``monai_singanseg.io``). Other records of that logger and every other
    warning, that reader's other ones included, still show. Safe to call more than once.
    """
    from monai_singanseg.io import _DropMessages

    logger = logging.getLogger(NVIMGCODEC_LOGGER)
    if not any(isinstance(f, _DropMessages) and f.text == NVIMGCODEC_NOTICES[0] for f in logger.filters):
        logger.addFilter(_DropMessages(NVIMGCODEC_NOTICES[0]))
    warnings.filterwarnings("ignore", message=NVIMGCODEC_NOTICES[1])
