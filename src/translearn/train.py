"""The Hydra entry point: compose → instantiate → fit → test → ``metrics.json``.

python -m translearn.train                                   # the embedded offline default
python -m translearn.train dataset=hymenoptera strategy=freeze
python -m translearn.train -m dataset=simpsons,caltech256 strategy=finetune,freeze
python -m translearn.train --help                            # every config group and knob
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from translearn.config import register_resolvers, validate_command_line
from translearn.errors import UserError, exit_with
from translearn.pretrain import resolve_weights

register_resolvers()


def run(cfg: DictConfig) -> dict[str, Any]:
    """One training run of a composed config; returns what it writes to ``metrics.json``."""
    out = Path(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.dataset)
    policy = instantiate(cfg.strategy)
    model = instantiate(cfg.model, policy=policy, weights=resolve_weights(cfg))
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        train_seconds = time.perf_counter() - start
        if trainer.interrupted:
            raise UserError(
                "training was interrupted; rerun with ckpt_path=last and the same hydra.run.dir to resume"
            )
        fitted = {k: float(v) for k, v in trainer.callback_metrics.items()}
        epochs = trainer.current_epoch
        tested: dict[str, float] = {}
        if datamodule.has_split("test"):
            best = "best" if getattr(trainer.checkpoint_callback, "best_model_path", "") else None
            tested = trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
    finally:
        _finish_wandb()

    checkpoint = trainer.checkpoint_callback
    best_score = getattr(checkpoint, "best_model_score", None)
    trainable = sum(p.numel() for p in model.plan.trainable_parameters())
    total = sum(p.numel() for p in model.parameters())
    metrics = {
        "dataset": cfg.dataset.name,
        "color": cfg.dataset.color,
        "gray_mode": cfg.dataset.gray_mode,
        "strategy": policy.name,
        "bn": policy.bn,
        "k": getattr(policy, "k", None),
        "backbone": cfg.model.backbone,
        "weights": str(cfg.model.weights),
        "seed": cfg.seed,
        "image_size": cfg.dataset.image_size,
        "epochs": epochs,
        "max_epochs": trainer.max_epochs,
        "best_val_acc": float(best_score) if best_score is not None else fitted.get("val/acc_best"),
        "val_acc": fitted.get("val/acc"),
        "val_loss": fitted.get("val/loss"),
        "val_acc_top5": fitted.get("val/acc_top5"),
        "test_acc": tested.get("test/acc"),
        "test_acc_top5": tested.get("test/acc_top5"),
        "train_seconds": round(train_seconds, 2),
        "trainable_params": trainable,
        "frozen_params": total - trainable,
        "total_params": total,
        "num_classes": datamodule.num_classes,
        "best_checkpoint": getattr(checkpoint, "best_model_path", None) or None,
        "run_dir": str(out),
        "status": "complete",
    }
    if trainer.is_global_zero:
        _write_json(out / "metrics.json", metrics)
        _print_summary(metrics)
    return metrics


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(partial, path)  # a reader never sees half a file


def _print_summary(m: dict[str, Any]) -> None:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    print(
        f"\ntranslearn: {m['dataset']}/{m['color']} {m['strategy']} (bn={m['bn']}) {m['backbone']} "
        f"weights={m['weights']}: best_val_acc={pct(m['best_val_acc'])} val_acc={pct(m['val_acc'])} "
        f"test_acc={pct(m['test_acc'])} train_seconds={m['train_seconds']} "
        f"trainable_params={m['trainable_params']:,}/{m['total_params']:,}",
        flush=True,
    )
    print(f"translearn: run directory {m['run_dir']}", flush=True)


def _finish_wandb() -> None:
    """Close this job's W&B run so the next cell of a multirun opens its own."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics = run(cfg)
    except UserError as exc:
        exit_with(str(exc))
    except InstantiationException as exc:  # Hydra wraps what a constructor raises, UserError included
        if isinstance(exc.__cause__, UserError):
            exit_with(str(exc.__cause__))
        raise
    return metrics["best_val_acc"]


def main() -> None:
    """Console entry point (``translearn-train``): validate the command line in one line, then run Hydra."""
    try:
        validate_command_line(sys.argv[1:])
    except UserError as exc:
        exit_with(str(exc))
    _hydra_main()


if __name__ == "__main__":
    main()
