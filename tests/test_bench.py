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
    assert "bare Lightning ÷ plain" in out and "speed-up computing" in out
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
