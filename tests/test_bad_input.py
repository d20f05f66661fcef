"""Every bad input tried, and the one line (or the logged skip) it gets: the README's table, row by row.

Command-line rows go through ``validate_command_line``, exactly what ``python -m translearn.train`` runs
before Hydra; ``tests/test_config.py`` checks that the CLI turns a UserError into one line and exit 2.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from helpers import TINY
from translearn.config import validate_command_line
from translearn.errors import UserError

COMMAND_LINE = [
    # (what the user typed, fragments of the one-line error)
    (["model.optimizer.lr=-1"], ("model.optimizer.lr must be > 0", "-1")),
    (["model.optimizer.lr=0"], ("model.optimizer.lr must be > 0",)),
    (["model.optimizer.momentum=-0.5"], ("model.optimizer.momentum must be in [0, 1)", "-0.5")),
    (["model.optimizer.weight_decay=-1"], ("model.optimizer.weight_decay must be >= 0",)),
    (
        ["++trainer.gradient_clip_val=-1"],
        ("trainer.gradient_clip_val must be >= 0", "reverses the gradients"),
    ),
    (
        ["model.scheduler.gamma=-0.5", "model.scheduler.step_size=1", "trainer.max_epochs=3"],
        ("model.scheduler (StepLR) takes the learning rate to -0.0005 at epoch 1", "climbs the loss"),
    ),
    (
        ["model/scheduler=cosine", "model.scheduler.eta_min=-0.01", "trainer.max_epochs=4"],
        ("model.scheduler (CosineAnnealingLR) takes the learning rate to", "climbs the loss"),
    ),
    (["model.channels_last=yes"], ("model.channels_last must be auto, true or false, got 'yes'",)),
    (["model/optimizer=adam"], ("unknown model/optimizer 'adam'; choose one of: adamw, sgd",)),
    (["model/scheduler=linear"], ("unknown model/scheduler 'linear'", "warmup_cosine")),
    (
        ["model.optimizer._target_=torch.optim.Nope"],
        ("model.optimizer._target_=torch.optim.Nope is not a torch.optim.Optimizer class",),
    ),
    (
        ["model.scheduler._target_=torch.optim.SGD"],
        ("model.scheduler._target_=torch.optim.SGD is not a torch.optim.lr_scheduler.LRScheduler class",),
    ),
    (["+model.optimizer.foo=1"], ("unknown key model.optimizer.foo: SGD takes no 'foo'",)),
    (["model.optimizer.momentun=0.9"], ("SGD takes no 'momentun' (did you mean model.optimizer.momentum?",)),
    (["model.scheduler.gama=0.5"], ("StepLR takes no 'gama' (did you mean model.scheduler.gamma?",)),
    (["model/optimizer=adamw", "+model.optimizer.momentum=0.9"], ("AdamW takes no 'momentum'", "betas")),
    (["trainer.max_epochs=0"], ("trainer.max_epochs must be >= 1", "got 0")),
    (["trainer.max_epochs=-1"], ("trainer.max_epochs must be >= 1", "got -1")),
    (
        ["ckpt_path=/no/such/run/last.ckpt"],
        ("ckpt_path=/no/such/run/last.ckpt does not exist", "ckpt_path=last"),
    ),
    (["+dataset.vflip=true"], ("unknown key dataset.vflip", "ShapesDataModule")),
    (["+strategy.warmup=3"], ("unknown key strategy.warmup", "Finetune")),
    # Misspelt keys: Hydra's "use +stratgy=freeze to append" hint trained the default strategy silently.
    (["stratgy=freeze"], ("unknown key stratgy", "did you mean strategy?")),
    (["+stratgy=freeze"], ("unknown key stratgy", "did you mean strategy?")),
    (["+seeed=3"], ("unknown key seeed", "did you mean seed?")),
    (["+lr=0.1"], ("unknown key lr", "did you mean model.optimizer.lr?")),
    (["+max_epochs=3"], ("unknown key max_epochs", "did you mean trainer.max_epochs?")),
    (["+trainer.max_epoch=1"], ("unknown key trainer.max_epoch", "did you mean trainer.max_epochs?")),
    (  # the whole grid is checked before its first cell starts, not when this cell's turn comes
        ["-m", "strategy=freeze,lp_ft", "trainer.max_epochs=2"],
        ("strategy.probe_epochs=5 leaves no fine-tuning epoch in trainer.max_epochs=2",),
    ),
    (  # the backbone's stages too: k=9 was found when that cell's turn came, after k=1 had trained
        ["-m", "strategy=first_k", "strategy.k=1,9"],
        ("strategy.k=9 is out of range for resnet18, which has 5 stages",),
    ),
    (["strategy=surgical", "strategy.stages=[7]"], ("resnet18",)),
    (  # each cell failed in turn, with Hydra's "Error executing job" lines, after the grid had started
        ["-m", "launcher=inline", "trainer=ddp_cpu", "seed=0,1"],
        ("trainer.strategy=ddp inside launcher=inline would relaunch the whole sweep", "launcher=local"),
    ),
    (["dataset=_base"], ("dataset=_base holds the keys every dataset shares; it is not a dataset",)),
    (
        ["-m", "strategy=finetune,freeze,first_k", "strategy.k=1,2"],
        ("strategy.k is a key of strategy=first_k only", "-m strategy=first_k strategy.k=1,2"),
    ),
    (
        ["-m", "strategy=finetune,freeze,first_k", "+strategy.k=1,2"],
        ("strategy.k is a key of strategy=first_k only", "-m strategy=first_k strategy.k=1,2"),
    ),
    # A misspelt nested key without +: Hydra said "To append to your config use +trainer.max_epoch=1", and
    # only the + form got the likely key. Answered as the + form is (NESTED_TYPOS: never a "+" hint).
    (["trainer.max_epoch=1"], ("unknown key trainer.max_epoch", "did you mean trainer.max_epochs?")),
    (["model.optimizer.learning_rate=0.1"], ("unknown key model.optimizer.learning_rate", "SGD takes no")),
    (["strategy.kk=3"], ("unknown key strategy.kk", "Finetune takes no 'kk'")),
    (["strategy=first_k", "strategy.kk=3"], ("unknown key strategy.kk", "did you mean strategy.k?")),
    (["strategy=freeze", "strategy.k=3"], ("unknown key strategy.k", "Freeze takes no 'k'")),
    (["dataset=hymenoptera", "dataset.splt=x"], ("unknown key dataset.splt", "did you mean dataset.split?")),
    (["paths.dta_dir=/data"], ("unknown key paths.dta_dir", "did you mean paths.data_dir?")),
    (["-m", "trainer.max_epoch=1,2"], ("unknown key trainer.max_epoch", "did you mean trainer.max_epochs?")),
    # The feature cache's settings: checked when the Trainer was already built (Lightning's "GPU available"
    # lines first), and in a sweep only when the cell's turn came, after the cells before it had trained.
    (
        ["strategy=freeze", "strategy.cache_features=maybe"],
        ("strategy.cache_features must be auto, true or false, got 'maybe'",),
    ),
    (
        ["-m", "strategy=freeze", "strategy.cache_features=auto,maybe"],
        ("strategy.cache_features must be auto, true or false, got 'maybe'",),
    ),
    (["strategy=freeze", "strategy.cache_views=0"], ("strategy.cache_views must be >= 1", "got 0")),
    (["strategy=freeze", "strategy.cache_views=two"], ("strategy.cache_views must be >= 1", "got two")),
    (["strategy=freeze", "strategy.cache_dtype=int8"], ("strategy.cache_dtype must be float32 or float16",)),
    (
        ["strategy=finetune", "strategy.cache_features=true"],
        ("strategy.cache_features=true but caching would not be exact", "trains the stem", "auto or false"),
    ),
    (
        ["strategy=freeze", "strategy.bn=train", "strategy.cache_features=true"],
        ("strategy.cache_features=true but caching would not be exact", "adapts BatchNorm statistics"),
    ),
    (
        ["-m", "strategy=freeze,finetune", "strategy.cache_features=true"],
        ("strategy.cache_features=true but caching would not be exact", "trains the stem"),
    ),
    # Each cell's data folder: all 16 cells started, and each failed with "does not exist" in its turn.
    (
        ["-m", "experiment=seed2017_grid", "paths.data_dir=/no/such/data"],
        ("hymenoptera: dataset.root /no/such/data/hymenoptera does not exist", "--download"),
    ),
    (["dataset=simpsons", "dataset.root=/no/such/simpsons"], ("simpsons: dataset.root", "does not exist")),
    (["dataset=imagefolder"], ("imagefolder: set dataset.root=DIR",)),
    # An escaped \${ in a path: Hydra's instantiate resolved it again, a traceback after the checks passed.
    (["dataset=imagefolder", "dataset.root=/data/dol\\${x}"], ("dataset.root=/data/dol${x} holds '${'",)),
    # Unescaped: Hydra's "Interpolation key 'x' not found", with no key named and no way out.
    (
        ["dataset=imagefolder", "dataset.root=/data/dol${x}"],
        ("dataset.root: Interpolation key 'x' not found", "must be linked or renamed"),
    ),
    # A backbone that cannot take the size: its cell failed in its turn, after the cells before it trained.
    (["-m", "model.backbone=resnet18,vit_b_16"], ("vit_b_16 cannot run on 32x32 px images",)),
    (
        ["-m", "model.library=timm", "model.backbone=resnet18,vit_tiny_patch16_224"],
        ("vit_tiny_patch16_224 cannot run on 32x32 px images",),
    ),
]

# Hydra's hint for these, "+KEY=VALUE", was the wrong fix: the key is misspelt, not missing.
NESTED_TYPOS = [
    "trainer.max_epoch=1",
    "model.optimizer.learning_rate=0.1",
    "strategy.kk=3",
    "dataset.splt=x",
    "paths.dta_dir=/data",
]


@pytest.mark.parametrize(
    ("argv", "fragments"), COMMAND_LINE, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_command_line_bad_input_is_one_line(
    argv: list[str], fragments: tuple[str, ...], tmp_path: Path
) -> None:
    where = "hydra.sweep.dir" if "-m" in argv else "hydra.run.dir"
    with pytest.raises(UserError) as err:
        flags = [a for a in argv if a.startswith("-")]  # Hydra's flags go before the overrides
        rest = [a for a in argv if not a.startswith("-")]
        validate_command_line([*flags, *TINY, *rest, f"{where}={tmp_path / 'out'}"])
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("override", NESTED_TYPOS)
def test_a_misspelt_nested_key_gets_no_hint_to_add_it_with_a_plus(override: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        validate_command_line([*TINY, override, f"hydra.run.dir={tmp_path / 'out'}"])
    message = str(err.value)
    assert message.startswith(f"unknown key {override.split('=')[0]}"), message
    assert "+" not in message and "append" not in message, message


def test_any_trainer_argument_works_without_a_plus(tmp_path: Path) -> None:
    """CONTRACT: any Lightning Trainer argument as trainer.<arg>=. One the presets do not list got Hydra's
    "use +trainer.gradient_clip_val=1"; the + form in turn fails where a preset lists the key."""
    from translearn.config import class_arguments_added, compose_config

    out = f"hydra.run.dir={tmp_path / 'out'}"
    clip, limit = "trainer.gradient_clip_val=1", "trainer.limit_train_batches=3"
    epochs = "trainer.max_epochs=2"
    argv = class_arguments_added([*TINY, clip, limit, epochs, out])
    # ++ adds or sets: limit_train_batches is set by debug=tiny but not by the presets; max_epochs always.
    assert argv == [*TINY, f"++{clip}", f"++{limit}", epochs, out]
    validate_command_line(argv)
    trainer = compose_config(argv[:-1]).trainer
    assert (trainer.gradient_clip_val, trainer.limit_train_batches, trainer.max_epochs) == (1, 3, 2)
    validate_command_line(class_arguments_added([*TINY, "+trainer.gradient_clip_val=1", out]))  # as before
    # Not a Trainer argument: left for the "did you mean" line.
    with pytest.raises(UserError, match=r"did you mean trainer\.gradient_clip_val"):
        validate_command_line(class_arguments_added([*TINY, "trainer.gradient_clip_vall=1", out]))


@pytest.mark.parametrize(
    ("overrides", "value"),
    [
        (["model.optimizer.dampening=0.1"], ("optimizer", "dampening", 0.1)),
        (["model/optimizer=adamw", "model.optimizer.amsgrad=true"], ("optimizer", "amsgrad", True)),
        (["model/scheduler=step", "model.scheduler.last_epoch=-1"], ("scheduler", "last_epoch", -1)),
    ],
)
def test_any_optimizer_or_scheduler_argument_works_without_a_plus(
    overrides: list[str], value: tuple, tmp_path: Path
) -> None:
    """README: any of the optimizer's arguments as model.optimizer.<arg>=; SGD's dampening got "use +"."""
    from translearn.config import class_arguments_added, compose_config

    argv = class_arguments_added([*TINY, *overrides, f"hydra.run.dir={tmp_path / 'out'}"])
    validate_command_line(argv)
    node, key, expected = value
    assert compose_config(argv[:-1]).model[node][key] == expected


def test_an_argument_the_chosen_optimizer_does_not_take_is_one_line(tmp_path: Path) -> None:
    from translearn.config import class_arguments_added

    argv = [*TINY, "model/optimizer=adamw", "model.optimizer.momentum=0.9", f"hydra.run.dir={tmp_path}"]
    with pytest.raises(UserError, match=r"unknown key model\.optimizer\.momentum: AdamW takes no 'momentum'"):
        validate_command_line(class_arguments_added(argv))


@pytest.mark.parametrize(
    "overrides",
    [
        ["strategy=freeze", "strategy.cache_features=true"],
        ["strategy=lp_ft", "trainer.max_epochs=3", "strategy.probe_epochs=2", "strategy.cache_features=true"],
        ["strategy=gradual", "strategy.cache_features=true"],
        ["strategy=first_k", "strategy.k=2", "strategy.cache_features=true", "strategy.cache_views=3"],
        ["strategy=finetune", "strategy.cache_features=false", "strategy.cache_dtype=float16"],
    ],
)
def test_cache_settings_that_can_work_pass_the_upfront_checks(overrides: list[str], tmp_path: Path) -> None:
    validate_command_line([*TINY, *overrides, f"hydra.run.dir={tmp_path / 'out'}"])


def test_a_sweep_checks_every_cells_data_folder_before_the_first_cell(tmp_path: Path) -> None:
    """hymenoptera is there, simpsons is not: said before hymenoptera's cells train, not after."""
    (tmp_path / "data" / "hymenoptera").mkdir(parents=True)
    with pytest.raises(UserError, match=r"simpsons: dataset.root .*simpsons does not exist"):
        validate_command_line(
            ["-m", *TINY, "dataset=hymenoptera,simpsons", f"paths.data_dir={tmp_path / 'data'}",
             f"hydra.sweep.dir={tmp_path / 'sweep'}"]
        )  # fmt: skip
    (tmp_path / "data" / "simpsons").mkdir()
    validate_command_line(
        ["-m", *TINY, "dataset=hymenoptera,simpsons", f"paths.data_dir={tmp_path / 'data'}",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    )  # fmt: skip


def test_the_default_datasets_root_being_a_file_is_one_line(tmp_path: Path) -> None:
    file = tmp_path / "shapes"
    file.write_text("not a folder")
    with pytest.raises(UserError, match=r"dataset.root=.*shapes is a file, not a folder"):
        validate_command_line([f"dataset.root={file}", f"hydra.run.dir={tmp_path / 'out'}"])


def test_prepare_download_of_the_embedded_data_is_a_logged_skip(tmp_path: Path, capsys) -> None:
    from translearn.data.__main__ import main as data_main

    assert data_main(["prepare", "shapes", "--download", "--root", str(tmp_path / "shapes")]) == 0
    out = capsys.readouterr().out
    assert "shapes is drawn on the fly; nothing to download" in out and "Traceback" not in out


def test_a_cached_archive_that_is_not_a_zip_is_one_line(tmp_path: Path) -> None:
    from translearn.data.download import fetch_kaggle

    (tmp_path / "the-simpsons-characters-dataset.zip").write_text("<html>quota exceeded</html>")
    with pytest.raises(
        UserError, match=r"the-simpsons-characters-dataset.zip is not a zip archive .* delete it"
    ):
        fetch_kaggle("datasets", "alexattia/the-simpsons-characters-dataset", tmp_path, "download it by hand")


def test_a_zip_with_a_file_and_a_folder_of_one_name_is_one_line(tmp_path: Path) -> None:
    from translearn.data.download import extract_zip

    archive = tmp_path / "odd.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/cats", b"a file")
        zf.writestr("data/cats/1.jpg", b"an image inside a folder of the same name")
    with pytest.raises(UserError, match=r"cannot unpack data/cats/1.jpg from .*odd.zip"):
        extract_zip(archive, tmp_path / "out")


@pytest.mark.parametrize(
    ("field", "value"),
    [("train_seconds", "fast"), ("trainable_params", [1]), ("seed", {"a": 1}), ("val_acc", True)],
)
def test_report_skips_metrics_with_values_of_the_wrong_type(field: str, value, tmp_path: Path) -> None:
    from translearn.report import read_metrics

    good = {
        "dataset": "shapes", "color": "rgb", "strategy": "freeze", "best_val_acc": 0.5, "val_acc": 0.5,
        "train_seconds": 1.0, "trainable_params": 10, "seed": 0, "status": "complete",
    }  # fmt: skip
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(good))
    read_metrics(path)
    path.write_text(json.dumps({**good, field: value}))
    with pytest.raises(ValueError, match=f"has {field}="):
        read_metrics(path)


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("trainer.precision=bf17", ("the trainer settings do not work here", "Precision 'bf17' is invalid")),
        ("+trainer.strategy=nope", ("the trainer settings do not work here", "invalid strategy name")),
    ],
)
def test_trainer_settings_lightning_refuses_are_one_line_user_errors(
    compose_cfg, tmp_path: Path, override: str, fragments: tuple[str, ...]
) -> None:
    """They were Hydra's "Error executing job" and an exception chain, recorded but never a one-liner."""
    from translearn.train import run

    with pytest.raises(UserError) as err:
        run(compose_cfg(override, run_dir=tmp_path / "run"))
    assert "\n" not in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value)
