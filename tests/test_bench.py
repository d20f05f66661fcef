"""The benchmark code runs (at toy size): benchmarks are not tests, but they must not rot."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.bench
@pytest.mark.slow
def test_bench_runs_at_toy_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import bench

    assert bench.main(["--toy", "--out", str(tmp_path / "RESULTS.md")]) == 0
    out = capsys.readouterr().out
    assert "| finetune |" in out and "| freeze |" in out and "translearn ÷ plain" in out
    assert "bare Lightning ÷ plain" in out and "speed-up computing" in out and "| 95% interval |" in out
    assert "| 32 px | 1 |" in out and "| 40 px | 2 |" in out  # each cache row at its own epoch count
    assert not (tmp_path / "RESULTS.md").exists()  # toy figures are never written as results


@pytest.mark.bench
@pytest.mark.slow
def test_gpu_benchmark_runs_at_toy_size_on_a_cpu(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import gpu

    assert gpu.main(["--toy", "--out", str(tmp_path / "RESULTS-gpu.md"), "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| resnet50 | 8 | bf16 + channels_last + compile |" in out
    # the 2017 grid's 16 cells, each printed as it finishes and again in the final table
    assert out.count("| freeze |") == 16 and out.count("| finetune |") == 16
    assert not (tmp_path / "RESULTS-gpu.md").exists()


@pytest.mark.bench
@pytest.mark.slow
def test_parts_benchmark_runs_at_toy_size(capsys: pytest.CaptureFixture) -> None:
    import parts

    assert parts.main(["--toy"]) == 0
    out = capsys.readouterr().out
    assert "| data ms/img |" in out and "| step ms |" in out


@pytest.mark.bench
@pytest.mark.slow
def test_cpu_bf16_benchmark_runs_at_toy_size(capsys: pytest.CaptureFixture) -> None:
    import bf16_cpu

    assert bf16_cpu.main(["--toy"]) == 0
    out = capsys.readouterr().out
    assert "| bf16 ÷ fp32 |" in out and "| finetune 32 px |" in out
    assert "| cached, bf16 build |" in out and "| cached, fp32 build |" in out


def test_the_accuracy_difference_is_paired_seed_by_seed() -> None:
    import bench

    # Seed 0 is hard for both modes and seed 1 easy: unpaired, the spread of each mode is 0.2; paired, the
    # difference is a steady +0.01 and the interval collapses onto it.
    scores = {"val-false": [0.5, 0.7, 0.6], "val-true": [0.51, 0.71, 0.61]}
    slow, fast, diff, se, half = bench.paired(scores, "val")
    assert (slow, fast) == pytest.approx((0.6, 0.61)) and diff == pytest.approx(0.01)
    assert se == pytest.approx(0.0, abs=1e-12) and half == pytest.approx(0.0, abs=1e-12)
    # Differences +0.02, 0.00, +0.01: mean 0.01, sd 0.01, SE 0.01/sqrt(3), t(2 df) = 4.30.
    scores = {"test-false": [0.5, 0.7, 0.6], "test-true": [0.52, 0.70, 0.61]}
    _, _, diff, se, half = bench.paired(scores, "test")
    assert diff == pytest.approx(0.01) and se == pytest.approx(0.01 / 3**0.5)
    assert half == pytest.approx(4.30 * 0.01 / 3**0.5)
    assert bench.paired({"val-false": [0.5], "val-true": [0.6]}, "val")[3:] == (0.0, 0.0)  # one seed


def test_the_ratio_interval_is_a_t_interval_on_the_logarithms() -> None:
    import math

    import bench

    # Ratios 0.95, 1.0, 1/0.95: logs -l, 0, +l, mean 0, sd l, SE l/sqrt(3), t(2 df) = 4.30.
    lo, hi = bench.ratio_interval([0.95, 1.0, 1 / 0.95])
    half = 4.30 * -math.log(0.95) / 3**0.5
    assert (lo, hi) == pytest.approx((math.exp(-half), math.exp(half)))
    assert bench.ratio_interval([0.98, 0.98]) == pytest.approx((0.98, 0.98))  # no spread: the ratio
    assert bench.ratio_interval([1.02]) == pytest.approx((1.02, 1.02))  # one pair: no interval to draw


@pytest.mark.bench
def test_a_bench_run_refuses_a_folder_that_exists(tmp_path: Path) -> None:
    import bench

    # A reused run folder brings its feature cache along, and a "fresh" build then takes no time.
    with pytest.raises(RuntimeError, match="exists"):
        bench.translearn_run(tmp_path, tmp_path, 32, 1, 4, "freeze", 1)
