"""Where the configs live, the resolvers they use, and validation of a command line before Hydra runs it.

Hydra reports a bad override as several lines (and sometimes a traceback) after it has created the run
directory. We compose every cell of the command first, with Hydra's own compose API, so that a typo
fails in one line before any directory is made or any cell of a sweep has run.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, ListConfig, OmegaConf

from translearn.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent / "conf"
CONFIG_NAME = "train"
# Beyond this many cells, each swept value is validated once rather than every combination.
MAX_VALIDATED_CELLS = 256


def first_process() -> bool:
    """Rank 0 of a DDP job (torchrun, srun, Lightning's launcher, any node), or the only process."""
    return all(os.environ.get(v, "0") == "0" for v in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def run_name(overrides: Any) -> str:
    """A W&B run's name: its overrides as typed, or ``default``."""
    from translearn.sweep import typed_overrides

    return typed_overrides(str(overrides or "")) or "default"


def register_resolvers() -> None:
    """Resolvers of names only, none that reads the disk: the dataset's shape reaches the model in code."""
    if not OmegaConf.has_resolver("translearn.wandb_offline"):
        OmegaConf.register_new_resolver("translearn.wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("translearn.run_name"):
        OmegaConf.register_new_resolver("translearn.run_name", run_name)
    if not OmegaConf.has_resolver("translearn.safe_name"):  # cell folder names (conf/hydra/default.yaml)
        from translearn.sweep import safe_name

        OmegaConf.register_new_resolver("translearn.safe_name", lambda name: safe_name(str(name)))
    if not OmegaConf.has_resolver("translearn.config_groups"):  # conf/hydra/default.yaml: --help
        OmegaConf.register_new_resolver("translearn.config_groups", config_groups)
    if not OmegaConf.has_resolver("translearn.slurm_tasks"):  # conf/launcher/slurm.yaml
        OmegaConf.register_new_resolver("translearn.slurm_tasks", slurm_tasks)
    if not OmegaConf.has_resolver("translearn.slurm_gpus"):
        OmegaConf.register_new_resolver("translearn.slurm_gpus", slurm_gpus)


def config_groups() -> str:
    """``--help``'s list of groups and their choices, as Hydra's $APP_CONFIG_GROUPS minus the ``_``-named
    configs that hold shared keys (``dataset=_base`` is not a dataset), which Hydra listed as choices."""
    from hydra.core.object_type import ObjectType

    loader = GlobalHydra.instance().config_loader()
    lines: list[str] = []

    def walk(parent: str) -> None:
        for name in sorted(loader.list_groups(parent)):
            group = f"{parent}/{name}" if parent else name
            if group == "hydra":
                continue
            choices = [o for o in loader.get_group_options(group, ObjectType.CONFIG) if not o.startswith("_")]
            if choices:
                lines.append(f"{group}: {', '.join(sorted(choices))}")
            walk(group)

    walk("")
    return "\n".join(lines) + "\n"


def wandb_offline() -> bool:
    """Log offline unless W&B can authenticate: never hang on a network that is not there.

    ``WANDB_MODE`` decides when set. Otherwise W&B's own credential lookup decides, for the host W&B is
    configured for (``WANDB_BASE_URL`` or ``wandb login --host``), so a self-hosted server works: an API
    key or identity token in the environment, the key ``wandb login`` stored in the netrc file for that
    host, or one in W&B's settings files. Nothing is sent over the network.
    """
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return True
    if mode == "online":
        return False
    return not _wandb_credentials()


def _wandb_credentials() -> bool:
    """Whether W&B would find credentials for its configured host, without prompting or verifying them."""
    try:
        import wandb
    except ImportError:
        return False
    try:
        return _wandb_lookup(wandb)
    finally:
        # The lookup loads W&B's process-wide settings, which stay frozen once loaded: Lightning's
        # WANDB_MODE=dryrun, set later for an offline run, went unseen and wandb.init demanded a login.
        # Unloaded again, unless the caller has a W&B run going.
        if getattr(wandb, "run", None) is None and hasattr(wandb, "teardown"):
            wandb.teardown()


def _wandb_lookup(wandb: Any) -> bool:
    try:
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import wbauth

        settings = wandb_setup.singleton().settings
        host = wbauth.HostUrl(settings.base_url, app_url=settings.app_url)
        # What wandb.init runs, minus the prompt; update_session=False: look, change nothing, print nothing.
        found = wbauth.authenticate_session(
            host=host, source="translearn", prompt=False, update_session=False
        )
        return found is not None
    except (ImportError, AttributeError, TypeError):
        pass  # a wandb without this module (before 0.2x): its wandb.api reads the same sources
    except Exception:  # malformed credentials: W&B would refuse them online too
        return False
    try:
        return bool(wandb.api.api_key)
    except Exception:
        return False


def device_count(devices: Any) -> int | None:
    """How many devices ``trainer.devices`` names (N, "N", a list or "0,1" of indices); None for -1/auto."""
    if isinstance(devices, bool):
        return None
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:
            return len([d for d in text.split(",") if d.strip()]) or None
        if not text.lstrip("-").isdigit():
            return None
        devices = int(text)
    if isinstance(devices, int):
        return devices if devices > 0 else None
    if isinstance(devices, list | tuple | ListConfig):
        return len(devices) or None
    return None


def slurm_tasks(devices: Any) -> int:
    """SLURM tasks per node: one per device, as Lightning's SLURM DDP expects (check_slurm says the rest)."""
    count = device_count(devices)
    if count is None:
        raise ValueError(f"launcher=slurm needs a number of devices per node, got trainer.devices={devices}")
    return count


def slurm_gpus(accelerator: Any, devices: Any) -> int | None:
    """GPUs per node: one per task, none on the CPU (null: no --gpus-per-node request at all)."""
    return None if str(accelerator) == "cpu" else slurm_tasks(devices)


def one_line(exc: BaseException) -> str:
    """A Hydra/OmegaConf error as one actionable line."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        family = name.split("_", 1)[0]  # submitit_slurm, optuna: gone with their plugin, not mistyped
        if group and not any(str(o).startswith(family) for o in exc.options):
            from translearn.extras import missing_config_hint

            hint = missing_config_hint(exc.missing_cfg_file)
            if hint:
                return hint
        if group:
            shown = sorted(
                o for o in exc.options if not o.startswith("_")
            )  # _base: shared keys, not a choice
            return f"unknown {group} '{name}'; choose one of: {', '.join(shown)}"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    lines = [
        ln for ln in lines if not ln.startswith(("full_key:", "object_type", "reference_type", "Set the env"))
    ]
    return " - ".join(lines) or type(exc).__name__


def compose_config(
    overrides: list[str],
    config_dir: str | None = None,
    config_name: str = CONFIG_NAME,
    return_hydra_config: bool = False,
) -> DictConfig:
    """The composed config for ``overrides``, exactly as ``python -m translearn.train`` would build it."""
    register_resolvers()
    extra = [f"hydra.searchpath=[file://{Path(config_dir).resolve()}]"] if config_dir else []
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="translearn"):
        return compose(
            config_name, overrides=list(overrides) + extra, return_hydra_config=return_hydra_config
        )


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The cells of a multirun command line (simple comma and range sweeps; others are left to Hydra)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices: list[list[str]] = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if override.is_sweep_override():
            try:
                values = list(override.sweep_string_iterator())
            except Exception:  # glob() and interval sweeps need Hydra's own sweeper
                continue
            choices.append([f"{key}={v}" for v in values])
        else:
            choices.append([override.input_line])
    cells = [list(c) for c in itertools.product(*choices)]
    if len(cells) <= MAX_VALIDATED_CELLS:
        return cells
    base = [c[0] for c in choices]
    return [[*base[:i], v, *base[i + 1 :]] for i, c in enumerate(choices) for v in c]


def check_values(cfg: DictConfig, data: bool = True, deep: bool = True) -> None:
    """Checks that need no model and read no data: names, enumerations and the keys each node takes,
    once, where the config enters, so every cell of a grid is checked before the first one starts.

    ``data``: also that the dataset's folder exists. ``deep``: also the checks that import torch (the
    weights' names, the optimizer's class, the stages, the keys each class takes). ``--cfg`` only prints
    the config: it skips both (0.5 s instead of 5.4 for ``--cfg job`` on a quiet 2-core machine).
    """
    if not cfg.dataset.get("_target_"):
        raise UserError(
            "dataset=_base holds the keys every dataset shares; it is not a dataset (e.g. dataset=shapes)"
        )
    # Enumerations and numbers first: they need no torch, so a mistyped value is one line in under a
    # second. The weights' names, the cache keys and the torch.optim classes below import torch.
    for key, allowed in (("color", ("rgb", "gray")), ("gray_mode", ("replicate", "adapt"))):
        if cfg.dataset.get(key) not in allowed:
            raise UserError(
                f"dataset.{key} must be one of {', '.join(allowed)}, got '{cfg.dataset.get(key)}'"
            )
    if cfg.model.get("channels_last", False) not in (True, False, "auto"):
        raise UserError(
            f"model.channels_last must be auto, true or false, got '{cfg.model.get('channels_last')}'"
        )
    if cfg.strategy.get("bn") not in ("frozen", "train"):
        raise UserError(f"strategy.bn must be frozen or train, got '{cfg.strategy.get('bn')}'")
    optimizer = cfg.model.get("optimizer") or {}
    for key, ok, rule in (
        ("lr", lambda v: v > 0, "> 0"),
        ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
        ("weight_decay", lambda v: v >= 0, ">= 0"),
    ):
        value = optimizer.get(key)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not ok(value)
        ):
            raise UserError(f"model.optimizer.{key} must be {rule}, got {value}")
    epochs = cfg.trainer.get("max_epochs")
    if not isinstance(epochs, int) or epochs < 1:
        raise UserError(f"trainer.max_epochs must be >= 1, got {epochs} (-1 would train forever)")
    clip = cfg.trainer.get("gradient_clip_val")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float) or clip < 0):
        # Lightning passes it on unchecked, and torch's clipping then turns every gradient around
        # (norm: times a negative factor; value: all set to the negative bound): training climbed the loss.
        raise UserError(
            f"trainer.gradient_clip_val must be >= 0 (0 or null: no clipping), got {clip}; a negative value "
            "reverses the gradients"
        )
    ckpt = cfg.get("ckpt_path")
    if ckpt not in (None, "last", "best") and not Path(str(ckpt)).expanduser().is_file():
        raise UserError(
            f"ckpt_path={ckpt} does not exist; pass a checkpoint file, or ckpt_path=last to resume the run "
            "in hydra.run.dir"
        )
    from omegaconf.errors import InterpolationKeyError

    for key in PATH_KEYS:
        try:
            value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
        except InterpolationKeyError as exc:  # dataset.root=/data/run${1}: a path, not a config key
            raise UserError(
                f"{key}: {one_line(exc)}; '${{...}}' in a value refers to a config key: a path that holds "
                "'${' must be linked or renamed without it"
            ) from None
        if key in ("dataset.root", "model.weights") and isinstance(value, str) and "${" in value:
            # Escaped \${...}: resolved here to a literal, and resolved again by Hydra's instantiate.
            raise UserError(
                f"{key}={value} holds '${{', which Hydra reads as an interpolation however it is escaped; "
                "link or rename the path without '${'"
            )
    root = cfg.dataset.get("root")
    if root and Path(str(root)).expanduser().is_file():
        raise UserError(f"dataset.root={root} is a file, not a folder; pass the folder that holds the data")
    if not deep:
        return
    from translearn.weights import parse_weights

    library = str(cfg.model.get("library", "torchvision"))
    parse_weights(library, str(cfg.model.get("backbone")), str(cfg.model.get("weights")))
    from translearn import features

    # The feature cache's keys: they were read only once the Trainer was built, after Lightning's lines.
    features.check_settings(
        cfg.strategy.get("cache_features", "auto"),
        cfg.strategy.get("cache_views", 1),
        cfg.strategy.get("cache_dtype", "float32"),
    )
    from translearn.optimization import check as check_optimization

    # The torch classes of model.optimizer / model.scheduler, their keys, and the rates the schedule reaches.
    check_optimization(cfg.model, cfg.trainer.get("max_epochs"))
    if data:
        check_data_root(cfg.dataset)
    for group in ("dataset", "strategy", "model", "trainer"):  # trainer: +trainer.max_epoch=1
        check_keys(group, cfg[group])
    # The schedule against the epochs (lp_ft's probe) and the stages against the backbone (first_k's k,
    # surgical's stages): before a sweep's first cell rather than when each cell's turn comes.
    policy = instantiate(cfg.strategy)
    policy.check_epochs(epochs)
    plan = check_stages(library, str(cfg.model.get("backbone")), policy)
    check_cache_is_exact(policy, plan)
    check_image_size(library, str(cfg.model.get("backbone")), cfg.dataset.get("image_size"))
    from translearn.extras import check_config
    from translearn.sweep import objective_key

    check_config(cfg)  # the optional packages it uses (logger, backbone library) are installed
    objective_key(cfg.get("optimized_metric"))
    check_wandb(cfg)


def check_stages(library: str, arch: str, policy: Any) -> Any:
    """The freezing plan on a weightless copy of the backbone (on the meta device: no memory, ~35 ms).

    Returns the plan, or None for a backbone that cannot be built without memory (its run checks itself).
    """
    import copy

    from translearn.strategies import FreezePlan

    skeleton = _skeleton(library, arch)
    return None if skeleton is None else FreezePlan(copy.deepcopy(skeleton), policy)


def check_cache_is_exact(policy: Any, plan: Any) -> None:
    """``strategy.cache_features=true`` where caching would change the result (finetune, bn=train, dropout
    below the head): decided by the plan alone, so it fails before the first cell, not after the Trainer.

    What only a real batch shows (a head that is not the model's last operation) stays with the run.
    """
    if plan is None or str(policy.cache_features).lower() != "true":
        return
    from translearn import features

    _, _, reason = features.frozen_prefix(plan, "true")
    if reason is not None:
        raise features.inexact(reason)


def check_image_size(library: str, arch: str, image_size: Any) -> None:
    """A backbone that cannot take the set ``dataset.image_size`` (ViT at 64 px): before a sweep's first
    cell, not in that backbone's cell after the others trained. A size left to the weights is checked
    when the module is built, once the weights' preprocessing is known.
    """
    if not isinstance(image_size, int) or isinstance(image_size, bool):
        return
    skeleton = _skeleton(library, arch)
    if skeleton is not None:
        from translearn.module import check_input_size

        check_input_size(skeleton.model, arch, 3, image_size)


def check_data_root(dataset: DictConfig) -> None:
    """A dataset read from disk needs its folder before any cell starts, not when each cell's turn comes.

    The check the data module makes when it opens the folder (``PreparedDataModule.check_root``), in
    its words, for every cell of a grid; ``shapes`` draws its images, so its folder may be missing.
    """
    from hydra.utils import get_class

    from translearn.data.prepare import PreparedDataModule

    try:
        target = get_class(str(dataset.get("_target_")))
    except Exception:
        return  # an unimportable target fails at instantiation with its own message
    if not (isinstance(target, type) and issubclass(target, PreparedDataModule)):
        return
    root = dataset.get("root")
    if root is None or str(root) in ("", "???"):
        raise UserError(f"{target.DATASET}: set dataset.root=DIR, a folder laid out as {target.LAYOUT}")
    target.check_folder(str(dataset.get("name") or target.DATASET), Path(str(root)).expanduser())


@functools.lru_cache(maxsize=8)
def _skeleton(library: str, arch: str) -> Any:
    import torch

    from translearn.backbones import build_backbone

    try:
        with torch.device("meta"):
            return build_backbone(arch, 2, "none", 3, library=library)
    except Exception:  # a model that cannot be built without memory: its run checks the plan itself
        return None


def check_wandb(cfg: DictConfig) -> None:
    """logger.wandb.log_model uploads checkpoints as artifacts, which Lightning refuses in an offline run."""
    node = (cfg.get("logger") or {}).get("wandb") or {}
    if node and node.get("log_model") and node.get("offline"):
        value = str(node.get("log_model")).lower()
        raise UserError(
            f"logger.wandb.log_model={value} uploads checkpoints, which an offline W&B run "
            "cannot; log in (wandb login, WANDB_API_KEY, or WANDB_MODE=online), or set "
            "logger.wandb.log_model=false and upload the run later with make wandb-sync"
        )


def check_launch(cfg: DictConfig, multirun: bool) -> None:
    """Checks of the ``hydra`` node: the sweeper's packages, and what launcher=slurm would ask SLURM for."""
    sweeper = str(cfg.hydra.sweeper.get("_target_", ""))
    if "optuna" in sweeper.lower():
        from translearn.extras import require

        require("hparams_search=optuna", ("optuna",), "optuna")  # the sweeper imports it per study
        if not multirun and cfg.get("sweep", {}).get("cell") is None:  # a cell of a study is a single run
            raise UserError("hparams_search=optuna runs a study of many trials: add -m to the command")
    if str(cfg.hydra.launcher.get("_target_", "")).endswith("SlurmLauncher"):
        check_slurm(cfg.trainer)
    if multirun and str(cfg.hydra.launcher.get("_target_", "")).endswith("BasicLauncher"):
        check_in_process_strategy(cfg.trainer)


def check_in_process_strategy(trainer: DictConfig) -> None:
    """DDP that starts its ranks by re-running the command cannot live inside a sweep's own process."""
    strategy = str(trainer.get("strategy", ""))
    if "ddp" in strategy and "spawn" not in strategy and "SLURM_NTASKS" not in os.environ:
        raise UserError(
            f"trainer.strategy={strategy} inside launcher=inline would relaunch the whole sweep on every "
            "rank; use launcher=local or launcher=gpus, which run each cell as its own process"
        )


def check_slurm(trainer: DictConfig) -> None:
    """launcher=slurm asks for trainer.num_nodes nodes x trainer.devices tasks: both must be counts."""
    devices, nodes = trainer.get("devices"), trainer.get("num_nodes", 1)
    if device_count(devices) is None:
        raise UserError(
            f"launcher=slurm asks SLURM for trainer.devices tasks (one per GPU) on each node, but "
            f"trainer.devices={devices} is not a count; pass the GPUs per node, e.g. trainer.devices=4"
        )
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise UserError(f"launcher=slurm needs trainer.num_nodes >= 1 (nodes per cell), got {nodes}")


def did_you_mean(word: str, names: list[str], cutoff: float = 0.6) -> str | None:
    """The name closest to a misspelt one, if any is close (difflib's ratio >= ``cutoff``)."""
    import difflib

    close = difflib.get_close_matches(word, names, n=1, cutoff=cutoff)
    return close[0] if close else None


def check_keys(group: str, node: DictConfig) -> None:
    """A key the class does not take (``+dataset.hflip=false``): a one-line error, not a TypeError."""
    import inspect

    from hydra.utils import get_class

    try:
        target = get_class(str(node.get("_target_")))
    except Exception:
        return  # an unimportable target fails at instantiation with its own message
    accepted: set[str] = set()
    for klass in target.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters.values()
        accepted |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break  # this __init__ passes nothing further up
    unknown = [k for k in node if not str(k).startswith("_") and k not in accepted]
    if unknown:
        names = sorted(accepted - {"self"})
        close = did_you_mean(str(unknown[0]), names)
        hint = f"did you mean {group}.{close}? " if close else ""
        raise UserError(
            f"unknown key {group}.{unknown[0]}: {target.__name__} takes no '{unknown[0]}' ({hint}"
            f"it takes: {', '.join(names)})"
        )


def _key_of_some_options(error: str, overrides: list[str]) -> str | None:
    """``-m strategy=finetune,first_k strategy.k=1,2``: k belongs to first_k only.

    Hydra answers "use +strategy.k", and following that hint gives "use ++strategy.k", which would pass k
    to finetune too. Say what is going on and what to type instead.
    """
    import re

    found = re.search(r"(?:Could not override|An item is already at) '([\w.]+)'", error) or re.search(
        r"^unknown key ([\w.]+):", error
    )
    if not found:
        return None
    key = found.group(1)
    group = key.split(".", 1)[0]
    swept = next(
        (o.split("=", 1)[1].split(",") for o in overrides if o.split("=", 1)[0].lstrip("+~") == group), None
    )
    if not swept or len(swept) < 2:
        return None
    having = []
    for option in swept:
        try:
            node = compose_config([f"{group}={option}"])[group]
        except Exception:
            continue
        finally:
            GlobalHydra.instance().clear()
        if key.split(".", 1)[1] in node:
            having.append(option)
    if not having or len(having) == len(swept):
        return None
    value = next(o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=", 1)[0] == key)
    others = ",".join(o for o in swept if o not in having)
    return (
        f"{key} is a key of {group}={','.join(having)} only; sweep it in its own command "
        f"(-m {group}={','.join(having)} {key}={value}) and the other options without it "
        f"(-m {group}={others})"
    )


def check_writable(directory: str, what: str = "run directory", key: str = "hydra.run.dir") -> None:
    """The run directory, or its nearest existing parent, must be writable before Hydra creates it."""
    path = Path(directory).expanduser().absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not _can_create_in(existing):
        raise UserError(
            f"cannot write the {what} {path} ({existing} is not a writable folder); "
            f"pass {key}=DIR (or paths.log_dir=DIR) somewhere you can write"
        )


def _can_create_in(folder: Path) -> bool:
    """By trying (a temporary file, removed at once): os.access says yes to root everywhere, /proc included,
    and no to nothing that a read-only mount or a full quota refuses."""
    import tempfile

    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


# What a run writes into its folder: Hydra's record and job log (train.log), translearn.rundir's files,
# the checkpoint callbacks' folder and the loggers' (conf/logger/*.yaml: save_dir ${paths.output_dir}).
RUN_DIR_NAMES = (
    ".hydra", "checkpoints", "metrics.json", "failure.json", "failure.previous.json", "train.log", "csv",
    "tensorboard", "wandb",
)  # fmt: skip
RUN_DIR_PATTERNS = ("confusion_*.csv",)


def check_fresh_run_dir(directory: str, ckpt_path: str | None) -> None:
    """Never write over what a folder holds unless the user asked to resume the run in it.

    A run into a folder that held a user's ``csv/metrics.csv`` and ``confusion_val.csv`` replaced them and
    appended to their ``train.log``. A folder holding any name a run writes is refused, naming them; an
    empty folder, or one of other files, is trained into.
    """
    path = Path(directory).expanduser()
    if ckpt_path is not None or not path.is_dir():
        return
    if (path / "checkpoints").exists() or (path / "metrics.json").exists():
        raise UserError(
            f"{path} already holds a run; pass ckpt_path=last to resume it, or choose another hydra.run.dir"
        )
    if _a_translearn_run(path):  # one that stopped before its first checkpoint: started afresh, as its
        return  # Ctrl-C and failure lines say; its files are translearn's own
    held = [p for p in (path / n for n in RUN_DIR_NAMES) if p.exists() or p.is_symlink()]
    held += [p for pattern in RUN_DIR_PATTERNS for p in path.glob(pattern)]
    if held:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in held)
        raise UserError(
            f"{path} already holds {', '.join(names)}, which this run would write over; choose another "
            "hydra.run.dir (a new or empty folder), or move them away"
        )


def _a_translearn_run(path: Path) -> bool:
    """The folder's ``.hydra/config.yaml`` is a translearn run's (it names a strategy and a dataset)."""
    try:
        text = (path / ".hydra" / "config.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    keys = {line.split(":", 1)[0] for line in text.splitlines() if line and not line[0].isspace()}
    return {"strategy", "dataset", "model", "trainer"} <= keys


@dataclass
class CommandLine:
    """What ``validate_command_line`` learnt: the mode and the folder the command will write."""

    multirun: bool = False
    output_dir: str | None = None  # hydra.run.dir, or hydra.sweep.dir with -m
    resume: bool = False
    pinned_sweep_dir: bool = False  # the user gave hydra.sweep.dir
    resumes_a_run: bool = False  # one run, ckpt_path set, into a folder that holds a run
    owns_run_dir: bool = False  # one run that writes its folder (not --cfg, a DDP rank, or a sweep's cell)
    ckpt_path: str | None = None
    fixed_keys: tuple[str, ...] = ()  # -m: keys the command sets to one value (left out of cell names)
    excluded_keys: tuple[
        str, ...
    ] = ()  # never in a cell's name (hydra.job.config.override_dirname in conf/hydra)
    swept_keys: tuple[str, ...] = ()  # -m: keys the command gives several values
    cells: int | None = None  # -m: the jobs the sweeper will launch, where that is known beforehand
    in_process: bool = False  # -m: cells run inside the launcher's process (Hydra's run_job), not ours

    def cell_name_excluded(self) -> list[str]:
        """Keys left out of cell folder names: those set to one value, and the configured ones.

        A swept data folder is named all the same: two roots would otherwise be cells ``0__`` and
        ``1__``, told apart by nothing but their number.
        """
        named = {k for k in self.swept_keys if k in DATA_LOCATION_KEYS}
        return [*self.fixed_keys, *(k for k in self.excluded_keys if k not in named)]


DATA_LOCATION_KEYS = ("dataset.root", "paths.data_dir")


_CLASS_OVERRIDE = re.compile(r"^(trainer|model\.optimizer|model\.scheduler)\.(\w+)=")


def _class_arguments(node: str) -> set[str]:
    """What the classes behind a config node take: the Trainer's arguments, or those of any torch
    optimizer or LR scheduler (model/optimizer= and model/scheduler= pick the class; so may _target_)."""
    import inspect

    if node == "trainer":
        import pytorch_lightning

        classes: list[type] = [pytorch_lightning.Trainer]
    else:
        import torch

        base = torch.optim.Optimizer if node == "model.optimizer" else torch.optim.lr_scheduler.LRScheduler
        space = torch.optim if node == "model.optimizer" else torch.optim.lr_scheduler
        classes = [c for c in vars(space).values() if isinstance(c, type) and issubclass(c, base)]
        if node == "model.scheduler":
            classes.append(torch.optim.lr_scheduler.ReduceLROnPlateau)
    names: set[str] = set()
    for cls in classes:
        names |= set(inspect.signature(cls.__init__).parameters) - {"self", "params", "optimizer"}
    return names


def _listed_everywhere(node: str) -> set[str]:
    """Keys every preset of the node lists (a plain override of them always composes)."""
    if node == "trainer":
        return set(OmegaConf.load(CONFIG_DIR / "trainer" / "default.yaml"))
    presets = [OmegaConf.load(f) for f in sorted((CONFIG_DIR / node.replace(".", "/")).glob("*.yaml"))]
    return set.intersection(*(set(p) for p in presets)) if presets else set()


def class_arguments_added(argv: list[str]) -> list[str]:
    """``trainer.<arg>=V`` for a Lightning Trainer argument, and ``model.optimizer.<arg>=V`` /
    ``model.scheduler.<arg>=V`` for a torch optimizer's or scheduler's, become ``++...=V`` where a preset
    may lack the key.

    Any Trainer argument works as ``trainer.<arg>=`` (CONTRACT), and any optimizer argument as
    ``model.optimizer.<arg>=`` (README). Hydra refuses a plain override of a key the composed config lacks
    (``trainer.gradient_clip_val=1``: "use +trainer..."), and the + form where a preset has the key
    (debug=tiny sets limit_train_batches); ``++`` adds or sets. The class then checks the name
    (:func:`check_values`). A name no such class takes is left as given, for the "did you mean" of
    :func:`check_nested_keys`; a key every preset lists is left plain.
    """
    found = [m for m in map(_CLASS_OVERRIDE.match, argv) if m]
    if not found:
        return list(argv)
    nodes = {m.group(1) for m in found}
    listed = {node: _listed_everywhere(node) for node in nodes}
    # The class is imported (Lightning's Trainer: 3 s) only for a key some preset lacks.
    unlisted = {m.group(1) for m in found if m.group(2) not in listed[m.group(1)]}
    takes = {node: _class_arguments(node) if node in unlisted else set() for node in nodes}
    out = []
    for arg in argv:
        m = _CLASS_OVERRIDE.match(arg)
        add = m is not None and m.group(2) in takes[m.group(1)] and m.group(2) not in listed[m.group(1)]
        out.append(f"++{arg}" if add else arg)
    return out


# Path overrides whose ~ Hydra leaves as a literal folder (hydra.run.dir='~/run' wrote ./~/run).
PATH_KEYS = (
    "dataset.root", "paths.data_dir", "paths.cache_dir", "paths.log_dir", "hydra.run.dir",
    "hydra.sweep.dir", "model.weights", "ckpt_path",
)  # fmt: skip
# Those recorded in a run's config and compared across runs (report, eval): made absolute, or two runs
# from different folders with dataset.root=data were averaged as one dataset.
ABSOLUTE_KEYS = ("dataset.root", "paths.data_dir", "paths.cache_dir", "model.weights")
PATH_ENV = ("TRANSLEARN_DATA", "TRANSLEARN_CACHE", "TRANSLEARN_OUTPUTS")


def paths_expanded(argv: list[str]) -> list[str]:
    """Path overrides with ``~`` expanded, and the data, cache and weights paths made absolute.

    Hydra creates ``hydra.run.dir='~/run'`` as ``./~/run``, and a run's recorded ``dataset.root=data``
    means another folder from another working directory. Also expands a ``~`` in the TRANSLEARN_*
    folders' environment variables (``TRANSLEARN_OUTPUTS='~/runs'`` wrote ``./~/runs``). A sweep over
    paths is rewritten value by value (``dataset.root=a,b``); other sweeps (``range``, ``glob``), a value
    with an interpolation, or one that cannot be re-quoted is left as given.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for var in PATH_ENV:
        if os.environ.get(var, "").startswith("~"):
            os.environ[var] = os.path.expanduser(os.environ[var])
    parser = OverridesParser.create()
    out = []
    for arg in argv:
        out.append(arg)
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            [override] = parser.parse_overrides([arg])
        except Exception:
            # dataset.root=~/data, dataset.root=/data/café: Hydra's lexer refuses ~, spaces and non-ASCII
            # unquoted ("LexerNoViableAltException"). A path key's value is a string: quote it for Hydra.
            raw_key, _, raw = arg.lstrip("+").partition("=")
            quoted = _override_value(os.path.expanduser(raw))
            if raw_key not in PATH_KEYS or raw[:1] in ("'", '"') or quoted is None:
                continue  # validate_command_line reports a malformed override in its own words
            arg = f"{_plus(arg)}{raw_key}={quoted}"
            try:
                [override] = parser.parse_overrides([arg])
            except Exception:
                continue
            out[-1] = arg
        key, value = override.key_or_group, override.value()
        if key not in PATH_KEYS:
            continue
        from hydra.core.override_parser.types import ChoiceSweep, QuotedString

        if isinstance(value, ChoiceSweep) and not value.tags and not value.shuffle:  # dataset.root=a,b
            items = [v.text if isinstance(v, QuotedString) else v for v in value.list]
            if not all(isinstance(v, str) for v in items):
                continue
            paths = [_expanded_path(key, v) for v in items]
            quoted = [_override_value(p) for p in paths]
            if paths != items and all(q is not None for q in quoted):
                out[-1] = f"{_plus(arg)}{key}={','.join(map(str, quoted))}"
            continue
        if override.is_sweep_override() or not isinstance(value, str):
            continue
        path = _expanded_path(key, value)
        quoted = _override_value(path)
        if path != value and quoted is not None:
            out[-1] = f"{_plus(arg)}{key}={quoted}"
    return out


def _plus(arg: str) -> str:
    """An override's ``+``/``++`` prefix."""
    return arg[: len(arg) - len(arg.lstrip("+"))]


def _expanded_path(key: str, value: str) -> str:
    """``value`` of the path override ``key`` with ``~`` expanded, made absolute where ABSOLUTE_KEYS says."""
    if not value or "${" in value or value == "???":
        return value
    path = os.path.expanduser(value)
    if key in ABSOLUTE_KEYS and not os.path.isabs(path):
        if key == "model.weights":
            from translearn.weights.catalog import looks_like_path

            if not looks_like_path(path):  # imagenet, none, embedded, IMAGENET1K_V2
                return path
        path = os.path.abspath(path)
    return path


def _override_value(text: str) -> str | None:
    """``text`` as a Hydra override value: bare where the grammar allows, else quoted; None if unsafe."""
    if re.fullmatch(r"[A-Za-z0-9_./\-+]+", text):
        return text
    if "\\" in text or "$" in text:
        return None
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return None


def command_line(argv: list[str]) -> list[str]:
    """The command as Hydra gets it (train, advise, and a resumed sweep's record alike): any Trainer,
    optimizer or scheduler argument as ``++`` where a preset may lack it, paths expanded."""
    return paths_expanded(class_arguments_added(argv))


def validate_command_line(argv: list[str]) -> CommandLine:
    """Compose every cell of ``argv`` and run the cheap checks; raises UserError on the first problem."""
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(argv)
    if args.multirun and args.cfg:
        raise UserError("--cfg prints one composed config: drop -m and give one value per key")
    info = CommandLine(multirun=bool(args.multirun))
    if args.help or args.hydra_help or args.shell_completion or args.info:
        return info
    info.pinned_sweep_dir = any(o.startswith("hydra.sweep.dir=") for o in args.overrides)
    if args.multirun:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(args.overrides)
        info.fixed_keys = tuple(
            o.key_or_group
            for o in parsed
            if not o.is_sweep_override() and not o.key_or_group.startswith("hydra")
        )
        info.swept_keys = tuple(o.key_or_group for o in parsed if o.is_sweep_override())
    # A +key Hydra accepts: checked here. A misspelt plain key fails composition: checked there, so the
    # common command composes the config no extra time.
    check_top_level_keys(args.overrides, args.config_dir, args.config_name or CONFIG_NAME, adds=True)
    cells = expand_sweep(args.overrides) if args.multirun else [args.overrides]
    first = True
    if args.multirun:
        fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
        params = _sweeper_params(fixed, args.config_dir, args.config_name or CONFIG_NAME)
        if params:  # the sweeper's own search space first: a swept key may need a group it fixes
            cells = expand_sweep([*params, *args.overrides])
            first = False
    while cells:
        cell = cells.pop(0)
        try:
            cfg = compose_config(
                cell, args.config_dir, args.config_name or CONFIG_NAME, return_hydra_config=True
            )
            check_values(cfg, data=not args.cfg, deep=not args.cfg)
            check_launch(cfg, args.multirun)
            params = cfg.hydra.sweeper.get("params") or {}
            if (
                args.multirun and first and params
            ):  # an experiment's grid (hydra.sweeper.params) joins the command's
                cells = expand_sweep([f"{k}={v}" for k, v in params.items()] + list(args.overrides))
                first = False
                continue
            first = False
            output_dir = str(cfg.hydra.sweep.dir if args.multirun else cfg.hydra.run.dir)
            if info.output_dir is None:
                info.output_dir = output_dir
                info.resume = bool(cfg.get("sweep", {}).get("resume", False))
                info.excluded_keys = tuple(cfg.hydra.job.config.override_dirname.exclude_keys)
                launcher = cfg.hydra.get("launcher") or {}
                if args.multirun:
                    info.cells = sweep_size(cfg.hydra.sweeper, args.overrides)
                    info.in_process = not str(launcher.get("_target_", "")).endswith("TranslearnLauncher")
                if args.multirun and not info.in_process:
                    from translearn.sweep import resolve_devices

                    resolve_devices(launcher.get("devices"))
        except UserError as exc:
            raise UserError(_key_of_some_options(str(exc), args.overrides) or str(exc)) from None
        except Exception as exc:  # Hydra and OmegaConf raise several types for a bad override
            check_top_level_keys(cell, args.config_dir, args.config_name or CONFIG_NAME, adds=False)
            message = _key_of_some_options(str(exc), args.overrides)
            if message is None:
                check_nested_keys(cell, str(exc), args.config_dir, args.config_name or CONFIG_NAME)
            raise UserError(message or one_line(exc)) from None
        finally:
            GlobalHydra.instance().clear()
        if args.multirun:
            check_writable(output_dir, "sweep folder", "hydra.sweep.dir")
        else:
            check_writable(output_dir)
        # DDP ranks re-enter their run's folder (Lightning's, torchrun's and srun's: all but rank 0 skip
        # this), and translearn's launcher (sweep.cell) reruns its cells.
        launched = cfg.get("sweep", {}).get("cell") is not None
        if not args.multirun and not args.cfg and first_process() and not launched:
            check_fresh_run_dir(output_dir, cfg.get("ckpt_path"))
            info.owns_run_dir, info.ckpt_path = True, cfg.get("ckpt_path")
        if not args.multirun and cfg.get("ckpt_path"):
            info.resumes_a_run = (Path(output_dir).expanduser() / ".hydra").is_dir()
    if args.multirun and info.resume and not info.pinned_sweep_dir:
        # Without it the sweep folder is a new timestamped one: every cell would be trained again.
        raise UserError(
            "sweep.resume=true needs the folder of the sweep to resume: add hydra.sweep.dir=DIR (printed "
            "when the sweep stopped, and at its start)"
        )
    if args.multirun and info.output_dir and info.pinned_sweep_dir:
        from translearn.sweep import check_sweep_dir

        check_sweep_dir(Path(info.output_dir), info.resume)
    return info


def check_top_level_keys(overrides: list[str], config_dir: str | None, config_name: str, adds: bool) -> None:
    """A misspelt key (``stratgy=freeze``, ``+seeed=3``, ``+lr=0.1``) is a one-line error with the likely key.

    Hydra answers an unknown key with "use +stratgy=freeze to append", and following that hint trained the
    default strategy without a word. A new top-level key that resembles no key of the config (``+tag=a``)
    stays allowed: a label that names the cells of a sweep. ``adds``: check the ``+`` overrides (Hydra
    accepts them), else the plain ones (for when Hydra refused the command).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:
        return  # composing reports a malformed override in its own words
    dirs = [CONFIG_DIR, *([Path(config_dir).expanduser()] if config_dir else [])]
    groups = {p.name for d in dirs if d.is_dir() for p in d.iterdir() if p.is_dir()}
    cfg: DictConfig | None = None
    for o in parsed:
        top = o.key_or_group.split(".", 1)[0].split("/", 1)[0].split("@", 1)[0]
        if top == "hydra" or top in groups or o.is_add() != adds:
            continue
        if cfg is None:
            try:
                cfg = compose_config([], config_dir, config_name)
            except Exception:
                return  # the config itself does not compose: the cells' composition says why
            finally:
                GlobalHydra.instance().clear()
        if top in cfg:
            continue
        names = sorted((set(cfg) | groups) - {"hydra"})
        leaves = _leaf_paths(OmegaConf.to_container(cfg, resolve=False))
        leaf = did_you_mean(top, list(leaves), cutoff=0.8)
        close = did_you_mean(top, names) or (leaves[leaf] if leaf else None)
        if o.is_add() and not close and "." not in o.key_or_group:
            continue  # +tag=baseline: a label of the user's own
        hint = f"did you mean {close}? " if close else ""
        raise UserError(
            f"unknown key {o.key_or_group} in {o.input_line}: nothing reads '{top}' ({hint}"
            f"translearn's keys: {', '.join(names)})"
        )


# Nodes whose keys a class's signature decides (check_keys); model.optimizer/scheduler: optimization.check.
TYPED_GROUPS = ("dataset", "strategy", "model", "trainer")


def check_nested_keys(overrides: list[str], error: str, config_dir: str | None, config_name: str) -> None:
    """A plain override of a nested key the config lacks (``trainer.max_epoch=1``), answered as its +
    form is: "unknown key trainer.max_epoch ... did you mean trainer.max_epochs?".

    Hydra refuses it with "To append to your config use +trainer.max_epoch=1", the wrong fix for a typo:
    the + form is refused in turn, or, in a node no class checks, adds a key nothing reads. ``error`` is
    Hydra's message. Hydra's hint stays where + is the fix: an argument the class takes that the config
    does not list (``+trainer.gradient_clip_val=1``), a new entry resembling no key (``+callbacks.mine``).
    """
    import re

    found = re.search(r"Could not override '([\w.]+)'", error)
    parts = found.group(1).split(".") if found else []
    if len(parts) < 2 or parts[0] == "hydra":
        return
    key = ".".join(parts)
    plain = [o for o in overrides if o.split("=", 1)[0] == key]
    rest = [o for o in overrides if o not in plain]
    if not plain:
        return
    if parts[0] in TYPED_GROUPS:
        try:
            cfg = compose_config([*rest, *(f"+{o}" for o in plain)], config_dir, config_name)
        except Exception:
            return  # Hydra's own words
        finally:
            GlobalHydra.instance().clear()
        try:
            if parts[0] == "model" and parts[1] in ("optimizer", "scheduler"):
                from translearn.optimization import check as check_optimization

                check_optimization(cfg.model)
            check_keys(parts[0], cfg[parts[0]])
        except UserError as exc:
            if str(exc).startswith("unknown key "):
                raise
        return
    try:
        cfg = compose_config(rest, config_dir, config_name)
    except Exception:
        return
    finally:
        GlobalHydra.instance().clear()
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    depth = 0
    while depth < len(parts) - 1 and isinstance(node, dict) and parts[depth] in node:
        node, depth = node[parts[depth]], depth + 1
    if depth == 0 or not isinstance(node, dict) or parts[depth] in node:
        return  # a top-level key (check_top_level_keys), or a value in the way: Hydra's words
    where = ".".join(parts[:depth])
    check_known_keys(where, [parts[depth]], [str(k) for k in node], plain[0], new_entries=True)


def check_known_keys(
    where: str, keys: list[str], known: list[str], given: str | None = None, new_entries: bool = False
) -> None:
    """Keys of the node ``where`` that it does not have: one line with the likely key.

    ``new_entries``: the node takes new entries (an open node such as ``callbacks``), so only a key that
    resembles a known one is a typo.
    """
    names = sorted(k for k in known if not k.startswith("_"))
    for key in keys:
        if key in known:
            continue
        close = did_you_mean(key, names)
        if close is None and new_entries:
            continue
        hint = f"did you mean {where}.{close}? " if close else ""
        shown = f" in {given}" if given else ""
        raise UserError(
            f"unknown key {where}.{key}{shown}: {where} has no '{key}' ({hint}its keys: {', '.join(names)})"
        )


def _leaf_paths(tree: Any, prefix: str = "") -> dict[str, str]:
    """Each leaf key's name -> its first dotted path (``lr`` -> ``model.optimizer.lr``)."""
    found: dict[str, str] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                for name, where in _leaf_paths(value, path).items():
                    found.setdefault(name, where)
            elif not str(key).startswith("_"):
                found.setdefault(str(key), path)
    return found


def sweep_size(sweeper: DictConfig, overrides: list[str]) -> int | None:
    """How many jobs a multirun launches: the grid of Hydra's basic sweeper, or an Optuna study's trials.

    Recorded in sweep.json, so that the summary counts the cells that never got a folder (a sweep stopped
    early). None where it cannot be known beforehand (a glob over a group's options, another sweeper).
    """
    target = str(sweeper.get("_target_", ""))
    if "optuna" in target.lower():
        trials = sweeper.get("n_trials")
        return trials if isinstance(trials, int) else None
    if not target.endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    try:
        parsed = OverridesParser.create().parse_overrides([*params, *overrides])
        return sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))
    except Exception:  # glob() needs Hydra's config loader, which only the real sweep has
        return None


def _sweeper_params(fixed: list[str], config_dir: str | None, config_name: str) -> list[str]:
    """``hydra.sweeper.params`` (an experiment's grid, an hparams_search space) of a multirun, as overrides.

    Read from the command's fixed overrides alone; empty where they do not compose by themselves (a key of
    a swept group): then the first cell of the command finds them.
    """
    try:
        cfg = compose_config(fixed, config_dir, config_name, return_hydra_config=True)
        params = cfg.hydra.sweeper.get("params") or {}
    except Exception:
        return []
    finally:
        GlobalHydra.instance().clear()
    return [f"{k}={v}" for k, v in params.items()]


def instantiate(node: Any, **kwargs: Any) -> Any:
    """Hydra's instantiate, with a constructor's UserError unwrapped so it stays one line.

    The one place translearn builds objects from config (train, data prepare): Hydra wraps whatever a
    constructor raises in an InstantiationException, whose message would be a multi-line chain.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, UserError):
            raise exc.__cause__ from None
        raise
