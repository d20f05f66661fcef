"""Optional parts and the pip extra that installs each: ``pip install 'translearn[wandb]'``.

The core install trains, sweeps, reports and prepares data, logging to CSV, on torchvision backbones.
Everything else is an extra (``pyproject.toml``), imported only where it is used. Without its package, a
part would fail deep inside Lightning or Hydra with a traceback ("`wandb` is not installed", "Could not
find 'hydra/launcher/submitit_slurm'"); :func:`check_config` finds what a composed config needs before
anything runs, and :func:`missing_config_hint` explains Hydra's error for a plugin that is not installed.
Both end in one line that names the extra to install.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from translearn.errors import UserError

# Lightning logger class → (what the user typed, the modules that can back it, the extra).
LOGGERS = {
    "WandbLogger": ("logger=wandb", ("wandb",), "wandb"),
    "TensorBoardLogger": ("logger=tensorboard", ("tensorboard", "tensorboardX"), "tensorboard"),
}
# Hydra plugin configs that exist only once their plugin is installed: (group, name prefix) → what, extra.
PLUGIN_CONFIGS = {
    ("hydra/launcher", "submitit_"): ("launcher=slurm", "hydra-submitit-launcher", "slurm"),
    ("hydra/sweeper", "optuna"): ("hparams_search=optuna", "hydra-optuna-sweeper", "optuna"),
}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False


def require(what: str, modules: tuple[str, ...], extra: str) -> None:
    """A one-line UserError unless one of ``modules`` is importable."""
    if not any(installed(m) for m in modules):
        raise UserError(
            f"{what} needs {modules[0]}, which is not installed: pip install 'translearn[{extra}]'"
        )


def check_config(cfg: Any) -> None:
    """The optional packages a composed config uses (loggers, backbone library) must be installed."""
    for node in (cfg.get("logger") or {}).values():
        target = str((node or {}).get("_target_", ""))
        for cls, (what, modules, extra) in LOGGERS.items():
            if target.endswith("." + cls):
                require(what, modules, extra)
    model = cfg.get("model") or {}
    if str(model.get("library", "torchvision")) == "timm":
        require("model.library=timm", ("timm",), "timm")


def missing_config_hint(missing_cfg_file: str | None) -> str | None:
    """For Hydra's MissingConfigException on a plugin's config: which extra installs that plugin."""
    group, _, name = (missing_cfg_file or "").rpartition("/")
    for (plugin_group, prefix), (what, package, extra) in PLUGIN_CONFIGS.items():
        if group == plugin_group and name.startswith(prefix):
            return f"{what} needs {package}, which is not installed: pip install 'translearn[{extra}]'"
    return None
