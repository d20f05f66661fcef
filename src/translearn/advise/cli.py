"""``python -m translearn.advise [KEY=VALUE ...]``: validate the command in one line, search, answer.

The command line is the train command line of the user's data and model, plus ``advise.*`` keys
(``conf/advise.yaml``). It is composed once, as ``translearn.train`` would compose it, and checked with
the train command's own checks (``translearn.config.check_values`` / ``check_launch``) before anything
is measured, so a typo costs one line and no time: misspelt keys (``advise.budget_minute``, ``+stratgy``,
``trainer.max_epoch``) get the likely one, in any form (plain, ``+``, ``++``). Keys the search sets itself
(strategy and its stage keys, seeds' sweep, the run and sweep folders) are refused with the reason.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from translearn.advise.candidates import FAMILIES, Candidate, candidates_for
from translearn.advise.search import Request, Search, rung_cells, start
from translearn.errors import UserError, exit_with
from translearn.log import log

CONFIG_NAME = "advise"
USAGE = (
    "python -m translearn.advise [KEY=VALUE ...] [advise.budget_minutes=M] [advise.dir=DIR] "
    "(any train override: dataset=..., dataset.root=..., model.backbone=..., trainer=..., launcher=...)"
)
# The search decides these; a user value would be silently overridden, so it is refused instead.
CHOSEN = {
    "strategy": "the strategies are what it searches",
    "strategy.k": "it sweeps first_k's k",
    "strategy.stages": "it sweeps surgical's stages",
    "strategy.probe_epochs": "lp_ft's probe is half of each rung's epochs",
    "strategy.start": "gradual is not a candidate",
    "strategy.every": "gradual is not a candidate",
    "strategy.epochs": "gradual is not a candidate",
    "strategy.max_stages": "gradual is not a candidate",
    "hydra.run.dir": "its runs go under advise.dir",
    "hydra.sweep.dir": "its sweeps go under advise.dir",
    "sweep.resume": "rerun with advise.dir=DIR to resume",
    "sweep.id": "each rung is its own sweep",
    "sweep.cell": "each rung is its own sweep",
    "ckpt_path": "rerun with advise.dir=DIR to resume",
    "hparams_search": "it runs its own search",
}
RANKABLE = ("best_val_acc", "best_val_acc_macro", "val_acc", "val_acc_macro", "val_acc_top5")
RESUME_FREE = ("launcher", "hydra.launcher.", "advise.budget_minutes", "advise.dir", "advise.parallel")
SLURM_PARALLEL = 1024  # launcher=slurm: every cell of a command at once (queue waits not counted)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _count(value: Any, name: str, least: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UserError(f"advise.{name} must be an integer >= {least}, got {value}")
    return value


def _parallel(cfg: Any, given: int | None) -> int:
    """Cells that run at once under the chosen launcher: the budget is wall-clock time."""
    if given is not None:
        return given
    launcher = cfg.hydra.get("launcher") or {}
    target = str(launcher.get("_target_", ""))
    if target.endswith("SlurmLauncher"):
        return SLURM_PARALLEL
    if target.endswith("TranslearnLauncher") and launcher.get("devices") is not None:
        from translearn.sweep import resolve_devices

        devices = resolve_devices(launcher.get("devices")) or []
        return max(1, len(devices) // max(1, int(launcher.get("gpus_per_cell") or 1)))
    return 1


def advise_keys() -> list[str]:
    """The ``advise.*`` keys, as ``conf/advise.yaml`` lists them."""
    from omegaconf import OmegaConf

    from translearn.config import CONFIG_DIR

    return [str(k) for k in OmegaConf.load(CONFIG_DIR / f"{CONFIG_NAME}.yaml").advise]


def check_advise_keys(parsed: Sequence[Any]) -> None:
    """Every ``advise.*`` key of the command is one advise reads, in any form (``+``, ``++`` or plain).

    ``+advise.budget_minute=1`` was accepted, and the search ran with the default 30-minute budget.
    """
    from translearn.config import check_known_keys

    for o in parsed:
        group, _, rest = o.key_or_group.partition(".")
        if group == "advise" and rest:
            check_known_keys("advise", [rest.split(".", 1)[0]], advise_keys(), o.input_line)


def validate(argv: Sequence[str], started: float) -> Request:
    """The command line as a :class:`Request`; any problem is a one-line UserError, before any work."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from translearn.config import (
        check_launch,
        check_nested_keys,
        check_top_level_keys,
        check_values,
        check_writable,
        compose_config,
        one_line,
    )
    from translearn.sweep import objective_key

    flags = [a for a in argv if a.startswith("-")]
    if flags:
        raise UserError(f"{flags[0]} is not an option of advise; usage: {USAGE}")
    try:
        parsed = OverridesParser.create().parse_overrides(list(argv))
    except Exception as exc:
        raise UserError(one_line(exc)) from None
    for o in parsed:
        key = o.key_or_group
        if o.is_sweep_override():
            raise UserError(f"{o.input_line}: advise runs its own grid; give one value per key")
        if key in CHOSEN:
            hint = "; use advise.dir=DIR" if key in ("hydra.sweep.dir", "hydra.run.dir") else ""
            raise UserError(f"advise sets {key} itself ({CHOSEN[key]}): drop {o.input_line}{hint}")
    check_advise_keys(parsed)
    # Train's keys as train checks them (+stratgy=freeze was found by the first rung, after the probe).
    check_top_level_keys(list(argv), None, CONFIG_NAME, adds=True)
    overrides = list(argv)
    if not any(_key(o) == "launcher" for o in overrides):
        overrides.append("launcher=inline")  # cells share one process: no interpreter start per cell
    try:
        cfg = compose_config(overrides, config_name=CONFIG_NAME, return_hydra_config=True)
        if "ddp" in str(cfg.trainer.get("strategy", "")) and "launcher=inline" in overrides[-1:]:
            overrides[-1] = "launcher=local"  # trainer=ddp needs a process per cell
            cfg = compose_config(overrides, config_name=CONFIG_NAME, return_hydra_config=True)
        check_values(cfg)
        check_launch(cfg, multirun=True)
    except UserError:
        raise
    except Exception as exc:  # Hydra and OmegaConf raise several types for a bad override
        check_top_level_keys(overrides, None, CONFIG_NAME, adds=False)
        check_nested_keys(overrides, str(exc), None, CONFIG_NAME)
        raise UserError(one_line(exc)) from None
    finally:
        GlobalHydra.instance().clear()
    node = cfg.advise
    budget = node.budget_minutes
    if isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0:
        raise UserError(f"advise.budget_minutes must be a number of minutes > 0, got {budget}")
    families = list(node.candidates or [])
    unknown = [f for f in families if f not in FAMILIES]
    if not families or unknown:
        got = unknown[0] if unknown else "[]"
        raise UserError(f"advise.candidates must list some of {', '.join(FAMILIES)}, got {got}")
    least = 2 if "lp_ft" in families else 1
    epochs = _count(node.epochs, "epochs", least, allow_none=True)
    max_epochs = node.max_epochs
    if max_epochs is None:  # the recipe's epochs, at least what rung 0 trains
        max_epochs = max(least, epochs or 1, int(cfg.trainer.max_epochs))
    _count(max_epochs, "max_epochs", max(least, epochs or 1))
    metric = objective_key(cfg.get("optimized_metric"))
    if metric not in RANKABLE:
        raise UserError(
            f"advise ranks candidates by a validation accuracy; optimized_metric={cfg.optimized_metric} "
            f"is not one (use val/acc_best, val/acc, val/acc_macro or best_val_acc_macro)"
        )
    seed = cfg.seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"seed must be an integer, got {seed}")
    # Microseconds, as Hydra's run folders: two searches started in the same second never share one.
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    folder = Path(str(node.dir)) if node.dir else Path(str(cfg.paths.log_dir)) / "advise" / stamp
    folder = folder.expanduser().absolute()
    check_writable(str(folder))
    user = [o for o in argv if not _key(o).startswith("advise.")]
    train = [o for o in overrides if not _key(o).startswith("advise.") and _key(o) != "seed"]
    settings = {
        "overrides": sorted(o for o in user if not _key(o).startswith(RESUME_FREE) and _key(o) != "seed"),
        "seed": seed,
        "families": families,
        "eta": _count(node.eta, "eta", 2),
        "seeds": _count(node.seeds, "seeds", 1),
        "epochs": epochs,
        "max_epochs": max_epochs,
        "probe_batches": _count(node.probe_batches, "probe_batches", 1),
        "probe_epochs": _count(node.probe_epochs, "probe_epochs", 1),
        "metric": metric,
    }
    parallel = _parallel(cfg, _count(node.parallel, "parallel", 1, allow_none=True))
    return Request(cfg, folder, train, settings, float(budget) * 60, parallel, started, user)


def advise(request: Request, imports_seconds: float) -> Any:
    """Probe, search and answer; returns the :class:`translearn.advise.answer.Advice` to write."""
    from translearn.advise.probe import GradientProbe

    families = request.settings["families"]
    search, candidates = start(request, lambda n: candidates_for(n, families), imports_seconds)
    try:
        search.run(candidates)
    finally:
        search.state.save()  # the time spent counts on resume, even after Ctrl-C
    return build_advice(search, candidates, GradientProbe.from_dict(search.state.data["gradients"]))


def build_advice(search: Search, candidates: list[Candidate], gradients: Any) -> Any:
    """The ranked table, the decision and the final command, from every rung's runs."""
    from translearn.advise import answer

    request, data = search.request, search.state.data
    settings, metric = request.settings, request.settings["metric"]
    plans = data["rungs"]
    rungs = [(r["epochs"], rung_cells(request.folder, plans, i)) for i, r in enumerate(plans)]
    ranked = answer.rank(answer.entries(rungs, metric, candidates))
    decision = answer.decide(ranked)
    final_epochs = max(int(settings["max_epochs"]), decision.chosen.epochs)
    user = [o for o in request.user_overrides if not _key(o).startswith(RESUME_FREE)]
    cfg = request.cfg
    title = f"{cfg.dataset.name} ({cfg.dataset.color}), {cfg.model.backbone}, weights={cfg.model.weights}"
    advice = answer.Advice(
        sentence=answer.recommendation(decision, ranked, gradients.stages, final_epochs),
        noise=decision.noise_sentence(),
        command=answer.final_command(user, decision.chosen.candidate, final_epochs),
        ranked=ranked,
        decision=decision,
        stage_names=gradients.stages,
        probe={**gradients.as_dict(), "linear": data.get("linear")},
        rungs=data["rungs"],
        budget={
            "minutes": request.budget_seconds / 60,
            "spent_minutes": search.state.spent() / 60,
            "stopped": data.get("stopped", "an interruption"),
            "folder": str(request.folder),
            "parallel": request.parallel,
        },
        metric=metric,
        title=title,
    )
    search.state.save()
    advice.budget["spent_minutes"] = search.state.spent() / 60
    return advice


def help_text() -> str:
    """Usage, then the advise keys with their comments, as conf/advise.yaml lists them."""
    from translearn.config import CONFIG_DIR

    text = (CONFIG_DIR / f"{CONFIG_NAME}.yaml").read_text()
    keys = text[text.index("advise:") :].rstrip()
    return (
        "translearn advise: which layers of a pretrained network to retrain for your data, within a time "
        f"budget.\n\nusage: {USAGE}\n\n{keys}\n\nExample:\n  python -m translearn.advise "
        "dataset=imagefolder dataset.root=DIR advise.budget_minutes=60"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one line on any user error, the advice on stdout, its files in advise.dir."""
    started = time.monotonic()
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(help_text())
        return
    folder = None
    try:
        from translearn.config import command_line

        args = command_line(args)  # as train takes them
        request = validate(args, started)
        folder = request.folder
        tick = time.perf_counter()
        import pytorch_lightning  # noqa: F401  (what each train command imports too: it prices their start)
        import torch  # noqa: F401

        imports = time.perf_counter() - tick
        from translearn.advise import answer

        advice = advise(request, imports)
        files = answer.write(advice, request.folder)
    except UserError as exc:
        exit_with(str(exc))
    except KeyboardInterrupt:
        where = f" advise.dir={folder}" if folder else ""
        exit_with(f"interrupted; rerun the same command with{where} to resume", code=130)
    print(advice.markdown())
    for path in files:
        log.info(f"wrote {path}")
    log.info(f"every run of the search: python -m translearn.report {request.folder}")
