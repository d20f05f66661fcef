"""translearn.report's science: first_k sweeps, recipes kept apart, distinct seeds, caveats, gaps, macro,
the plots (first_k, curves, confusion, rgb vs gray bars), and the one-line errors of the command.

Fake run folders are written the way translearn.train leaves them: metrics.json, .hydra/config.yaml,
csv/metrics.csv (Lightning's CSVLogger layout) and confusion_val.csv.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from helpers import assert_user_error
from translearn import report

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STAGES = ["stem", "layer1", "layer2", "layer3", "layer4"]
CONFIG = """\
seed: {seed}
model:
  optimizer:
    _target_: torch.optim.SGD
    _partial_: true
    lr: {lr}
    momentum: 0.9
  scheduler:
    _target_: torch.optim.lr_scheduler.StepLR
  backbone: resnet18
  weights: {weights}
dataset:
  image_size: {image_size}
  batch_size: {batch_size}
  root: ${{paths.data_dir}}/hymenoptera
trainer:
  max_epochs: {max_epochs}
"""


def run(
    sweep: Path,
    name: str,
    *,
    lr: float = 0.001,
    batch_size: int = 32,
    curve: list[float] | None = None,
    confusion: list[list[int]] | None = None,
    config: bool = True,
    task: str | None = None,
    **over: Any,
) -> Path:
    """One run folder: metrics.json (+ config, CSV log with ``curve`` as val/acc by epoch, confusion).

    ``task`` writes a ``dataset.task`` into the config, as only the embedded shapes data has one."""
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    data: dict[str, Any] = {
        "dataset": "hymenoptera", "color": "rgb", "gray_mode": "replicate", "strategy": "finetune",
        "bn": "frozen", "k": None, "backbone": "resnet18", "weights": "imagenet", "seed": 0,
        "image_size": 224, "epochs": 15, "max_epochs": 15, "best_epoch": 7, "best_val_acc": 0.9,
        "val_acc": 0.88, "test_acc": 0.87, "best_val_acc_macro": None, "split_sizes": {"train": 200,
        "val": 50, "test": 50}, "train_seconds": 90.0, "trainable_params": 11_177_538,
        "stage_names": STAGES, "run_dir": str(folder), "status": "complete",
    }  # fmt: skip
    data.update(over)
    (folder / "metrics.json").write_text(json.dumps(data))
    (folder / ".hydra" / "overrides.yaml").write_text("[]\n")
    if config:
        recipe = {k: data[k] for k in ("seed", "weights", "image_size", "max_epochs")}
        config_text = CONFIG.format(lr=lr, batch_size=batch_size, **recipe)
        if task is not None:
            config_text = config_text.replace("dataset:\n", f"dataset:\n  task: {task}\n")
        (folder / ".hydra" / "config.yaml").write_text(config_text)
    if curve is not None:
        (folder / "csv").mkdir()
        lines = ["epoch,lr-SGD/head,step,test/acc,train/loss_epoch,val/acc,val/loss", ",0.001,0,,,,"]
        for epoch, acc in enumerate(curve):  # a val row and a train row per epoch, as CSVLogger writes
            lines += [f"{epoch},,{epoch + 1},,,{acc},0.5", f"{epoch},,{epoch + 1},,0.7,,"]
        lines.append(f"{len(curve)},,{len(curve) + 1},0.8,,,")  # the test row: one epoch past the last
        (folder / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")
    if confusion is not None:
        classes = ["ants", "bees", "wasps"][: len(confusion)]
        rows = ["true," + ",".join(classes)]
        rows += [",".join([c, *map(str, counts)]) for c, counts in zip(classes, confusion, strict=True)]
        (folder / "confusion_val.csv").write_text("\n".join(rows) + "\n")
    return folder


def first_k_sweep(root: Path, stage_names: list[str] | None = STAGES) -> Path:
    """strategy=first_k strategy.k=0..5 × seeds 0,1: accuracy 0.90 - 0.05 k (seed 0) and + 0.02 (seed 1)."""
    sweep = root / "first_k"
    for k in range(6):
        for seed in (0, 1):
            acc = 0.90 - 0.05 * k + 0.02 * seed
            run(sweep, f"{k}_{seed}", strategy="first_k", k=k, seed=seed, best_val_acc=acc,
                stage_names=stage_names, curve=[acc - 0.1, acc])  # fmt: skip
    run(sweep, "ft", strategy="finetune", best_val_acc=0.92, curve=[0.8, 0.92])
    run(sweep, "scratch", strategy="finetune", weights="none", best_val_acc=0.55, curve=[0.4, 0.55])
    return sweep


def cells(table: report.Table) -> dict[tuple[str, str], report.Stat]:
    return {(row.label(table.key_names), col): row.acc[col] for row, col in table.lines()}


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def table_cells(text: str) -> list[list[str]]:
    """The stripped cells of every table line (the aligned padding left out)."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in table_lines(text)]


def report_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "translearn.report", *args], capture_output=True, text=True, timeout=120
    )


# --- first_k sweeps ----------------------------------------------------------------------------------


def test_a_first_k_sweep_gives_one_line_per_k_with_the_seed_mean_and_layer_names(tmp_path: Path) -> None:
    table = report.summarize(report.load_runs(first_k_sweep(tmp_path)))
    by_k = {r["k"]: r for r in table.records() if r["k"] is not None}
    assert sorted(by_k) == [0, 1, 2, 3, 4, 5]
    for k, record in by_k.items():
        assert record["best_val_acc_mean"] == pytest.approx(0.91 - 0.05 * k)
        assert record["best_val_acc_std"] == pytest.approx(0.0141421356)
        assert record["n"] == 2 and record["runs"] == 2

    text = table.to_markdown()
    first_k = [line for line in table_lines(text) if "first_k" in line]
    assert len(first_k) == 6  # one line per k, not one wide row
    assert "first_k k=2: stem, layer1 frozen" in text
    assert "first_k k=0: none frozen" in text and "first_k k=5: all 5 stages frozen" in text
    assert [
        "hymenoptera",
        "rgb",
        "imagenet",
        "first_k k=2: stem, layer1 frozen",
        "0.8100 ± 0.0141 (n=2)",
    ] in [c[:5] for c in table_cells(text)]
    assert all(len(line) <= 120 for line in text.splitlines())


def test_k_without_stage_names_reads_plain_k(tmp_path: Path) -> None:
    table = report.summarize(report.load_runs(first_k_sweep(tmp_path, stage_names=None)))
    text = table.to_markdown()
    assert "first_k k=2" in [c[3] for c in table_cells(text)] and "frozen" not in text


def test_first_k_points_carry_the_finetune_and_scratch_levels(tmp_path: Path) -> None:
    table = report.summarize(report.load_runs(first_k_sweep(tmp_path)))
    [series] = report.first_k_series(table)
    assert series["k"] == [0, 1, 2, 3, 4, 5] and series["n"] == [2] * 6
    assert series["mean"] == pytest.approx([0.91 - 0.05 * k for k in range(6)])
    assert series["levels"]["finetune"].mean == pytest.approx(0.92)
    assert series["levels"]["scratch"].mean == pytest.approx(0.55)  # weights=none, same recipe otherwise


def test_first_k_curve_takes_finetune_as_k0_and_freeze_as_every_stage(tmp_path: Path) -> None:
    """make study sweeps k=1..4 and runs finetune and freeze apart: the curve still spans k=0..5."""
    sweep = tmp_path / "study"
    for k in (1, 2, 3, 4):
        run(sweep, f"k{k}", strategy="first_k", k=k, best_val_acc=0.60 + 0.05 * k)
    run(sweep, "ft", strategy="finetune", best_val_acc=0.50)
    run(sweep, "fr", strategy="freeze", best_val_acc=0.70)
    run(sweep, "fr_bn", strategy="freeze", bn="train", best_val_acc=0.99)  # a variant: not an end
    [series] = report.first_k_series(report.summarize(report.load_runs(sweep)))
    assert series["k"] == [0, 1, 2, 3, 4, 5]
    assert series["strategy"] == ["finetune", "first_k", "first_k", "first_k", "first_k", "freeze"]
    assert series["mean"] == pytest.approx([0.50, 0.65, 0.70, 0.75, 0.80, 0.70])
    png = report.first_k_figure(report.summarize(report.load_runs(sweep)))
    assert png.legends  # the legend is the figure's, so the constrained layout leaves room for it


def test_strategies_trained_on_different_inputs_are_flagged(tmp_path: Path) -> None:
    """The feature cache's default trains freeze on the eval transform while finetune trains on crops."""
    run(tmp_path, "ft", strategy="finetune", train_inputs="random crops")
    run(tmp_path, "fr", strategy="freeze", train_inputs="eval transform")
    run(tmp_path, "old", strategy="gradual")  # before train_inputs: not counted
    [warning] = [w for w in report.summarize(report.load_runs(tmp_path)).warnings if "inputs" in w]
    assert "eval transform: freeze; random crops: finetune" in warning and "cache_views" in warning


def test_strategies_trained_on_the_same_inputs_are_not_flagged(tmp_path: Path) -> None:
    run(tmp_path, "ft", strategy="finetune", train_inputs="random crops")
    run(tmp_path, "fr", strategy="freeze", train_inputs="random crops")
    assert not [w for w in report.summarize(report.load_runs(tmp_path)).warnings if "inputs" in w]


# --- recipes and seeds -------------------------------------------------------------------------------


def test_runs_at_different_learning_rates_are_never_averaged_together(tmp_path: Path) -> None:
    for i, (lr, acc) in enumerate([(0.001, 0.62), (0.001, 0.64), (0.01, 0.68), (0.01, 0.67)]):
        run(tmp_path, f"r{i}", strategy="freeze", lr=lr, seed=i % 2, best_val_acc=acc)
    table = report.summarize(report.load_runs(tmp_path))

    assert table.setup_keys == ["lr"]
    got = {label: (stat.mean, stat.n) for (label, _), stat in cells(table).items()}
    assert got == {
        "hymenoptera rgb lr=0.001": (pytest.approx(0.63), 2),
        "hymenoptera rgb lr=0.01": (pytest.approx(0.675), 2),
    }
    text = report.table_with_notes(table)
    assert "(n=4)" not in text
    assert any("differ in lr (0.001, 0.01)" in note and "never averaged" in note for note in table.notes())


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("weights", ("/data/a/r18.pth", "/data/b/other_r18.pth")),
        ("backbone", ("resnet50.a1_in1k", "resnet18.a1_in1k")),
    ],
)
def test_runs_of_two_weight_files_or_two_timm_backbones_are_two_rows(
    tmp_path: Path, key: str, values: tuple[str, str]
) -> None:
    """Values with dots are kept whole: cut at the last dot they were both "pth" (or "a1_in1k"), and the
    report averaged two weight files' runs as repeated seeds."""
    run(tmp_path, "a", best_val_acc=0.205, **{key: values[0]})
    run(tmp_path, "b", best_val_acc=0.230, **{key: values[1]})
    table = report.summarize(report.load_runs(tmp_path))
    assert key in table.setup_keys and len(table.rows) == 2
    assert sorted(stat.mean for stat in cells(table).values()) == [0.205, 0.230]
    assert not any("Repeated seeds" in n for n in table.notes())


def test_two_image_folders_or_two_class_lists_of_one_dataset_are_never_averaged(tmp_path: Path) -> None:
    """One dataset name, other data: two folders (2 and 5 classes), all Simpsons characters or two."""
    for name, root, classes, n, acc in [
        ("a", "/data/ants", "all", 2, 0.70),
        ("b", "/data/caltech_sub", "all", 5, 0.40),
        ("c", "/data/ants", "[ants]", 2, 0.90),
    ]:
        folder = run(tmp_path, name, dataset="imagefolder", num_classes=n, best_val_acc=acc)
        config = folder / ".hydra" / "config.yaml"
        text = config.read_text().replace("${paths.data_dir}/hymenoptera", root)
        config.write_text(text.replace("dataset:\n", f"dataset:\n  classes: '{classes}'\n"))
    table = report.summarize(report.load_runs(tmp_path))
    assert len(table.rows) == 3 and {"root", "classes"} <= set(table.setup_keys)
    assert sorted(stat.mean for stat in cells(table).values()) == [0.40, 0.70, 0.90]
    assert "num_classes" in table.setup_keys  # 2 vs 5 classes under one name: shown, as it varies there


def test_keys_that_differ_only_between_datasets_get_no_column(tmp_path: Path) -> None:
    """Each dataset's own class count and batch size are not a recipe difference worth a column."""
    run(tmp_path, "h", dataset="hymenoptera", num_classes=2, batch_size=64)
    run(tmp_path, "s", dataset="simpsons", num_classes=20, batch_size=256)
    table = report.summarize(report.load_runs(tmp_path))
    assert table.setup_keys == [] and len(table.rows) == 2


def mixed_with_shapes(root: Path) -> None:
    """Hymenoptera (no dataset.task) beside the embedded shapes data's base and target tasks."""
    run(root, "h_ft", best_val_acc=0.90)
    run(root, "h_fr", strategy="freeze", best_val_acc=0.80)
    for task in ("base", "target"):
        run(root, f"s_{task}", dataset="shapes", task=task, best_val_acc=0.70)


def column(table: report.Table, name: str) -> set[tuple[str, str]]:
    """(dataset, the ``name`` cell) of every line of the table, uncut."""
    header, _, *lines = table_cells(table.to_markdown(width=None))
    return {(cells[0], cells[header.index(name)]) for cells in lines}


def test_a_key_only_the_embedded_data_has_reads_no_such_key_for_real_datasets(tmp_path: Path) -> None:
    """shapes varies in dataset.task, so task gets a column; hymenoptera has no task at all, and its cell
    read '?' (the mark for a recipe nobody recorded) as if its task were unknown."""
    mixed_with_shapes(tmp_path)
    table = report.summarize(report.load_runs(tmp_path))
    assert table.setup_keys == ["task"]
    text = report.table_with_notes(table)
    assert column(table, "task") == {("hymenoptera", "–"), ("shapes", "base"), ("shapes", "target")}
    assert "?" not in text and "task=None" not in text
    reading = "\n".join(table.reading())  # its label names no task either
    assert "hymenoptera rgb: finetune − freeze = +0.1000" in reading and "?" not in reading
    [ax] = report.accuracy_figure(table).axes
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["hymenoptera", "shapes task=base", "shapes task=target"]


def test_a_run_without_its_config_still_reads_unknown(tmp_path: Path) -> None:
    """'?' stays for what no config tells: a shapes run copied without .hydra/config.yaml."""
    mixed_with_shapes(tmp_path)
    run(tmp_path, "s_bare", dataset="shapes", config=False, best_val_acc=0.50)
    table = report.summarize(report.load_runs(tmp_path))
    text = report.table_with_notes(table)
    assert column(table, "task") == {
        ("hymenoptera", "–"), ("shapes", "base"), ("shapes", "target"), ("shapes", "?"),
    }  # fmt: skip
    assert "'?': the run folder has no .hydra/config.yaml to tell" in text


def test_batch_size_from_the_config_splits_runs_too(tmp_path: Path) -> None:
    run(tmp_path, "a", batch_size=32)
    run(tmp_path, "b", batch_size=64, seed=1)
    table = report.summarize(report.load_runs(tmp_path))
    assert table.setup_keys == ["batch_size"] and len(table.rows) == 2


def test_five_runs_with_one_seed_are_n_1_and_say_so(tmp_path: Path) -> None:
    for i, acc in enumerate([0.90, 0.91, 0.92, 0.93, 0.94]):
        run(tmp_path, f"r{i}", seed=0, best_val_acc=acc)
    table = report.summarize(report.load_runs(tmp_path))
    [stat] = cells(table).values()
    assert (stat.n, stat.runs, stat.std) == (1, 5, None)
    assert stat.mean == pytest.approx(0.92)
    assert "0.9200 (n=1 of 5 runs)" in table.to_markdown()
    assert any(n.startswith("Repeated seeds:") and "seed 0" in n and "n=1" in n for n in table.notes())


def test_the_repeated_seed_note_counts_the_runs_that_share_each_seed(tmp_path: Path) -> None:
    """Seeds 0, 0, 1, 2: it said "has 4 runs with seed 0" (the cell's run count, not seed 0's)."""
    for name, seed, acc in (("a", 0, 0.5), ("b", 0, 0.7), ("c", 1, 0.8), ("d", 2, 0.9), ("e", 1, 0.6)):
        run(tmp_path, name, seed=seed, best_val_acc=acc)
    table = report.summarize(report.load_runs(tmp_path))
    [stat] = cells(table).values()
    assert (stat.runs, stat.n) == (5, 3) and stat.mean == pytest.approx((0.6 + 0.7 + 0.9) / 3)
    [note] = [n for n in table.notes() if n.startswith("Repeated seeds:")]
    assert "has 5 runs, 2 with seed 0 and 2 with seed 1, counted as n=3" in note, note


def test_distinct_seeds_get_no_repeated_seed_note(tmp_path: Path) -> None:
    run(tmp_path, "a", seed=0)
    run(tmp_path, "b", seed=1)
    table = report.summarize(report.load_runs(tmp_path))
    assert not any("Repeated seeds" in n for n in table.notes())


def test_seeds_repeated_within_a_cell_are_averaged_before_the_std(tmp_path: Path) -> None:
    for name, seed, acc in [("a", 0, 0.80), ("b", 0, 0.90), ("c", 1, 0.95)]:
        run(tmp_path, name, seed=seed, best_val_acc=acc)
    [stat] = cells(report.summarize(report.load_runs(tmp_path))).values()
    assert stat.per_seed() == pytest.approx([0.85, 0.95])
    assert (stat.n, stat.mean) == (2, pytest.approx(0.90))


# --- caveats -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("best_epochs", "fires"),
    [([14, 14, 14, 3], True), ([14, 3, 5, 6], False), ([14, 14, 3, 3], False)],
)
def test_still_improving_warns_only_when_most_runs_peak_in_their_last_epoch(
    tmp_path: Path, best_epochs: list[int], fires: bool
) -> None:
    for i, best in enumerate(best_epochs):
        run(tmp_path, f"r{i}", seed=i, best_epoch=best, epochs=15)
    warnings = report.summarize(report.load_runs(tmp_path)).warnings
    assert any("still improving" in w for w in warnings) is fires


def test_still_improving_falls_back_to_the_csv_log(tmp_path: Path) -> None:
    run(tmp_path, "a", best_epoch=None, epochs=3, curve=[0.5, 0.6, 0.7])  # best in the last epoch
    run(tmp_path, "b", seed=1, best_epoch=None, epochs=3, curve=[0.5, 0.8, 0.7])
    run(tmp_path, "c", seed=2, best_epoch=None, epochs=3, curve=[0.5, 0.6, 0.9])
    [warning] = [w for w in report.summarize(report.load_runs(tmp_path)).warnings if "improving" in w]
    assert warning.startswith("2 of 3 runs")


def test_no_test_split_warns_that_best_val_acc_is_optimistic(tmp_path: Path) -> None:
    run(tmp_path, "a", test_acc=None, split_sizes={"train": 200, "val": 50, "test": 0})
    run(tmp_path, "b", seed=1)
    [warning] = report.summarize(report.load_runs(tmp_path)).warnings
    assert warning.startswith("1 of 2 runs have no test split") and "optimistic" in warning


def test_a_test_split_everywhere_gives_no_same_split_warning(tmp_path: Path) -> None:
    run(tmp_path, "a")
    run(tmp_path, "b", seed=1)
    assert report.summarize(report.load_runs(tmp_path)).warnings == []


# --- gaps --------------------------------------------------------------------------------------------


def test_finetune_freeze_and_rgb_gray_gaps_are_read_against_their_spread(tmp_path: Path) -> None:
    values = {
        ("rgb", "finetune"): [0.95, 0.94, 0.96],
        ("rgb", "freeze"): [0.80, 0.81, 0.79],  # 0.15 below finetune, spread 0.01: beyond
        ("gray", "finetune"): [0.94, 0.90, 0.98],  # 0.01 below rgb, spread 0.04: within
        ("gray", "freeze"): [0.70],  # one seed: no spread
    }
    for (color, strategy), accs in values.items():
        for seed, acc in enumerate(accs):
            run(tmp_path, f"{color}_{strategy}_{seed}", color=color, strategy=strategy, seed=seed,
                best_val_acc=acc)  # fmt: skip
    table = report.summarize(report.load_runs(tmp_path), reference=False)
    gaps = {(g.where, g.name): g for g in table.gaps}
    assert set(gaps) == {
        ("hymenoptera rgb", "finetune − freeze"),
        ("hymenoptera gray", "finetune − freeze"),
        ("hymenoptera", "rgb − gray (finetune)"),
        ("hymenoptera", "rgb − gray (freeze)"),
    }
    assert gaps["hymenoptera rgb", "finetune − freeze"].diff == pytest.approx(0.15)
    assert gaps["hymenoptera rgb", "finetune − freeze"].verdict == "beyond spread"
    assert gaps["hymenoptera", "rgb − gray (finetune)"].diff == pytest.approx(0.01)
    assert gaps["hymenoptera", "rgb − gray (finetune)"].verdict == "within spread"
    assert gaps["hymenoptera", "rgb − gray (freeze)"].verdict == "no spread (n=1 on a side)"
    text = report.table_with_notes(table)
    assert ["hymenoptera rgb", "finetune − freeze", "+0.1500", "0.0163", "beyond spread"] in table_cells(text)


# --- macro -------------------------------------------------------------------------------------------


def test_metric_macro_tabulates_macro_numbers_and_counts_runs_without_them(tmp_path: Path) -> None:
    run(tmp_path, "a", seed=0, best_val_acc=0.95, best_val_acc_macro=0.71)
    run(tmp_path, "b", seed=1, best_val_acc=0.93, best_val_acc_macro=0.73)
    run(tmp_path, "c", strategy="freeze", best_val_acc=0.9)  # trained before macro was recorded
    runs = report.load_runs(tmp_path)

    macro = report.summarize(runs, metric="macro")
    assert macro.metric == "best_val_acc_macro"
    text = macro.to_markdown()
    assert "0.7200 ± 0.0141 (n=2)" in text and "0.9400" not in text
    assert ["hymenoptera", "rgb", "freeze", "n/a"] in [c[:4] for c in table_cells(text)]
    assert any("macro accuracy is not recorded for 1 of 3 runs" in n for n in macro.notes())
    assert not macro.reference_on  # 2017 numbers are plain accuracy

    micro = report.summarize(runs)
    assert "0.9400 ± 0.0141 (n=2)" in micro.to_markdown()
    assert not any("macro" in n for n in micro.notes())


# --- width -------------------------------------------------------------------------------------------


def test_the_terminal_table_stays_within_120_columns_however_much_varies(tmp_path: Path) -> None:
    for i, (lr, bs, size) in enumerate([(0.001, 32, 224), (0.01, 64, 160), (0.1, 128, 96)]):
        for k in range(6):
            run(tmp_path, f"{i}_{k}", strategy="first_k", k=k, bn="train", lr=lr, batch_size=bs,
                image_size=size, dataset="stanford_dogs_very_long_name", backbone="convnext_tiny_in22k",
                color="gray", gray_mode="adapt", max_epochs=15 + i)  # fmt: skip
    table = report.summarize(report.load_runs(tmp_path))
    text = report.table_with_notes(table)
    assert len(table_lines(text)) == 2 + 18
    assert max(len(line) for line in text.splitlines()) <= 120


# --- files -------------------------------------------------------------------------------------------


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 10_000, path


def test_report_writes_first_k_curves_accuracy_and_confusion_pngs(tmp_path: Path) -> None:
    sweep = first_k_sweep(tmp_path)
    run(sweep, "gray_ft", color="gray", best_val_acc=0.85, curve=[0.7, 0.85])
    cm = run(sweep, "cm", strategy="freeze", seed=3, confusion=[[20, 2, 1], [3, 17, 0], [0, 1, 6]])

    rep = report.write_report([sweep], out=tmp_path / "out", warn=None, confusion=[cm])
    names = {p.name for p in rep.files}
    assert {"accuracy.png", "accuracy_vs_params.png", "first_k.png", "curves.png"} <= names
    assert report.confusion_png(cm) in names
    for path in rep.files:
        if path.suffix == ".png":
            assert_png(path)
    [note] = rep.notes
    assert note.startswith("curves.png: 1 of 16 runs have no csv/metrics.csv") and "cm" in note


def test_the_curves_legend_names_every_strategy_of_every_panel(tmp_path: Path) -> None:
    """The last panel (here scratch: finetune only) used to own the legend, so the others went unnamed."""
    sweep = first_k_sweep(tmp_path)  # the scratch row sorts last
    table = report.summarize(report.load_runs(sweep))
    curves, _ = report.cell_curves(table)
    [legend] = report.curves_figure(table, curves).legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert "finetune" in labels and sum("first_k" in t for t in labels) == 6


def texts_past_their_edge(fig: Figure) -> list[str]:
    """Titles, axis, tick and legend labels drawn past the figure's edge, and panel titles wider than their
    panel (they ran over the next one's), at the layout the PNG gets."""
    fig.savefig(io.BytesIO(), format="png")
    out = []
    for ax in fig.axes:
        box, panel = ax.title.get_window_extent(), ax.bbox
        if box.x0 < panel.x0 - 1 or box.x1 > panel.x1 + 1:
            title = ax.title.get_text()
            out.append(
                f"title {title!r}: x {box.x0:.0f}..{box.x1:.0f}, its panel {panel.x0:.0f}..{panel.x1:.0f}"
            )
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    texts = [*fig.texts, *(t for legend in legends for t in legend.get_texts())]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for axis in (ax.xaxis, ax.yaxis):  # ticks beyond the limits keep stale, undrawn labels
            low, high = sorted(axis.get_view_interval())
            texts += [t.label1 for t in axis.get_major_ticks() if low - 1e-9 <= t.get_loc() <= high + 1e-9]
    edge = fig.bbox.padded(1)
    for text in texts:
        box = text.get_window_extent()
        if text.get_text() and not (
            edge.x0 <= box.x0 and box.x1 <= edge.x1 and edge.y0 <= box.y0 <= box.y1 <= edge.y1
        ):
            out.append(f"{text.get_text()!r}: {box.extents.round()} past the figure's {fig.bbox.extents}")
    return out


@pytest.mark.parametrize("plot", ["accuracy", "curves"])
def test_long_titles_and_labels_stay_inside_the_figure(tmp_path: Path, plot: str) -> None:
    """A long dataset name, a varying lr, five strategies and rgb beside gray: the accuracy title (over an
    axes its legend narrows) and the curves' panel titles ran off the figure and over each other."""
    recipe: dict[str, Any] = {
        "dataset": "stanford_dogs_120_breeds_with_a_rather_long_name",
        "curve": [0.5, 0.6],
    }
    for i, (lr, batch_size) in enumerate([(0.001, 32), (0.01, 256)]):
        recipe.update(lr=lr, batch_size=batch_size)
        for strategy in ("finetune", "freeze", "gradual", "lp_ft", "auto_rgn"):
            run(tmp_path, f"{i}_{strategy}", strategy=strategy, **recipe)
        run(tmp_path, f"{i}_gray", color="gray", **recipe)
    table = report.summarize(report.load_runs(tmp_path))
    if plot == "accuracy":
        fig = report.accuracy_figure(table)
        assert "rgb vs gray" in fig.axes[0].get_title()
    else:
        fig = report.curves_figure(table, report.cell_curves(table)[0])
        assert len(fig.axes) == 4
    assert texts_past_their_edge(fig) == []


def test_a_sweep_without_k_writes_no_first_k_plot_by_default(tmp_path: Path) -> None:
    run(tmp_path, "a", curve=[0.5, 0.6])
    rep = report.write_report([tmp_path], warn=None)
    assert {p.name for p in rep.files} == {
        "results.csv", "table.md", "accuracy.png", "accuracy_vs_params.png", "curves.png",
    }  # fmt: skip
    assert not (tmp_path / "report" / "first_k.png").exists()


def test_curves_are_read_from_csv_rows_that_carry_val_acc_only(tmp_path: Path) -> None:
    folder = run(tmp_path, "a", curve=[0.5, 0.7, 0.6])
    curve = report.read_curve(folder)
    assert curve is not None
    assert (curve.epochs, curve.values, curve.best_epoch) == ([0, 1, 2], [0.5, 0.7, 0.6], 1)


def test_curves_fall_back_to_tensorboard_events(tmp_path: Path) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folder = run(tmp_path, "a")
    writer = EventFileWriter(str(folder / "tensorboard"))
    for step, (epoch, acc) in enumerate([(0, 0.5), (0, None), (1, 0.75)]):  # as Lightning logs: epoch beside
        values = [Summary.Value(tag="epoch", simple_value=epoch)]
        values += [Summary.Value(tag="val/acc", simple_value=acc)] if acc is not None else []
        writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
    writer.close()
    curve = report.read_curve(folder)
    assert curve is not None and curve.epochs == [0, 1] and curve.values == pytest.approx([0.5, 0.75])


def test_a_confusion_matrix_reads_rows_as_true_classes(tmp_path: Path) -> None:
    folder = run(tmp_path, "a", confusion=[[5, 1], [2, 2]])
    matrix = report.read_confusion(folder)
    assert matrix.classes == ["ants", "bees"] and matrix.counts == [[5, 1], [2, 2]]
    assert matrix.accuracy == pytest.approx(0.7)


def test_accuracy_bars_put_rgb_and_gray_side_by_side(tmp_path: Path) -> None:
    run(tmp_path, "a", best_val_acc=0.9)
    run(tmp_path, "b", color="gray", best_val_acc=0.8)
    fig = report.accuracy_figure(report.summarize(report.load_runs(tmp_path)))
    [ax] = fig.axes
    bars = sorted((p.get_x(), p.get_height()) for p in ax.patches if p.get_height() > 0)
    assert [h for _, h in bars] == pytest.approx([0.9, 0.8])  # rgb then gray, one group, adjacent
    assert bars[1][0] - bars[0][0] < 0.5
    assert [t.get_text() for t in ax.get_xticklabels()] == ["hymenoptera"]
    assert {"rgb", "gray"} <= {t.get_text() for t in ax.get_legend().get_texts()}


# --- the command -------------------------------------------------------------------------------------


@pytest.mark.cli
def test_cli_macro_prints_a_narrow_table_of_macro_numbers(tmp_path: Path) -> None:
    first_k_sweep(tmp_path)
    for name, macro in (("0_0", 0.5), ("0_1", 0.6)):
        data = json.loads((tmp_path / "first_k" / name / "metrics.json").read_text())
        (tmp_path / "first_k" / name / "metrics.json").write_text(
            json.dumps({**data, "best_val_acc_macro": macro})
        )
    result = report_cli(str(tmp_path / "first_k"), "--metric", "macro", "--no-plots")
    assert result.returncode == 0, result.stderr
    lines = table_lines(result.stdout)
    assert "best_val_acc_macro" in lines[0]
    assert ["first_k k=0: none frozen", "0.5500 ± 0.0707 (n=2)"] in [
        c[3:5] for c in table_cells(result.stdout)
    ]
    assert all(len(line) <= 120 for line in lines)
    assert "macro accuracy is not recorded for 12 of 14 runs" in " ".join(result.stdout.split())


def report_main(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command's entry point in this process (no interpreter start), as a CompletedProcess."""
    from translearn.report.__main__ import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def bad_requests(tmp_path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Each bad request of the command: its arguments, and what its one error line must say."""
    sweep = tmp_path / "sweep"
    plain = run(sweep, "0_strategy=finetune", curve=[0.5])
    failed = tmp_path / "failed" / "0_strategy=freeze"
    (failed / ".hydra").mkdir(parents=True)
    (failed / "failure.json").write_text(json.dumps({"reason": "CUDA out of memory"}))
    return {
        "no completed cell": ([str(tmp_path / "failed")], ["no complete runs", "CUDA out of memory"]),
        "no confusion matrix": ([str(sweep), "--confusion", str(plain)], ["has no confusion_val.csv"]),
        "first_k without k": ([str(sweep), "--plot", "first_k"], ["--plot first_k", "strategy.k"]),
    }


@pytest.mark.parametrize("bad", ["no completed cell", "no confusion matrix", "first_k without k"])
def test_bad_science_requests_are_one_line_errors_that_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    args, says = bad_requests(tmp_path)[bad]
    assert_user_error(report_main(capsys, *args), *says)
    assert not (tmp_path / "sweep" / "report").exists() and not (tmp_path / "failed" / "report").exists()


@pytest.mark.cli
def test_cli_first_k_plot_of_a_sweep_without_k_is_one_line_and_exit_2(tmp_path: Path) -> None:
    args, says = bad_requests(tmp_path)["first_k without k"]
    result = report_cli(*args)
    assert result.returncode == 2
    assert_user_error(result, *says)
