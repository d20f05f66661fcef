"""``python -m translearn.eval RUN_DIR [KEY=VALUE ...] [--split val|test|all]``: a trained run, evaluated.

    python -m translearn.eval RUN_DIR                                   # its own val split, best checkpoint
    python -m translearn.eval RUN_DIR --split test
    python -m translearn.eval RUN_DIR dataset.root=/data/ants_2025      # the same dataset, another copy
    python -m translearn.eval RUN_DIR dataset=imagefolder dataset.root=/data/mine --split all  # any folder

The data module is rebuilt from the run's own ``.hydra/config.yaml`` with the overrides on top
(``dataset.*``, ``dataset=NAME``, ``trainer.*``); the model, its class names and its eval preprocessing come
from the checkpoint. Lightning's ``validate``/``test`` run the module's own metrics, so the numbers are the
ones training logged: on the run's own split and best checkpoint, ``acc`` is ``metrics.json``'s
``best_val_acc`` when the run validated on the whole split (any ``trainer.limit_val_batches`` of the run
is not applied here: eval reads every image unless ``trainer.limit_*_batches`` is given).

Results go beside the run, never over its own files: ``RUN_DIR/eval/<split>[-<hash of the overrides>]/``
holds ``metrics.json`` and ``confusion_<split>.csv``.

Pitfalls: a folder whose class names differ from the run's would be scored with shuffled labels, so it is
a one-line error naming the missing and extra classes; the preprocessing keys (``dataset.image_size``,
``resize_ratio``, ``interpolation``, ``mean``, ``std``) are the checkpoint's unless given on this command
line, so ``dataset=imagefolder`` does not bring its own 224 px crop to a model trained at 64; so is the colour
mode (``dataset.color``, ``gray_mode``): a gray model is never scored on RGB images because the run's
config file was edited.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from translearn.data.transforms import PREPROCESSING_KEYS
from translearn.errors import OneLineParser, UserError, exit_with
from translearn.log import log
from translearn.rundir import RunDir
from translearn.storage import write_json
from translearn.trained import Trained, load_trained, quiet_lightning

MAX_PRINTED_CLASSES = 20  # larger confusion matrices are only written, not printed


def _one_line(exc: Exception) -> str:
    from translearn.config import one_line

    return one_line(exc)


def apply_overrides(
    cfg: DictConfig, overrides: Sequence[str], colour: dict[str, Any] | None = None
) -> tuple[DictConfig, dict[str, Any]]:
    """The dataset node to build (the run's, with the overrides) and the Trainer arguments given.

    ``colour``: the checkpoint's ``color`` and ``gray_mode``, which win over the run's config unless given
    on the command line: the config is a file a user can edit, the checkpoint is what the model learnt on.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from translearn.config import check_keys, compose_config

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:
        raise UserError(_one_line(exc)) from None
    trainer: dict[str, Any] = {}
    dataset_keys: list[tuple[str, Any]] = []
    swap: str | None = None
    for o in parsed:
        key = o.key_or_group
        if o.is_delete() or o.is_sweep_override():
            raise UserError(f"{o.input_line}: eval takes one value per key (no ~deletions or sweeps)")
        if key == "dataset":
            swap = str(o.value())
        elif key.startswith("dataset."):
            dataset_keys.append((key.split(".", 1)[1], o.value()))
        elif key.startswith("trainer."):
            trainer[key.split(".", 1)[1]] = o.value()
        else:
            raise UserError(
                f"{o.input_line}: eval takes dataset=NAME, dataset.* and trainer.* overrides; the model "
                "and its preprocessing come from the checkpoint"
            )
    node = cfg.dataset
    if swap is not None:
        from hydra.core.global_hydra import GlobalHydra

        try:
            fresh = compose_config([f"dataset={swap}"]).dataset
        except Exception as exc:
            raise UserError(_one_line(exc)) from None
        finally:
            GlobalHydra.instance().clear()
        with open_dict(fresh):  # the run's loader settings and colour mode carry over to the new folder
            for key in ("batch_size", "num_workers", "color", "gray_mode"):
                if key in node:
                    fresh[key] = node[key]
        with open_dict(cfg):
            cfg.dataset = fresh
        node = cfg.dataset
    given = {key for key, _ in dataset_keys}
    with open_dict(node):
        for key in PREPROCESSING_KEYS:  # null: the checkpoint's own preprocessing (see the module docstring)
            if key in node and key not in given:
                node[key] = None
        for key, value in (colour or {}).items():
            if key in node and key not in given and value is not None:
                node[key] = value
        if "num_classes" in node and "num_classes" not in given:
            node.num_classes = None  # the class names are compared instead, with a clearer message
        for key, value in dataset_keys:
            OmegaConf.update(node, key, value, merge=False, force_add=True)
    check_keys("dataset", node)
    return node, trainer


def build_data(run_dir: Path, overrides: Sequence[str], trained: Trained) -> tuple[Any, dict[str, Any]]:
    """The run's data module (with the overrides), checked against the model: channels and class names."""
    from translearn.config import instantiate, register_resolvers
    from translearn.data.files import preprocessing_of
    from translearn.data.transforms import input_channels

    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        raise UserError(
            f"{run_dir} is not a run directory of translearn.train (no .hydra/config.yaml); eval needs the "
            "run's config to rebuild its data"
        )
    register_resolvers()
    cfg = OmegaConf.load(config)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)  # ${hydra:runtime.output_dir} has no Hydra run to read here
    colour = {key: trained.hparams.get(key) for key in ("color", "gray_mode")}
    node, trainer = apply_overrides(cfg, overrides, colour)
    chans = input_channels(str(node.get("color", "rgb")), str(node.get("gray_mode", "replicate")))
    if chans != int(trained.hparams.get("in_chans", 3)):
        raise UserError(
            f"dataset.color={node.get('color')} dataset.gray_mode={node.get('gray_mode')} gives "
            f"{chans}-channel images, but the model takes {trained.hparams.get('in_chans')}; keep the run's "
            "colour mode"
        )
    try:
        data = instantiate(node, _partial_=True)(preprocessing=preprocessing_of(trained.hparams))
    except Exception as exc:  # a Hydra/OmegaConf error about a value (an unknown interpolation, a bad type)
        if isinstance(exc, UserError):
            raise
        raise UserError(
            f"cannot build the dataset from {config} with {' '.join(overrides)}: {_one_line(exc)}"
        ) from None
    _say_changed_preprocessing(preprocessing_of(trained.hparams), data.preprocessing)
    data.prepare_data()
    check_classes(data.class_names, trained.class_names, data.root)
    relabel(data.index, trained.class_names)
    return data, trainer


def _say_changed_preprocessing(run: Any, now: Any) -> None:
    """Preprocessing keys given on eval's command line are used, and said: an accuracy read at another
    crop or normalisation than the run's is another measurement, and was reported without a word."""
    changed = [
        f"{key} {getattr(now, key)} (the run's: {getattr(run, key)})"
        for key in ("crop", "resize", "interpolation", "mean", "std")
        if getattr(now, key) != getattr(run, key)
    ]
    if changed:
        log.warning(f"evaluating with other preprocessing than the run's: {'; '.join(changed)}")


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def check_classes(found: list[str], expected: list[str], root: Path) -> None:
    """The data must hold the model's classes: otherwise a label would name a class the model never learnt."""
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    if missing or extra:
        parts = ([f"missing {_names(missing)}"] if missing else []) + (
            [f"extra {_names(extra)}"] if extra else []
        )
        raise UserError(
            f"{root} does not hold the run's classes ({'; '.join(parts)}); evaluate on a folder with exactly "
            f"the {len(expected)} classes the run was trained on ({_names(expected)})"
        )


def relabel(index: Any, expected: list[str]) -> None:
    """The same classes in another order (an image folder sorts its names; shapes does not): labels are
    renumbered in place to the model's order, before any dataset is built from the index."""
    if index.classes == expected:
        return
    position = {name: i for i, name in enumerate(expected)}
    old = list(index.classes)
    for split, samples in index.samples.items():
        index.samples[split] = [(path, position[old[label]]) for path, label in samples]
    index.classes[:] = expected


def out_folder(run_dir: Path, split: str, overrides: Sequence[str]) -> Path:
    """``eval/<split>`` for the run's own data; a short hash of the overrides tells the others apart."""
    if not overrides:
        return run_dir / "eval" / split
    digest = hashlib.sha1(json.dumps(list(overrides)).encode()).hexdigest()[:8]
    return run_dir / "eval" / f"{split}-{digest}"


def _warn_changed_data(
    run_dir: Path, checkpoint: Path, data: Any, overrides: Sequence[str], split: str
) -> None:
    """Files added, removed or changed since training re-split the data (``split=random`` moves files of
    the classes that changed): the run's val split is then another, and may hold images it trained on."""
    if split == "all" or any(o.split("=", 1)[0].lstrip("+") == "dataset.root" for o in overrides):
        return  # other data on purpose, or every image whatever its split
    trained = RunDir.stored_index(checkpoint) or (RunDir(run_dir).metrics() or {}).get("index_digest")
    now = data.index_digest
    if trained and now and now != trained:  # none recorded: a run from before the digest was kept
        log.warning(
            f"the data changed since the run trained (dataset index {trained} then, {now} now: files "
            f"added, removed or changed): this {split} split is not the one the run was scored on, and may "
            "hold images it trained on"
        )


def evaluate(
    run_dir: Path, overrides: Sequence[str], split: str = "val", accelerator: str = "cpu"
) -> dict[str, Any]:
    """Evaluate the run's best checkpoint on ``split``; writes and returns the eval's ``metrics.json``."""
    import pytorch_lightning as pl

    if not (run_dir / ".hydra" / "config.yaml").is_file():
        raise UserError(
            f"{run_dir} is not a run directory of translearn.train (no .hydra/config.yaml); eval needs the "
            "run's config to rebuild its data"
        )
    trained = load_trained(run_dir)
    data, trainer_args = build_data(run_dir, overrides, trained)
    _warn_changed_data(run_dir, trained.checkpoint, data, overrides, split)
    if split == "all":  # every image the folder holds, whatever split it was given to
        every = [s for name in ("train", "val", "test") for s in data.index.samples.get(name, [])]
        data.index.samples.clear()
        data.index.samples["val"] = every
    elif not data.has_split(split):
        raise UserError(f"{data.name} under {data.root} has no {split} split; pass --split val")
    stage = "test" if split == "test" else "val"
    args = {
        "accelerator": accelerator, "devices": 1, "logger": False, "enable_checkpointing": False,
        "enable_progress_bar": False, "enable_model_summary": False, **trainer_args,
    }  # fmt: skip
    start = time.perf_counter()
    with quiet_lightning():
        try:
            trainer = pl.Trainer(**args)
        except (TypeError, ValueError) as exc:  # Lightning's own message names the bad argument
            raise UserError(f"trainer: {_one_line(exc)}") from None
        loop = trainer.test if stage == "test" else trainer.validate
        results = loop(trained.module, datamodule=data, verbose=False)[0]
    confusion = getattr(trained.module, f"{stage}_confusion").compute().tolist()
    seconds = time.perf_counter() - start
    run_metrics = RunDir(run_dir).metrics() or {}
    scored = int(sum(map(sum, confusion)))  # trainer.limit_*_batches may leave images out

    def metric(name: str) -> float | None:
        value = results.get(f"{stage}/{name}")
        return None if value is None else float(value)

    metrics = {
        "run_dir": str(run_dir), "checkpoint": str(trained.checkpoint), "split": split,
        "overrides": list(overrides), "dataset": data.name, "root": str(data.root),
        "class_names": trained.class_names, "images": scored,
        "acc": metric("acc"), "acc_macro": metric("acc_macro"), "acc_top5": metric("acc_top5"),
        "loss": metric("loss"), "seconds": round(seconds, 2), "accelerator": accelerator,
        "run_best_val_acc": run_metrics.get("best_val_acc"), "run_test_acc": run_metrics.get("test_acc"),
        "status": "complete",
    }  # fmt: skip
    if trainer.is_global_zero:
        out = RunDir(out_folder(run_dir, split, overrides))
        out.path.mkdir(parents=True, exist_ok=True)
        metrics["confusion"] = str(out.write_confusion(split, confusion, trained.class_names))
        write_json(out.path / "metrics.json", metrics)
        metrics["out"] = str(out.path)
        _print(metrics, confusion)
        _note_partial_run(run_dir, split, trainer_args, run_metrics)
    return metrics


def _print(m: dict[str, Any], confusion: list[list[int]]) -> None:
    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    top5 = f" acc_top5={num(m['acc_top5'])}" if m["acc_top5"] is not None else ""
    log.info(
        f"{m['split']} split of {m['dataset']} ({m['root']}), {m['images']} images, "
        f"checkpoint {Path(m['checkpoint']).name}"
    )
    log.info(f"acc={num(m['acc'])} acc_macro={num(m['acc_macro'])}{top5} loss={num(m['loss'])}")
    names = m["class_names"]
    if len(names) <= MAX_PRINTED_CLASSES:
        width = max(4, *(len(n) for n in names))
        cells = 1 + max(min(8, max(len(n) for n in names)), *(len(str(v)) for row in confusion for v in row))
        print(f"confusion ({m['split']}; rows: true class, columns: predicted)")
        print(" " * width + "".join(f"{n[: cells - 1]:>{cells}}" for n in names))
        for name, row in zip(names, confusion, strict=True):
            print(f"{name:<{width}}" + "".join(f"{v:>{cells}}" for v in row))
    log.info(f"wrote {m['out']}/metrics.json and {Path(m['confusion']).name}")


def _note_partial_run(
    run_dir: Path, split: str, trainer_args: dict[str, Any], run_metrics: dict[str, Any]
) -> None:
    """Say so when the run scored fewer images of this split than eval did (debug=tiny scores 2 batches)."""
    if split == "all":
        return
    key = f"limit_{split}_batches"
    limit = OmegaConf.load(run_dir / ".hydra" / "config.yaml").get("trainer", {}).get(key)
    if limit in (None, 1.0) or key in trainer_args:
        return
    score = run_metrics.get("best_val_acc" if split == "val" else "test_acc")
    shown = (
        f" (its {'best_val_acc' if split == 'val' else 'test_acc'} {score:.4f})" if score is not None else ""
    )
    log.info(
        f"the run scored only trainer.{key}={limit} of its {split} split{shown}; eval read every image "
        f"(pass trainer.{key}={limit} to score the same ones)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineParser(
        usage_hint="python -m translearn.eval RUN_DIR [KEY=VALUE ...] [--split val|test|all]",
        prog="python -m translearn.eval",
        description="Evaluate a trained run's best checkpoint on its own split, or on another folder with "
        "the same classes: accuracy (micro), balanced accuracy (macro), top-5 (over 5 classes) and the "
        "confusion matrix, written to RUN_DIR/eval/<split>[-<hash>]/ (metrics.json, confusion_<split>.csv).",
    )
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="the run directory of a python -m translearn.train run"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dataset.root=DIR, dataset=NAME (another dataset config, e.g. imagefolder), other dataset.* "
        "keys, trainer.* (e.g. trainer.precision=bf16-mixed); the run's own config is the base",
    )
    parser.add_argument(
        "--split",
        choices=("val", "test", "all"),
        default="val",
        help="the run's val (default) or test split; all: every image of the data, whatever its split (for "
        "another folder of the same classes)",
    )
    parser.add_argument(
        "--accelerator", default="cpu", help="Lightning accelerator: cpu (default), gpu, mps, auto"
    )
    args = parser.parse_intermixed_args(argv)
    try:
        evaluate(Path(args.run_dir).expanduser(), args.overrides, args.split, args.accelerator)
    except UserError as exc:
        exit_with(str(exc))


if __name__ == "__main__":
    main(sys.argv[1:])
