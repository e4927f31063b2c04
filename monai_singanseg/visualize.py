"""Pictures people would rather look at than read: grids of image + mask pairs (matplotlib, headless).

Figures are bare :class:`matplotlib.figure.Figure` objects on an Agg canvas: they render and save without a screen,
and never select, switch or touch pyplot's backend or its list of open figures, so a notebook or a GUI application
that imports this package keeps its own backend.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_singanseg.files import atomic_write

__all__ = ["HeadlessFigures", "display_slice", "new_figure", "pyplot", "save_figure", "save_pair_grid"]

# keyword arguments of pyplot.subplots that go to the axes grid; the others go to the figure
_GRID_ARGS = ("sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw", "gridspec_kw")


def new_figure(**figure_kw: Any):
    """A :class:`~matplotlib.figure.Figure` with its own Agg canvas (``figsize``, ``dpi``, ... as in ``Figure``).

    Unlike ``pyplot.figure`` it selects no backend and is not registered with pyplot, so it never shows up in a
    notebook, needs no ``close`` and leaves the caller's matplotlib state alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**figure_kw)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas: rendering to PNG works without any backend
    return fig


class HeadlessFigures:
    """The part of ``matplotlib.pyplot`` this package's plots use (``figure``, ``subplots``, ``close``), returning
    bare Agg figures (:func:`new_figure`) instead of pyplot-managed ones."""

    @staticmethod
    def figure(**figure_kw: Any):
        """A new headless figure, as :func:`new_figure`."""
        return new_figure(**figure_kw)

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
        """``(figure, axes)`` like ``pyplot.subplots``: grid options go to the axes, the rest to the figure."""
        fig = new_figure(**{k: v for k, v in kwargs.items() if k not in _GRID_ARGS})
        return fig, fig.subplots(nrows, ncols, **{k: v for k, v in kwargs.items() if k in _GRID_ARGS})

    @staticmethod
    def close(fig) -> None:
        """Release ``fig``: pyplot's own figures are closed by pyplot; headless ones need nothing."""
        plt = sys.modules.get("matplotlib.pyplot")  # never import pyplot here: importing it resolves a backend
        if plt is not None and getattr(fig.canvas, "manager", None) is not None:
            plt.close(fig)


def pyplot() -> HeadlessFigures:
    """A pyplot-like maker of headless figures (:class:`HeadlessFigures`): ``fig, axes = pyplot().subplots(...)``.

    Figures render without a screen (servers, CI) and the caller's matplotlib backend stays as it was; the name is
    kept for code written against the earlier version, which returned ``matplotlib.pyplot`` on the Agg backend.
    """
    return HeadlessFigures()


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Render ``fig`` to PNG in memory, close it, then write ``path`` atomically (no half-written picture).

    ``fig`` may be a headless figure from this module or a pyplot figure (closed through pyplot afterwards).
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    HeadlessFigures.close(fig)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))


def display_slice(image: torch.Tensor | np.ndarray, lower: Sequence[float] | None = None,
                  upper: Sequence[float] | None = None) -> np.ndarray:
    """A displayable ``(H, W)`` or ``(H, W, 3)`` array in ``[0, 1]`` from a channel-first MONAI array.

    2D arrays are ``(C, W, H)`` (MONAI's PNG layout) and are transposed back; 3D arrays show their middle slice
    along the last axis. Three channels show as RGB, any other count shows its first channel.
    """
    a = np.asarray(torch.as_tensor(image).detach().cpu().float().numpy())
    if a.ndim == 4:
        a = a[..., a.shape[-1] // 2]
    a = a[:3] if a.shape[0] == 3 else a[:1]
    lo = np.asarray(lower if lower is not None else a.reshape(a.shape[0], -1).min(1), dtype=np.float32)
    hi = np.asarray(upper if upper is not None else a.reshape(a.shape[0], -1).max(1), dtype=np.float32)
    lo, hi = lo[: a.shape[0]], hi[: a.shape[0]]
    a = (a - lo[:, None, None]) / np.maximum(hi - lo, 1e-8)[:, None, None]
    a = np.clip(a, 0.0, 1.0).transpose(2, 1, 0)  # (C, W, H) -> (H, W, C)
    return a[..., 0] if a.shape[-1] == 1 else a


def save_pair_grid(
    path: str | os.PathLike,
    images: torch.Tensor,
    labels: torch.Tensor,
    real: tuple[torch.Tensor, torch.Tensor] | None = None,
    columns: int = 4,
    title: str | None = None,
    intensity_range: tuple[Sequence[float], Sequence[float]] | None = None,
    names: Sequence[str] | None = None,
) -> None:
    """Write a PNG grid: each pair as the image with its mask outlined, the real pair first when given.

    Args:
        path: output PNG (written atomically).
        images: ``(N, C, *spatial)`` in the image's units. labels: ``(N, 1, *spatial)``.
        real: the training image and label ``(C, *spatial)``, ``(1, *spatial)``, shown first and framed.
        columns: pairs per row.
        title: figure title.
        intensity_range: per-channel (lower, upper) display range; by default each panel's own min/max.
        names: one title per sample (default ``sample i``).
    """
    plt = pyplot()
    names = list(names) if names is not None else [f"sample {i}" for i in range(images.shape[0])]
    pairs = [(images[i], labels[i], names[i]) for i in range(images.shape[0])]
    if real is not None:
        pairs.insert(0, (real[0], real[1], "real"))
    columns = min(columns, len(pairs))
    rows = (len(pairs) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows + (0.4 if title else 0)), squeeze=False)
    lower, upper = intensity_range if intensity_range is not None else (None, None)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (image, label, name) in zip(axes.ravel(), pairs):
        shown = display_slice(image, lower, upper)
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
        mask = display_slice(label, [0.0], [max(float(torch.as_tensor(label).max()), 1e-8)])
        if mask.max() > 0:
            ax.contour(mask > 0.5, levels=[0.5], colors=["#ffcc00"], linewidths=0.8)
        ax.set_title(name, fontsize=9, color="#c00000" if name == "real" else "black")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
