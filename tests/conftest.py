"""Shared fixtures: an offline, isolated environment and the real config composed with tiny settings."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict, read_write

from helpers import TINY

# Nothing in the suite may reach the network or the user's caches.
os.environ["WANDB_MODE"] = os.environ.get("WANDB_MODE", "disabled")
os.environ["TRANSLEARN_OFFLINE"] = "1"
os.environ.setdefault("HYDRA_FULL_ERROR", "0")
# Intra-op threads: the cores shared out among the xdist workers, at most 2. Two threads in each of `make
# test`'s 2 workers on 2 cores oversubscribed them, and OpenMP's spin-waiting made test_strategies.py run
# in 261 s instead of 15 (the whole suite 767 s instead of 378); one process alone runs best with 2.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _workers)))
# Ctrl-C as a terminal delivers it. A shell starts a background job (`make test &`, as some CI runners do)
# with SIGINT ignored, and Python then leaves it ignored, in pytest's workers and in every run they start:
# the Ctrl-C tests' runs trained on through their SIGINT (3 failed under `make test &`, depending on which
# worker ran them).
signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.passed_call = report.passed  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _free_disk(request: pytest.FixtureRequest) -> Iterator[None]:
    """A passed test's tmp_path goes at once: runs leave 45 MB checkpoints, 13 GB over the whole suite."""
    path = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if path is not None and getattr(request.node, "passed_call", False):
        shutil.rmtree(path, ignore_errors=True)
