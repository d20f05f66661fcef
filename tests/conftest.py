"""Shared fixtures: an offline, isolated environment and the real config composed with tiny settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict, read_write

# Nothing in the suite may reach the network or the user's caches.
os.environ["WANDB_MODE"] = os.environ.get("WANDB_MODE", "disabled")
os.environ["TRANSLEARN_OFFLINE"] = "1"
os.environ.setdefault("HYDRA_FULL_ERROR", "0")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY = [
    "trainer=cpu",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "dataset.image_size=32",
    "dataset.batch_size=8",
    "dataset.num_workers=0",
    "model.weights=none",
]


@pytest.fixture(scope="session", autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Session-wide data/cache/TORCH_HOME under a temp dir (the shapes data is generated once)."""
    root = tmp_path_factory.mktemp("translearn-env")
    saved = {
        k: os.environ.get(k)
        for k in ("TRANSLEARN_DATA", "TRANSLEARN_CACHE", "TORCH_HOME", "TRANSLEARN_OUTPUTS")
    }
    os.environ["TRANSLEARN_DATA"] = str(root / "data")
    os.environ["TRANSLEARN_CACHE"] = str(root / "cache")
    os.environ["TORCH_HOME"] = str(root / "torch")
    os.environ["TRANSLEARN_OUTPUTS"] = str(root / "outputs")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """Compose the real train config with TINY + overrides, its run dir under tmp_path, as Hydra would."""
    from translearn.config import compose_config

    def make(*overrides: str, run_dir: Path | None = None) -> DictConfig:
        out = run_dir or tmp_path / "run"
        cfg = compose_config([*TINY, *overrides, f"hydra.run.dir={out}"], return_hydra_config=True)
        with read_write(cfg), open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(out)  # what Hydra's launcher sets for a real run
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # a task function never sees the hydra node
        out.mkdir(parents=True, exist_ok=True)
        return cfg

    yield make
    GlobalHydra.instance().clear()


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m translearn.train ARGS`` in a subprocess, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", "translearn.train", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Non-zero exit, no traceback, and one ``translearn: error:`` line containing every fragment."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("translearn: error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
