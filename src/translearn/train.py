"""The Hydra entry point: compose → instantiate → fit → test → ``metrics.json``.

python -m translearn.train                                   # the embedded offline default
python -m translearn.train dataset=hymenoptera strategy=freeze
python -m translearn.train -m dataset=simpsons,caltech256 strategy=finetune,freeze
python -m translearn.train --help                            # every config group and knob
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from translearn import sweep
from translearn.config import (
    check_fresh_run_dir,
    check_in_process_strategy,
    command_line,
    first_process,
    instantiate,
    one_line,
    register_resolvers,
    validate_command_line,
)
from translearn.errors import RunRefused, UserError, exit_with
from translearn.log import info_rank_zero, log, mute_lightning_noise
from translearn.rundir import COMPLETE, CsvHistory, RunDir, RunLock, run_identity
from translearn.storage import write_atomic

# torch, torchvision and Lightning are imported where a run starts, not here: --help and a mistyped key
# or value were answered in 4-5 s, 3 s of them importing what they never use (audit 7; 9 s on a busy
# 2-core machine). tests/test_config.py checks that these answers load none of them.
if TYPE_CHECKING:
    import pytorch_lightning as pl

register_resolvers()


def run(cfg: DictConfig) -> dict[str, Any]:
    """One training run of a composed config; returns what it writes to ``metrics.json``."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import LearningRateMonitor

    from translearn import features
    from translearn.callbacks import RunIdentity, Throughput
    from translearn.checkpoints import AtomicCheckpointIO
    from translearn.data.transforms import PREPROCESSING_KEYS
    from translearn.module import precision_hint
    from translearn.pretrain import resolve_weights
    from translearn.weights import parse_weights, preprocessing_for

    mute_lightning_noise()
    out = Path(cfg.paths.output_dir)
    folder = RunDir(out)
    ckpt_path = cfg.get("ckpt_path")
    identity = run_identity(cfg)
    if ckpt_path == "last":
        done = folder.metrics()
        if done is not None and int(done.get("epochs") or 0) >= int(cfg.trainer.max_epochs):
            # Nothing left to train (a larger trainer.max_epochs continues the run instead), if these are
            # the run's own settings: other settings would be answered with another run's results.
            if folder.checkpoint_files():
                folder.check_same_run(folder.resume_checkpoint(), identity)
            log.info(f"{out} is already complete (metrics.json); nothing to resume")
            return done
        ckpt_path = str(folder.resume_checkpoint())
    if ckpt_path:  # before anything is written: a refused resume leaves the run as it was
        folder.check_same_run(Path(ckpt_path), identity)
        folder.check_epochs_left(Path(ckpt_path), cfg.trainer.get("max_epochs"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    choice = parse_weights(
        cfg.model.get("library", "torchvision"), cfg.model.backbone, str(cfg.model.weights)
    )
    # The weights decide the preprocessing; dataset.* keys the user set win (see conf/dataset/*.yaml).
    given = all(cfg.dataset.get(k) is not None for k in PREPROCESSING_KEYS)
    datamodule = instantiate(cfg.dataset, _partial_=True)(preprocessing=preprocessing_for(choice, given))
    index = None
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        # Lightning's once-per-node hook, run before the model exists because the model's shape comes from
        # the data; DDP starts the other ranks later, from trainer.fit, and they read the index it wrote.
        datamodule.prepare_data()
        index = datamodule.index_digest
    if ckpt_path:  # the data too, before anything of the run is written
        folder.check_same_data(Path(ckpt_path), index)
        _log_to_run_file()  # accepted: from here the run's log file records it
        random_split = "random" in str(getattr(datamodule, "split_name", lambda: "")())
        if index and random_split and folder.stored_index(Path(ckpt_path)) is None:
            log.warning(
                f"{ckpt_path} was saved before translearn recorded which file is in which split, and "
                "split=random places files differently since (by a hash of each file, not a shuffle): the "
                "resumed epochs validate on another split than the earlier ones; start a new run for "
                "comparable numbers"
            )
    if first_process():  # DDP ranks started later by Lightning run this again
        if ckpt_path:
            _record_config(cfg, out)
        folder.clear_failure()
    info_rank_zero(f"preprocessing {datamodule.preprocessing.describe()}")
    policy = instantiate(cfg.strategy)
    # The data decides the head and the first conv: read from the index, never typed in a config.
    model = instantiate(
        cfg.model, policy=policy, weights=resolve_weights(cfg), num_classes=datamodule.num_classes,
        in_chans=datamodule.in_chans, class_names=datamodule.class_names,
        preprocessing=datamodule.preprocessing.as_dict(), color=datamodule.color,
        gray_mode=datamodule.gray_mode,
    )  # fmt: skip
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if not (cfg.get("logger") or {}):  # Lightning refuses an LR monitor with nowhere to log
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    callbacks.append(RunIdentity(identity, index))
    resumed_from = Path(ckpt_path) if ckpt_path else None
    loggers = [_make_logger(c, folder, resumed_from) for c in (cfg.get("logger") or {}).values() if c]
    csv_history = CsvHistory.before_resume(loggers, resumed_from)
    extra = cfg.trainer.get("plugins")
    plugins = [*(instantiate(extra) if extra else []), AtomicCheckpointIO()]
    trainer = _make_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)
    hint = precision_hint(trainer.strategy.root_device.type, str(trainer.precision))
    if hint:
        info_rank_zero(hint)
    cache_start = time.perf_counter()
    if getattr(datamodule, "cache", "none") == "decoded":
        # The decoded store is built here, not in fit's setup: its build counted as training time
        # (train_seconds 8.4 s against 1.6 s once built) while cache_seconds said 0.0 (audit 7).
        datamodule.setup("fit")
    data, cache_line = features.maybe_cache(
        policy.cache_features, model, datamodule, cfg.paths.cache_dir, policy.cache_views, policy.cache_dtype,
        str(trainer.strategy.root_device), str(trainer.precision),
    )  # fmt: skip
    cache_seconds = time.perf_counter() - cache_start
    info_rank_zero(cache_line)
    try:
        for logger in trainer.loggers:  # Lightning's: none under fast_dev_run
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        start = time.perf_counter()
        try:
            trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        except SystemExit:
            # Lightning answers Ctrl-C with a graceful shutdown and sys.exit(1), which read as a failure
            # (exit 1, and an in-process sweep ended with no word); it is an interruption, resumable.
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            if csv_history is not None:
                csv_history.merge()
        clock = next((c for c in trainer.callbacks if isinstance(c, Throughput)), None)
        # The seconds of the fits before a resume (from the checkpoint) count too.
        train_seconds = time.perf_counter() - start + (clock.fit_seconds_before if clock else 0.0)
        if trainer.interrupted:
            raise UserError(
                "training was interrupted; rerun with ckpt_path=last and the same hydra.run.dir to resume"
            )
        fitted = {k: float(v) for k, v in trainer.callback_metrics.items()}
        timing = _throughput(trainer)  # before test(ckpt_path="best") restores the clock of the best epoch
        epochs = trainer.current_epoch
        in_sync = _replicas_in_sync(trainer, model)
        checkpoint = trainer.checkpoint_callback
        best_path = getattr(checkpoint, "best_model_path", "") or None
        best_val = RunDir.best_validation(Path(best_path) if best_path else None)
        tested: dict[str, float] = {}
        test_confusion = None
        test_start = time.perf_counter()
        if datamodule.has_split("test"):
            # The best checkpoint by path: ckpt_path="best" warns when several ModelCheckpoints are on.
            try:
                tested = trainer.test(model, datamodule=data, ckpt_path=best_path, verbose=False)[0]
            except SystemExit:  # Ctrl-C during the test pass: an interruption (exit 130), as in fit above
                if trainer.interrupted:
                    raise KeyboardInterrupt from None
                raise
            test_confusion = model.test_confusion.compute().tolist()  # every rank: it syncs under DDP
        timing["test_seconds"] = round(time.perf_counter() - test_start, 2)

        best_score = getattr(checkpoint, "best_model_score", None)
        # What trained in the epochs that ran: a gradual stage scheduled after the last epoch did not.
        trainable = sum(p.numel() for p in model.plan.trained_parameters(epochs))
        total = sum(p.numel() for p in model.parameters())
        metrics = {
            "dataset": cfg.dataset.name, "color": cfg.dataset.color, "gray_mode": cfg.dataset.gray_mode,
            "strategy": policy.name, "bn": policy.bn, "k": getattr(policy, "k", None),
            "stages": getattr(policy, "stages", None), "probe_epochs": getattr(policy, "probe_epochs", None),
            "backbone": cfg.model.backbone, "library": model.net.library, "weights": str(cfg.model.weights),
            "weights_used": choice.label, "preprocessing": datamodule.preprocessing.as_dict(),
            "normalize": _normalize(datamodule),
            "feature_cache": isinstance(data, features.CachedFeatures),
            "cache_seconds": round(cache_seconds, 2),
            "train_inputs": features.training_inputs(data, trainer.max_epochs or epochs),
            "seed": cfg.seed,
            "image_size": datamodule.image_size, "epochs": epochs, "max_epochs": trainer.max_epochs,
            "best_val_acc": float(best_score) if best_score is not None else fitted.get("val/acc_best"),
            "best_val_acc_macro": best_val.get("acc_macro"), "best_epoch": best_val.get("epoch"),
            "val_acc": fitted.get("val/acc"), "val_acc_macro": fitted.get("val/acc_macro"),
            "val_loss": fitted.get("val/loss"), "val_acc_top5": fitted.get("val/acc_top5"),
            "test_acc": tested.get("test/acc"), "test_acc_macro": tested.get("test/acc_macro"),
            "test_acc_top5": tested.get("test/acc_top5"),
            "train_seconds": round(train_seconds, 2), **timing, "trainable_params": trainable,
            "frozen_params": total - trainable, "total_params": total, "num_classes": datamodule.num_classes,
            "class_names": datamodule.class_names, "stage_names": [s.name for s in model.net.stages],
            "split_sizes": {split: datamodule.index.count(split) for split in ("train", "val", "test")},
            "num_workers": datamodule.workers(),
            "index_digest": index,
            "best_checkpoint": getattr(checkpoint, "best_model_path", None) or None,
            "world_size": trainer.world_size, "replicas_in_sync": in_sync,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "sweep_id": cfg.get("sweep", {}).get("id"), "run_dir": str(out), "status": "complete",
        }  # fmt: skip
        if trainer.fast_dev_run:  # a smoke check of one batch: no result a report could pick up
            if trainer.is_global_zero:
                log.info(f"fast_dev_run passed: one batch of each split ran; nothing recorded in {out}")
            return metrics
        if trainer.is_global_zero:
            # The best checkpoint's confusion matrices, by class name, before metrics.json marks it complete.
            if best_val:
                folder.write_confusion("val", best_val["confusion"], datamodule.class_names)
            if test_confusion is not None:
                folder.write_confusion("test", test_confusion, datamodule.class_names)
            folder.write_metrics(metrics)
            _print_summary(metrics)
            _wandb_summary(loggers, metrics)
        return metrics
    finally:
        _finish_wandb()


def _normalize(datamodule: Any) -> dict[str, list[float]]:
    """The mean and std the images were normalised with: ``preprocessing`` holds the weights' RGB values,
    and gray + adapt feeds one luma channel normalised with their luma equivalents."""
    from translearn.data.transforms import normalization

    prep = datamodule.preprocessing
    mean, std = normalization(datamodule.color, datamodule.gray_mode, prep.mean, prep.std)
    return {"mean": list(mean), "std": list(std)}


def _make_trainer(node: DictConfig, **kwargs: Any) -> pl.Trainer:
    """The Trainer; settings it refuses (no GPU for trainer=gpu, precision=bf17) are one line, not Hydra's
    "Error executing job" with a chain of exceptions."""
    import torch
    from hydra.errors import InstantiationException
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if not isinstance(cause, MisconfigurationException | ValueError | TypeError):
            raise
        accelerator = str(node.get("accelerator", ""))
        hint = ""
        if accelerator in ("gpu", "cuda", "mps") and not (
            torch.cuda.is_available() or torch.backends.mps.is_available()
        ):
            hint = f"; trainer.accelerator={accelerator} needs a GPU and none is visible: use trainer=auto"
        raise UserError(
            f"the trainer settings do not work here: {' '.join(str(cause).split())}{hint}"
        ) from None


def _record_config(cfg: DictConfig, out: Path) -> None:
    """The run's ``.hydra`` files, where ``main`` kept Hydra from writing them (``hydra.output_subdir=null``).

    Hydra writes them at job start, so a refused resume (other settings), one with nothing left to train,
    or a sweep's resume skipping a finished cell rewrote that run's recorded config, which the report and
    ``translearn.eval`` read. Written here once the run is known to train.
    """
    if not HydraConfig.initialized() or HydraConfig.get().output_subdir is not None:
        return  # Hydra wrote them (an older command line), or no Hydra job (tests, notebooks)
    hydra_cfg = HydraConfig.get()
    record = out / ".hydra"
    record.mkdir(parents=True, exist_ok=True)
    write_atomic(record / "config.yaml", OmegaConf.to_yaml(cfg))
    write_atomic(record / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
    write_atomic(record / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.overrides.task))


def _throughput(trainer: pl.Trainer) -> dict[str, float | None]:
    """Where the time went: training images per second (validation excluded) and validation seconds."""
    from translearn.callbacks import Throughput

    clock = next((c for c in trainer.callbacks if isinstance(c, Throughput)), None)
    if clock is None:
        return {"train_img_per_s": None, "val_seconds": None, "train_samples": None}
    rate = clock.train_img_per_s
    return {
        "train_img_per_s": round(rate, 2) if rate else None,
        "val_seconds": round(clock.val_seconds, 2),
        "train_samples": clock.train_samples,
    }


def _make_logger(logger_cfg: DictConfig, folder: RunDir, resumed_from: Path | None) -> Any:
    """Instantiate a logger; a resumed W&B run continues the run id stored in its checkpoint."""
    if str(logger_cfg.get("_target_", "")).endswith("WandbLogger") and resumed_from is not None:
        stored = folder.wandb_run_id(resumed_from)
        if stored:
            return instantiate(logger_cfg, id=stored, resume="allow")
    return instantiate(logger_cfg)


def _replicas_in_sync(trainer: pl.Trainer, model: pl.LightningModule) -> bool | None:
    """Under DDP, every rank's weights must be identical after training; None for one process."""
    import torch

    if trainer.world_size < 2:
        return None
    params = [p.detach().double() for p in model.parameters()]
    local = torch.stack([sum(p.sum() for p in params), sum((p * p).sum() for p in params)]).to(model.device)
    gathered = trainer.strategy.all_gather(local)
    return bool(torch.equal(gathered.min(dim=0).values, gathered.max(dim=0).values))


def _wandb_summary(loggers: list[Any], metrics: dict[str, Any]) -> None:
    """The numbers a dashboard of the grid groups and compares runs by."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            keys = (
                "best_val_acc",
                "val_acc",
                "test_acc",
                "train_seconds",
                "trainable_params",
                "total_params",
            )
            logger.experiment.summary.update({k: metrics[k] for k in keys})


def _print_summary(m: dict[str, Any]) -> None:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    print(flush=True)  # off the progress bar's line
    log.info(
        f"{m['dataset']}/{m['color']} {m['strategy']} (bn={m['bn']}) {m['backbone']} "
        f"weights={m['weights']}: best_val_acc={pct(m['best_val_acc'])} val_acc={pct(m['val_acc'])} "
        f"test_acc={pct(m['test_acc'])} train_seconds={m['train_seconds']} "
        f"trainable_params={m['trainable_params']:,}/{m['total_params']:,}"
    )
    log.info(f"run directory {m['run_dir']}")


def _log_to_run_file() -> None:
    """translearn's lines and Lightning's also write the run's log file.

    Hydra gives the root logger a file handler (``<run dir>/train.log``), but the ``translearn`` logger
    and Lightning's keep their own console handlers and do not propagate, so without this the file
    stays empty.
    """
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for name in (
        "translearn",
        "pytorch_lightning",
        "lightning_fabric",
        "lightning.pytorch",
        "lightning.fabric",
    ):
        logger = logging.getLogger(name)
        if logger.propagate:
            continue  # its records reach the root's file handler already
        for handler in files:
            if handler not in logger.handlers:
                logger.addHandler(handler)


def _finish_wandb() -> None:
    """Close this job's W&B run so the next cell of a multirun opens its own."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    """The run's ``optimized_metric`` as a float: what Hydra's sweepers (Optuna's) read of every job."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return _in_process_cell(cfg)
    folder = RunDir(Path(cfg.paths.output_dir))
    if not cfg.get("ckpt_path"):  # a resume logs to the run's file once it is accepted (run())
        _log_to_run_file()
    try:
        metrics = run(cfg)
    except RunRefused as exc:
        exit_with(str(exc))
    except KeyboardInterrupt:
        if first_process() and cfg.get("sweep", {}).get("cell") is None:  # a sweep's cell: the sweep says
            hint = (
                f"resume with the same command plus ckpt_path=last hydra.run.dir={folder.path}"
                if folder.checkpoint_files()
                else "no checkpoint was written yet, so rerun the command to start again"
            )
            log.info(f"training interrupted; {hint}")
        raise SystemExit(130) from None
    except UserError as exc:
        _record_failure(folder, str(exc))
        exit_with(str(exc))
    except Exception as exc:  # recorded, so the report says "failed", not "still running"; then the traceback
        _record_failure(folder, one_line(exc))
        raise
    return sweep.objective(metrics, cfg.get("optimized_metric"))


def _record_failure(folder: RunDir, reason: str) -> None:
    if first_process() and folder.path.is_dir():
        folder.record_failure(reason)


def _in_process_cell(cfg: DictConfig) -> float | None:
    """A cell run inside the sweep's process (Hydra's basic launcher, submitit on SLURM).

    A failing cell leaves ``failure.json`` and raises a one-line ``CellFailed``: Hydra's launchers record
    it as a failed job and run the other cells (Optuna: a failed trial, and the study goes on); ``main``
    lists every cell at the end.
    """
    cell = RunDir(Path(cfg.paths.output_dir))
    _log_to_run_file()
    if cfg.sweep.resume and cell.status == COMPLETE:
        return sweep.objective(cell.metrics(), cfg.get("optimized_metric"))
    if cfg.sweep.resume and cell.checkpoint_files():
        with open_dict(cfg):
            cfg.ckpt_path = "last"  # run() records the config once the resume is accepted
    else:
        _record_config(cfg, cell.path)  # only where main kept Hydra from writing it
    try:
        check_in_process_strategy(cfg.trainer)  # checked before the grid too; an Optuna trial can set it
        metrics = run(cfg)
    except Exception as exc:  # one cell's failure must not end the sweep
        reason = str(exc) if isinstance(exc, UserError) else one_line(exc)
        if not isinstance(exc, RunRefused):  # a refused resume leaves the cell as it was
            cell.record_failure(reason)
        log.error(f"cell {cell.name} failed: {reason}")
        raise sweep.CellFailed(f"translearn: error: cell {cell.name} failed: {reason}") from None
    return sweep.objective(metrics, cfg.get("optimized_metric"))


def _hydra_writes_no_record() -> None:
    """``hydra.output_subdir=null`` (unless the command sets it): :func:`_record_config` writes .hydra."""
    if not any(a.startswith("hydra.output_subdir=") for a in sys.argv):
        sys.argv.append("hydra.output_subdir=null")


def _sigterm_interrupts() -> None:
    """SIGTERM (plain ``kill``, a SLURM time limit or preemption) stops a run as Ctrl-C does.

    Lightning answers SIGTERM during ``fit`` with its own handler (and this one is restored after it);
    before and after, during a feature-cache build or the test pass, the default action killed the
    process with exit 143, no word, no failure record and the build's partial left behind.
    """
    import signal
    import threading

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    """Console entry point (``translearn-train``): validate the command line in one line, then run Hydra.

    With ``-m`` the sweep folder is fixed here (so it is known afterwards, and W&B groups by its name),
    claimed (one live sweep per folder, the same command on resume), and after the sweep every cell is
    listed and the exit code is non-zero if any failed.
    """
    sweep.die_with_sweep()  # a cell of translearn's launcher ends with its sweep
    _sigterm_interrupts()
    sys.argv[1:] = command_line(sys.argv[1:])  # trainer.gradient_clip_val=1, dataset.root=data
    try:
        info = validate_command_line(sys.argv[1:])
    except UserError as exc:
        exit_with(str(exc))
    if not (info.multirun and info.output_dir):
        if info.resumes_a_run:
            _hydra_writes_no_record()  # run() rewrites .hydra once the resume is accepted
        lock = RunLock(Path(info.output_dir or ".").expanduser())
        if info.owns_run_dir:  # rank 0 only: srun starts every task of a DDP run with the same command
            try:
                lock.acquire()
                # Checked again under the lock: a run started at the same moment may have finished since.
                check_fresh_run_dir(str(info.output_dir), info.ckpt_path)
            except UserError as exc:
                lock.release()
                exit_with(str(exc))
        try:
            _hydra_main()
        finally:
            lock.release()
        return
    sweep_dir = Path(info.output_dir)
    lock = sweep.SweepLock(sweep_dir)
    try:
        lock.acquire()
        sweep.check_identity(
            sweep_dir, [a for a in sys.argv[1:] if not a.startswith("-")], info.resume, info.cells
        )
    except UserError as exc:
        lock.release()
        exit_with(str(exc))
    if info.resume and info.in_process:
        # Hydra's run_job writes .hydra at every job's start, so a resume rewrote the recorded config of
        # each finished cell it skipped; _in_process_cell writes it for the cells that run.
        _hydra_writes_no_record()
    if not info.pinned_sweep_dir:
        sys.argv.append(f"hydra.sweep.dir={info.output_dir}")
    if not any(a.startswith(("sweep.id=", "++sweep.id=")) for a in sys.argv):
        sys.argv.append(f"++sweep.id={sweep_dir.name}")
    # Cell folders are named by what varies across the grid, not by every override on the line; the
    # whole command is in sweep.json, and a resume must repeat it.
    excluded = info.cell_name_excluded()
    sys.argv.append(f"hydra.job.config.override_dirname.exclude_keys=[{','.join(excluded)}]")
    code = 0
    try:
        _hydra_main()
    except SystemExit as exc:  # Hydra exits 1 after a failed cell (its one line is already printed)
        code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        code = 130
        log.info(
            "sweep interrupted; every cell can be resumed: rerun the same command with sweep.resume=true "
            f"hydra.sweep.dir={sweep_dir}"
        )
    finally:
        lock.release()
    raise SystemExit(max(sweep.report(sweep_dir), code))


if __name__ == "__main__":
    main()
