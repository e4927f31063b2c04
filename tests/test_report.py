"""``singanseg report`` and ``write_report`` on a tiny model trained on the real nuclei sample."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL
from PIL import Image

from monai_singanseg import SinGANSegInputError, read_image
from monai_singanseg.cli import main
from monai_singanseg.metrics import INCEPTION_WEIGHTS_ENV, InceptionStem
from monai_singanseg.report import REPORT_FILES, real_pair, write_report


@pytest.fixture
def no_inception_weights(tmp_path, monkeypatch):
    """A machine without Inception weights, whatever this one has."""
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))


def report_args(model_path, out, *more):
    return ["report", str(model_path), "--image", str(NUCLEI_IMAGE), "--label", str(NUCLEI_LABEL), "--out", str(out),
            "--num", "3", "--quiet", *more]


def test_cli_writes_every_file_and_records_missing_sifid(nuclei_model, tmp_path, no_inception_weights, capsys):
    model, path = nuclei_model
    out = tmp_path / "report"
    assert main(report_args(path, out)) == 0
    scales = range(model.trained_scales)
    for name in [f"grid_start_scale_{k}.png" for k in scales] + list(REPORT_FILES):
        assert (out / name).is_file(), name
    for name in ("grid_start_scale_0.png", "mask_mean_std.png", "foreground_fraction_hist.png"):
        width, height = Image.open(out / name).size
        assert width > 300 and height > 200
    report = json.loads((out / "metrics.json").read_text())
    assert report["sifid_available"] is False and INCEPTION_WEIGHTS_ENV in report["sifid_note"]
    assert list(report["start_scales"]) == [str(k) for k in scales]
    for metrics in report["start_scales"].values():
        assert {"sifid", "swd", "ms_ssim_diversity", "foreground_fraction", "memorisation",
                "foreground_histogram"} <= set(metrics)
        assert metrics["sifid"] is None and metrics["swd"]["mean"] > 0
        assert sum(metrics["foreground_histogram"]["counts"]) == 3
        assert 0.05 < metrics["foreground_fraction"]["real"] < 0.5  # the nuclei cover about a sixth of the crop
    table = (out / "metrics.md").read_text()
    assert "SIFID not computed" in table and all(f"\n| {k} | n/a |" in table for k in scales)
    assert "SIFID left out" in capsys.readouterr().out


def test_cli_reports_an_interrupted_model_at_its_last_trained_scale(tmp_path, no_inception_weights):
    # the training pair was compared at the finest scale of the pyramid, the samples came at the last trained one
    from conftest import tiny_config

    from monai_singanseg import SinGANSegTrainer, load_training_pair

    pair = load_training_pair([NUCLEI_IMAGE], NUCLEI_LABEL)
    path = tmp_path / "part.pt"
    model = SinGANSegTrainer(tiny_config(iters=2), progress=False, stop_after=1).fit(
        pair.real, pair.intensity, pair.labels, path)
    assert model.trained_scales == 1 < model.num_scales
    out = tmp_path / "report"
    assert main(report_args(path, out)) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["shape"] == list(model.shapes[0]) and list(report["start_scales"]) == ["0"]
    assert report["start_scales"]["0"]["swd"]["mean"] > 0


def test_cli_refuses_to_overwrite_a_report(nuclei_model, tmp_path, no_inception_weights, capsys):
    _, path = nuclei_model
    out = tmp_path / "report"
    assert main(report_args(path, out, "--start-scales", "1")) == 0
    before = (out / "metrics.json").read_text()
    assert main(report_args(path, out, "--start-scales", "1", "--seed", "5")) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == before
    assert main(report_args(path, out, "--start-scales", "1", "--seed", "5", "--overwrite")) == 0
    assert json.loads((out / "metrics.json").read_text())["seed"] == 5


def test_cli_sifid_with_a_weight_file_and_bad_start_scale(nuclei_model, tmp_path, capsys):
    _, path = nuclei_model
    weights = tmp_path / "inception.pth"
    torch.save(InceptionStem().state_dict(), weights)
    out = tmp_path / "report"
    assert main(report_args(path, out, "--start-scales", "0", "--inception-weights", str(weights))) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["sifid_available"] is True and report["start_scales"]["0"]["sifid"]["mean"] >= 0
    assert main(report_args(path, tmp_path / "bad", "--start-scales", "9")) == 2
    assert "start scales" in capsys.readouterr().err


def test_write_report_with_an_injected_extractor(nuclei_model, tmp_path):
    model, _ = nuclei_model
    image, label = read_image(NUCLEI_IMAGE), read_image(NUCLEI_LABEL)
    calls = []

    def extractor(x: torch.Tensor) -> torch.Tensor:  # any (N, 3, H, W) -> (N, F, h, w) callable
        calls.append(x.shape)
        return torch.nn.functional.avg_pool2d(x, 4)

    report = write_report(model, image, label, tmp_path, start_scales=[0], num_samples=2, extractor=extractor,
                          progress=False)
    assert calls and calls[0][1] == 3 and report["start_scales"]["0"]["sifid"]["mean"] > 0
    assert report["files"] == ["grid_start_scale_0.png", *REPORT_FILES]
    with pytest.raises(SinGANSegInputError, match="at least 2"):
        write_report(model, image, label, tmp_path / "one", num_samples=1)


def test_real_pair_matches_the_model_layout(nuclei_model, nuclei_pair):
    model, _ = nuclei_model
    real = real_pair(model, read_image(NUCLEI_IMAGE), read_image(NUCLEI_LABEL))
    assert real.shape == (1, 2, *model.shapes[-1])
    assert set(real[0, 1].unique().tolist()) == {-1.0, 1.0}  # the mask channel stays binary after resizing
    with pytest.raises(SinGANSegInputError, match="does not match"):
        real_pair(model, read_image(NUCLEI_IMAGE), torch.zeros(1, 8, 8))


def test_plots_leave_the_callers_matplotlib_backend_and_figures_alone(nuclei_model, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    from monai_singanseg.visualize import save_figure, save_pair_grid

    model, _ = nuclei_model
    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")  # a caller's choice other than Agg (one that also runs without a screen)
        plt.figure()  # and a figure the caller keeps open
        open_figures = plt.get_fignums()
        save_pair_grid(tmp_path / "grid.png", torch.rand(2, 1, 24, 24), (torch.rand(2, 1, 24, 24) > 0.5).float(),
                       title="two pairs")
        write_report(model, read_image(NUCLEI_IMAGE), read_image(NUCLEI_LABEL), tmp_path / "report",
                     start_scales=[0], num_samples=2, extractor=lambda x: x[:, :, ::4, ::4], progress=False)
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == open_figures
        assert Image.open(tmp_path / "grid.png").format == "PNG"
        assert Image.open(tmp_path / "report" / "grid_start_scale_0.png").format == "PNG"
        save_figure(plt.figure(), tmp_path / "pyplot.png")  # a pyplot figure is saved, then closed by pyplot
        assert plt.get_fignums() == open_figures and (tmp_path / "pyplot.png").exists()
    finally:
        plt.close("all")
        matplotlib.use(before)


def test_figures_save_headless_and_no_backend_is_chosen_on_the_callers_behalf(tmp_path):
    # a fresh process with no screen and no backend chosen: the setting must still read "not chosen" afterwards
    # (MONAI imports pyplot itself, which leaves it unresolved; the earlier matplotlib.use("Agg") pinned it)
    code = ("import matplotlib, torch\n"
            "from monai_singanseg.visualize import save_pair_grid\n"
            "unset = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
            f"save_pair_grid({str(tmp_path / 'grid.png')!r}, torch.rand(1, 1, 16, 16), torch.ones(1, 1, 16, 16))\n"
            "import matplotlib.pyplot as plt\n"
            "print(dict.__getitem__(matplotlib.rcParams, 'backend') is unset, plt.get_fignums())\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    done = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True []"  # backend untouched, no figure left open in pyplot
    assert Image.open(tmp_path / "grid.png").format == "PNG"


def test_reading_images_leaves_monai_loggers_alone(caplog):
    from monai_singanseg import io as singanseg_io

    logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level, filters = logger.level, list(logger.filters)
    logger.setLevel(logging.NOTSET)  # as an application that never touched it would have it
    singanseg_io._loader.cache_clear()  # build MONAI's loader anew: that is when its DICOM plugin speaks
    try:
        with caplog.at_level(logging.WARNING):
            assert read_image(NUCLEI_IMAGE).shape[0] == 1
        assert not [r for r in caplog.records if "nvImageCodec" in r.getMessage()]  # quieted while loading ...
        assert (logger.level, logger.filters) == (logging.NOTSET, filters)  # ... without changing the logger
    finally:
        logger.setLevel(level)
        singanseg_io._loader.cache_clear()
