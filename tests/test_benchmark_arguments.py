"""Bad arguments to the benchmark scripts stop with one line naming the option, before anything is measured or
written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_compile
import bench_time_to_quality


@pytest.mark.parametrize(("argv", "message"), [
    (["--size", "96", "--scales", "0", "9"], "--scales 9: max size 96 has 6 scales"),
    (["--modes", "fast"], "invalid choice: 'fast'"),
    (["--reps", "0"], "--size, --groups and --reps must be at least 1"),
])
def test_bench_compile_refuses_bad_arguments(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(bench_compile, "HERE", tmp_path)  # were anything written, it would land here
    with pytest.raises(SystemExit) as stop:
        bench_compile.main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.rglob("*"))


def test_bench_compile_needs_a_cuda_device_for_cuda(capsys, monkeypatch):
    monkeypatch.setattr(bench_compile.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        bench_compile.main(["--device", "cuda"])
    assert "--device cuda: this torch sees no CUDA device" in capsys.readouterr().err


def test_timing_only_names_a_config_that_exists(monkeypatch, tmp_path):
    timings = tmp_path / "timings.json"
    monkeypatch.setattr(bench_time_to_quality, "TIMINGS", timings)
    args = argparse.Namespace(only="nope/", threads=1, device="cpu", again=False, measure=1)
    with pytest.raises(SystemExit, match=r"timing --only 'nope/': no run's config starts with it"):
        bench_time_to_quality.timing(args)
    assert not timings.exists()
