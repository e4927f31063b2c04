"""Public names imported on first use (PEP 562), for the package and its subpackages: ``import
monai_singanseg.cli`` (``singanseg --help``) does not pay for torch and MONAI, and ``from monai_singanseg import
SinGANSegAugmentd`` works as before. Imports nothing of the package.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, sources: Mapping[str, Sequence[str]],
               prefix: str = "") -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` of the package named ``package``: each public name of ``sources`` (``{module:
    names}``, the module imported as ``prefix + module``) imported from its module on first use and kept in the
    package; ``__dir__`` lists the package's names and its ``__all__``.

    Example:
        >>> __getattr__, __dir__ = lazy_names(__name__, {"model": ("PairStyleGAN",)}, f"{__name__}.")  # doctest: +SKIP
    """
    module_of = {name: module for module, names in sources.items() for name in names}

    def __getattr__(name: str) -> Any:
        """A public name, imported from its module on first use and kept."""
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(prefix + module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        namespace = vars(sys.modules[package])
        return sorted({*namespace, *namespace.get("__all__", ())})

    return __getattr__, __dir__
