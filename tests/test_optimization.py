"""Optimizers and LR schedulers are torch classes named in the config; translearn only builds the groups."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from test_strategies import WARMUP_COSINE, make_module
from translearn.config import CONFIG_DIR
from translearn.errors import UserError
from translearn.module import TransferModule
from translearn.strategies import Finetune, Gradual


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "model" / group).glob("*.yaml"))


def test_every_optimizer_and_scheduler_option_builds_its_torch_class(compose_cfg) -> None:
    """model/optimizer=X model/scheduler=Y: the class the YAML names, on the plan's groups."""
    assert options("optimizer") == ["adamw", "sgd"]
    assert options("scheduler") == ["cosine", "none", "step", "warmup_cosine"]
    policy = Gradual(epochs=[1])
    built = {}
    for opt, sched in zip(["sgd", "adamw", "sgd", "adamw"], options("scheduler"), strict=True):
        cfg = compose_cfg(f"model/optimizer={opt}", f"model/scheduler={sched}", "trainer.max_epochs=7")
        model = instantiate(cfg.model, policy=policy, num_classes=3, in_chans=3)
        config = model.configure_optimizers()
        optimizer, scheduler = config["optimizer"], config.get("lr_scheduler", {}).get("scheduler")
        built[sched] = (type(optimizer).__name__, type(scheduler).__name__ if scheduler else None)
        groups = {g["name"]: g for g in optimizer.param_groups}
        assert groups["head"]["initial_lr" if scheduler else "lr"] == 0.001
        assert groups["layer4"]["weight_decay"] == cfg.model.optimizer.weight_decay
        assert groups["layer4/no_decay"]["weight_decay"] == 0.0
        if sched == "cosine":
            assert scheduler.T_max == 7  # ${trainer.max_epochs}
    assert built == {
        "cosine": ("SGD", "CosineAnnealingLR"),
        "none": ("AdamW", None),
        "step": ("SGD", "StepLR"),
        "warmup_cosine": ("AdamW", "SequentialLR"),
    }


def test_overrides_reach_the_groups(compose_cfg) -> None:
    """model.optimizer.lr/weight_decay/momentum as before; strategy.lr_decay multiplies each stage's lr."""
    cfg = compose_cfg(
        "model.optimizer.lr=0.1", "model.optimizer.weight_decay=0.001", "model.optimizer.momentum=0.5",
        "model.optimizer.nesterov=true", "model.decay_norm_and_bias=true", "strategy.lr_decay=0.5",
    )  # fmt: skip
    model = instantiate(cfg.model, policy=instantiate(cfg.strategy), num_classes=3, in_chans=3)
    optimizer = model.configure_optimizers()["optimizer"]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert "layer4/no_decay" not in groups  # decay_norm_and_bias: one group per stage
    assert groups["head"]["lr"] == 0.1 and groups["layer4"]["lr"] == 0.05 and groups["layer3"]["lr"] == 0.025
    assert all(g["weight_decay"] == 0.001 and g["momentum"] == 0.5 and g["nesterov"] for g in groups.values())


def test_warmup_cosine_follows_torchvision_and_survives_a_checkpoint() -> None:
    """LinearLR then CosineAnnealingLR under SequentialLR; a restored state continues the same curve.

    What Lightning does on resume: configure_optimizers anew, then load both state dicts.
    """

    def build() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        module = make_module("resnet18", Finetune(), scheduler=WARMUP_COSINE)
        config = module.configure_optimizers()
        return config["optimizer"], config["lr_scheduler"]["scheduler"]

    optimizer, scheduler = build()
    head = next(i for i, g in enumerate(optimizer.param_groups) if g["name"] == "head")
    curve = []
    for _ in range(6):
        curve.append(optimizer.param_groups[head]["lr"])
        optimizer.step()
        scheduler.step()
    lr, floor = 0.05, 0.001
    cosine = [floor + (lr - floor) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert curve == pytest.approx([lr * 0.5, lr * 0.75, *cosine])

    optimizer, scheduler = build()
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    saved = optimizer.state_dict(), scheduler.state_dict()
    optimizer, scheduler = build()
    optimizer.load_state_dict(saved[0])
    scheduler.load_state_dict(saved[1])
    resumed = []
    for _ in range(3):
        resumed.append(optimizer.param_groups[head]["lr"])
        optimizer.step()
        scheduler.step()
    assert resumed == curve[3:]


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "fragments"),
    [
        ({"_target_": "torch.optim.Nope"}, None, ("model.optimizer._target_=torch.optim.Nope", "Optimizer")),
        ({"_target_": "torch.nn.Linear"}, None, ("is not a torch.optim.Optimizer class",)),
        ({"name": "sgd", "lr": 0.1}, None, ("model.optimizer must name a torch class with _target_",)),
        (
            {"_target_": "torch.optim.AdamW", "momentum": 0.9},
            None,
            ("unknown key model.optimizer.momentum", "AdamW takes no 'momentum'", "betas"),
        ),
        (None, {"_target_": "torch.optim.SGD"}, ("model.scheduler._target_=torch.optim.SGD", "LRScheduler")),
        (None, {"_target_": "torch.optim.lr_scheduler.StepLR"}, ("model.scheduler", "step_size")),
        (
            None,
            {**WARMUP_COSINE, "schedulers": [{"_target_": "torch.optim.lr_scheduler.Nope"}]},
            ("model.scheduler.schedulers.0._target_=torch.optim.lr_scheduler.Nope",),
        ),
    ],
)
def test_bad_optimizer_or_scheduler_is_a_user_error(optimizer, scheduler, fragments) -> None:
    module = TransferModule(
        "resnet18", weights="none", num_classes=3, optimizer=optimizer, scheduler=scheduler
    )
    with pytest.raises(UserError) as err:
        module.configure_optimizers()
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


@pytest.mark.slow
def test_lr_monitor_logs_every_stage_of_a_gradual_adamw_warmup_run(compose_cfg, tmp_path: Path) -> None:
    from translearn.train import run

    cfg = compose_cfg(
        "strategy=gradual", "strategy.lr_decay=0.5", "model/optimizer=adamw", "model/scheduler=warmup_cosine",
        "model.scheduler.milestones=[2]", "trainer.max_epochs=3",
    )  # fmt: skip
    metrics = run(cfg)
    assert metrics["epochs"] == 3
    with open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("lr-AdamW/head")]
    head = [float(r["lr-AdamW/head"]) for r in rows]
    layer4 = [float(r["lr-AdamW/layer4"]) for r in rows]
    # warm-up from 1% over 2 epochs (total_iters follows milestones[0]), then the cosine's first epoch
    assert head == pytest.approx([1e-5, 1e-3 * (0.01 + 0.99 / 2), 1e-3])
    assert layer4 == pytest.approx([lr * 0.5 for lr in head])
