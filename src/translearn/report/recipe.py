"""A run's recipe: the settings that must match before two runs' accuracies may be averaged together.

metrics.json names the model and data (backbone, weights, image size, epochs); the optimisation recipe
(learning rate, batch size, optimizer, ...) lives only in the run's ``.hydra/config.yaml``. The table
groups runs by every recipe key that differs, so freeze at lr 1e-3 and at lr 1e-2 are two rows, never
one mean.

Pitfalls: the config is read as plain YAML (``${...}`` interpolations stay strings: none of the keys read
here is one); an older config spelled the optimizer ``model.optimizer.name`` rather than ``_target_``; a
run folder without a config (copied metrics.json only) gets None for the keys only the config knows, and
None is a value of its own, so such runs are not pooled with runs whose recipe is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Recipe keys from metrics.json (they win over the config: they are what the run actually used).
FROM_METRICS = ("backbone", "weights", "gray_mode", "image_size", "max_epochs", "num_classes")
# Recipe keys only the config knows: short name -> dotted path in .hydra/config.yaml.
FROM_CONFIG = {
    "task": "dataset.task",  # the embedded data's tasks (target: a label shift, corrupted: an input shift)
    # Which images and classes: two image folders, or all Simpsons characters against two of them, are
    # different data under one dataset name (the report averaged them as repeated seeds).
    "root": "dataset.root",
    "classes": "dataset.classes",
    "top_n": "dataset.top_n",
    "exclude_clutter": "dataset.exclude_clutter",
    "split": "dataset.split",
    "val_fraction": "dataset.val_fraction",
    "test_fraction": "dataset.test_fraction",
    "test_set": "dataset.test_set",
    "image_size": "dataset.image_size",
    "max_epochs": "trainer.max_epochs",
    "lr": "model.optimizer.lr",
    "optimizer": "model.optimizer._target_",
    "weight_decay": "model.optimizer.weight_decay",
    "scheduler": "model.scheduler._target_",
    "batch_size": "dataset.batch_size",
    "label_smoothing": "model.label_smoothing",
    "lr_decay": "strategy.lr_decay",
    "limit_train_batches": "trainer.limit_train_batches",
}
RECIPE_KEYS = tuple(dict.fromkeys((*FROM_METRICS, *FROM_CONFIG)))
CONFIG = Path(".hydra") / "config.yaml"


def _dig(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(config, dict) or part not in config:
            return None
        config = config[part]
    return config


# Class paths, shown by their class name (torch.optim.SGD -> SGD). Only these: a weights file's path or a
# timm name such as resnet50.a1_in1k shortened to its last dot ("pth", "a1_in1k") made different
# recipes one, and the report averaged runs of two weight files as repeated seeds.
CLASS_KEYS = ("optimizer", "scheduler")


def _short(key: str, value: Any) -> Any:
    if key in CLASS_KEYS and isinstance(value, str) and "." in value and " " not in value:
        return value.rsplit(".", 1)[-1]
    return value


def read_config(folder: Path) -> dict[str, Any] | None:
    """The run's composed Hydra config as plain data, or None where it is missing or unreadable."""
    try:
        data = yaml.safe_load((folder / CONFIG).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_recipe(folder: Path | None, metrics: dict[str, Any]) -> dict[str, Any]:
    """Every RECIPE_KEYS value of one run: metrics.json first, then ``<folder>/.hydra/config.yaml``."""
    config = read_config(folder) if folder is not None else None
    recipe: dict[str, Any] = {}
    for key in RECIPE_KEYS:
        value = metrics.get(key)
        if value is None and config is not None and key in FROM_CONFIG:
            value = _dig(config, FROM_CONFIG[key])
            if value is None and key == "optimizer":  # older configs: model.optimizer.name
                value = _dig(config, "model.optimizer.name")
            if value is None and key == "scheduler":
                value = _dig(config, "model.scheduler.name")
        if isinstance(value, list):  # never a recipe key today; keep it hashable if one becomes a list
            value = tuple(value)
        recipe[key] = _short(key, value)
    if recipe.get("max_epochs") is None and isinstance(metrics.get("epochs"), int):
        recipe["max_epochs"] = metrics["epochs"]  # older metrics.json: epochs trained is the best guess
    return recipe
