"""translearn's own pretrained backbones: ``model.weights=embedded``.

Offline there is no ImageNet checkpoint, so the embedded default pretrains the chosen backbone on the
*base* half of the shapes dataset (:mod:`translearn.data.shapes`) and transfers it to the disjoint
*target* half: the A→B setup of Yosinski et al. (2014). The result is cached per backbone and crop
size, built once under a file lock, so parallel sweep cells and DDP ranks share one build.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from filelock import FileLock
from omegaconf import DictConfig

from translearn.data.shapes import BASE_CLASSES, VERSION, ShapesDataModule
from translearn.log import log
from translearn.storage import write_json

# The base task's recipe. From scratch on ~1,000 images, AdamW converges in far fewer steps than SGD
# (measured: SGD at lr 0.05 diverged, at 0.01 crawled), and the CPU budget is a couple of minutes.
RECIPE = {"epochs": 8, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4}


def embedded_weights(
    arch: str,
    image_size: int,
    data_dir: str | Path,
    cache_dir: str | Path,
    epochs: int = RECIPE["epochs"],
    limit_batches: int | float = 1.0,
    library: str = "torchvision",
) -> Path:
    """Path of the cached base-task state_dict for ``arch`` at ``image_size``, building it if needed.

    A timm backbone is pretrained the same way, as timm builds it; its file holds timm's names.
    """
    from translearn.module import TransferModule  # the module imports backbones, which must not import us
    from translearn.strategies import Finetune

    folder = Path(cache_dir).expanduser() / "weights"
    named = arch if library == "torchvision" else f"{library}-{arch}"
    tag = f"shapes-base-v{VERSION}-{named}-{image_size}px-e{epochs}" + (
        "" if limit_batches == 1.0 else f"-l{limit_batches}"
    )
    path = folder / f"{tag}.pt"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / f"{tag}.lock")):
        if path.is_file():
            return path
        log.info(
            f"pretraining {arch} on the base half of the embedded shapes ({epochs} epochs, once; "
            f"cached at {path})"
        )
        data = ShapesDataModule(
            Path(data_dir).expanduser() / "shapes",
            task="base",
            image_size=image_size,
            crop_scale=(0.5, 1.0),
            batch_size=RECIPE["batch_size"],
            num_workers=min(2, os.cpu_count() or 1),
            seed=0,
        )
        module = TransferModule(
            arch,
            weights="none",
            library=library,
            num_classes=len(BASE_CLASSES),
            preprocessing=data.preprocessing.as_dict(),  # a net that cannot take this size says so now
            policy=Finetune(),
            optimizer={
                "_target_": "torch.optim.AdamW",
                "lr": RECIPE["lr"],
                "weight_decay": RECIPE["weight_decay"],
            },
            scheduler={"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": epochs},
        )
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="auto",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_train_batches=limit_batches,
            limit_val_batches=limit_batches,
            default_root_dir=str(folder),
        )
        start = time.perf_counter()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            trainer.fit(module, data)
        partial = path.with_suffix(".partial")
        torch.save(module.net.model.state_dict(), partial)
        os.replace(partial, path)
        info = {
            "arch": arch,
            "image_size": image_size,
            "epochs": epochs,
            "recipe": RECIPE,
            "base_val_acc": float(trainer.callback_metrics.get("val/acc", float("nan"))),
            "seconds": round(time.perf_counter() - start, 1),
        }
        write_json(path.with_suffix(".json"), info)
        log.info(f"base-task val accuracy {info['base_val_acc']:.3f} in {info['seconds']} s")
    return path


def resolve_weights(cfg: DictConfig) -> str:
    """``model.weights`` as build_backbone takes it: ``embedded`` becomes the cached file's path."""
    weights = str(cfg.model.weights)
    if weights != "embedded":
        return weights
    return str(
        embedded_weights(
            cfg.model.backbone,
            int(cfg.dataset.get("image_size") or 224),
            cfg.paths.data_dir,
            cfg.paths.cache_dir,
            library=str(cfg.model.get("library", "torchvision")),
        )
    )
