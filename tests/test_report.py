"""translearn.report: fake sweep trees in, the study table, results.csv, plots and one-line errors out."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from translearn import report
from translearn.errors import UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RESNET18_PARAMS = 11_177_538


def metrics(**over: Any) -> dict[str, Any]:
    """A metrics.json as translearn.train writes it (resnet18, ImageNet weights, 15 epochs)."""
    data: dict[str, Any] = {
        "dataset": "hymenoptera", "color": "rgb", "gray_mode": "replicate", "strategy": "finetune",
        "bn": "frozen", "k": None, "backbone": "resnet18", "weights": "imagenet", "seed": 0,
        "image_size": 224, "epochs": 15, "max_epochs": 15, "best_val_acc": 0.9, "val_acc": 0.88,
        "val_loss": 0.3, "val_acc_top5": None, "test_acc": None, "test_acc_top5": None,
        "train_seconds": 90.0, "trainable_params": RESNET18_PARAMS, "frozen_params": 0,
        "total_params": RESNET18_PARAMS, "num_classes": 2, "best_checkpoint": None, "world_size": 1,
        "replicas_in_sync": None, "sweep_id": "sweep", "run_dir": "/somewhere", "status": "complete",
    }  # fmt: skip
    data.update(over)
    return data


def cell(sweep: Path, name: str, data: dict[str, Any] | None = None, text: str | None = None) -> Path:
    """A sweep cell folder as Hydra leaves it, with its metrics.json (or raw text for a broken one)."""
    path = sweep / name
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text("[]\n")
    if data is not None:
        (path / "metrics.json").write_text(json.dumps(data, indent=2))
    if text is not None:
        (path / "metrics.json").write_text(text)
    return path


@pytest.fixture
def sweeps(tmp_path: Path) -> Path:
    """Two sweeps: 8 good runs (two seeds in one cell), a failed, a corrupt and an unfinished cell."""
    root = tmp_path / "sweeps"
    a = root / "2024-01-01_10-00-00_000001"
    cell(a, "0_seed=0,strategy=finetune", metrics(seed=0, best_val_acc=0.95, train_seconds=80.0))
    cell(a, "1_seed=1,strategy=finetune", metrics(seed=1, best_val_acc=0.93, train_seconds=84.0))
    freeze_bn_train = metrics(strategy="freeze", bn="train", best_val_acc=0.96, train_seconds=60.0)
    cell(a, "2_strategy=freeze,strategy.bn=train", {**freeze_bn_train, "trainable_params": 1026})
    cell(a, "3_dataset.color=gray", metrics(color="gray", best_val_acc=0.9))
    failed = cell(a, "4_dataset.color=gray,strategy=freeze")
    (failed / "failure.json").write_text(json.dumps({"status": "failed", "reason": "CUDA out of memory"}))
    cell(a, "5_seed=2,strategy=finetune", text='{"dataset": "hymenoptera", "color": "rg')  # cut off mid-write

    b = root / "2024-01-02_10-00-00_000001"
    simpsons = {"dataset": "simpsons", "num_classes": 20}
    cell(b, "0_strategy=finetune", metrics(**simpsons, best_val_acc=0.92, train_seconds=600.0))
    cell(
        b,
        "1_strategy=freeze",
        metrics(**simpsons, strategy="freeze", best_val_acc=0.6, trainable_params=10260),
    )
    first_k = metrics(**simpsons, strategy="first_k", k=2, best_val_acc=0.88, trainable_params=11_000_000)
    cell(b, "2_strategy=first_k", first_k)
    cell(b, "3_strategy=gradual", metrics(**simpsons, strategy="gradual", best_val_acc=0.9))
    unfinished = cell(b, "4_strategy=gradual,seed=1")
    (unfinished / "checkpoints").mkdir()
    (unfinished / "checkpoints" / "last.ckpt").write_bytes(b"not really a checkpoint")
    return root


def table_cells(text: str) -> list[list[str]]:
    """The stripped cells of every table line of ``text`` (aligned padding left out)."""
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines() if ln.startswith("|")]


def row_of(table: report.Table, dataset: str, color: str) -> report.Row:
    [row] = [r for r in table.rows if r.key["dataset"] == dataset and r.key["color"] == color]
    return row


# --- finding runs ----------------------------------------------------------------------------------


def test_collect_finds_every_run_and_lists_failed_corrupt_and_unfinished_cells(sweeps: Path) -> None:
    warnings: list[str] = []
    found = report.collect([sweeps], warn=warnings.append)

    assert len(found.runs) == 8
    assert {(c.path.name, c.status, c.reason) for c in found.incomplete} == {
        ("4_dataset.color=gray,strategy=freeze", "failed", "CUDA out of memory"),
        (
            "4_strategy=gradual,seed=1",
            "unfinished",
            "interrupted; resume it with sweep.resume=true (or ckpt_path=last for a single run)",
        ),
    }
    [(skipped, why)] = found.skipped
    assert skipped.parent.name == "5_seed=2,strategy=finetune" and "not valid JSON" in why
    assert len(warnings) == 1 and "5_seed=2,strategy=finetune" in warnings[0] and "\n" not in warnings[0]


def test_a_run_found_through_overlapping_dirs_counts_once(sweeps: Path) -> None:
    sweep = sweeps / "2024-01-02_10-00-00_000001"
    runs = report.collect([sweeps, sweep, sweep / "0_strategy=finetune" / "metrics.json"], warn=None).runs
    assert len(runs) == 8


def test_a_single_run_dir_is_a_report_of_one_run(tmp_path: Path) -> None:
    run = cell(tmp_path, "run", metrics(best_val_acc=0.5))
    table = report.summarize(report.load_runs(run))
    assert [r.acc["finetune"].values for r in table.rows] == [[0.5]]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[1, 2]", "is not a JSON object"),
        (json.dumps({"dataset": "x", "color": "rgb"}), "lacks strategy, best_val_acc"),
        (json.dumps(metrics(status="running")), "has status 'running'"),
        (json.dumps(metrics(best_val_acc="high")), "not a number"),
    ],
)
def test_partial_or_foreign_metrics_are_skipped_with_the_reason(tmp_path: Path, text: str, why: str) -> None:
    cell(tmp_path, "good", metrics())
    cell(tmp_path, "bad", text=text)
    found = report.collect([tmp_path], warn=None)
    assert len(found.runs) == 1
    assert why in found.skipped[0][1]


def test_only_corrupt_metrics_is_a_user_error(tmp_path: Path) -> None:
    cell(tmp_path, "bad", text="{")
    with pytest.raises(UserError, match=r"no readable metrics.json .* 1 skipped"):
        report.collect([tmp_path], warn=None)


def test_only_failed_cells_is_a_user_error_that_gives_a_reason(tmp_path: Path) -> None:
    failed = cell(tmp_path, "0_strategy=freeze")
    (failed / "failure.json").write_text(json.dumps({"reason": "dataset.root does not exist"}))
    with pytest.raises(UserError, match=r"1 cell.* failed .*dataset.root does not exist"):
        report.collect([tmp_path])


# --- the table -------------------------------------------------------------------------------------


def test_table_has_one_row_per_dataset_and_colour_and_one_column_per_strategy(sweeps: Path) -> None:
    table = report.summarize(report.collect([sweeps], warn=None).runs)
    assert table.key_names == ["dataset", "color"]  # backbone, weights, ... do not vary here
    assert [(r.key["dataset"], r.key["color"]) for r in table.rows] == [
        ("hymenoptera", "rgb"),
        ("hymenoptera", "gray"),
        ("simpsons", "rgb"),
    ]
    assert table.columns == ["finetune", "freeze", "freeze bn=train", "first_k k=2", "gradual"]


def test_seeds_are_averaged_with_sample_std_and_count(sweeps: Path) -> None:
    table = report.summarize(report.collect([sweeps], warn=None).runs)
    finetune = row_of(table, "hymenoptera", "rgb").acc["finetune"]
    assert finetune.n == 2
    assert finetune.mean == pytest.approx(0.94)
    assert finetune.std == pytest.approx(0.0141421356)
    assert row_of(table, "hymenoptera", "rgb").seconds["finetune"].mean == pytest.approx(82.0)
    assert row_of(table, "simpsons", "rgb").acc["first_k k=2"].values == [0.88]

    # one line per dataset × colour × strategy: accuracy, 2017, time, trainable parameters
    lines = table_cells(table.to_markdown())
    assert lines[0] == ["dataset", "color", "strategy", "best_val_acc", "2017", "time", "params"]
    assert ["hymenoptera", "rgb", "finetune", "0.9400 ± 0.0141 (n=2)", "0.9542", "1m22s", "11.2M"] in lines
    assert ["hymenoptera", "rgb", "freeze bn=train", "0.9600 (n=1)", "0.9608", "1m00s", "1,026"] in lines
    assert ["simpsons", "rgb", "finetune", "0.9200 (n=1)", "0.9246", "10m00s", "11.2M"] in lines
    assert ["simpsons", "rgb", "freeze", "0.6000 (n=1)", "", "1m30s", "10k"] in lines
    assert ["simpsons", "rgb", "first_k k=2", "0.8800 (n=1)", "", "1m30s", "11.0M"] in lines


def test_2017_values_sit_beside_finetune_and_beside_freeze_bn_train(sweeps: Path) -> None:
    table = report.summarize(report.collect([sweeps], warn=None).runs)
    assert row_of(table, "hymenoptera", "rgb").reference == {"finetune": 0.954248, "freeze": 0.960784}
    assert row_of(table, "hymenoptera", "gray").reference == {"finetune": 0.921569, "freeze": 0.901961}
    assert row_of(table, "simpsons", "rgb").reference == {"finetune": 0.924552, "freeze": 0.641944}
    # The 2017 freeze adapted BatchNorm statistics: it is compared with bn=train, and labelled so.
    assert table.reference_on == {"finetune": "finetune", "freeze": "freeze bn=train"}
    lines = {tuple(c[:3]): c[4] for c in table_cells(table.to_markdown())[2:]}  # 2017 beside its line only
    assert lines["hymenoptera", "rgb", "finetune"] == "0.9542"
    assert lines["hymenoptera", "rgb", "freeze bn=train"] == "0.9608"
    assert lines["simpsons", "rgb", "freeze"] == ""  # bn=frozen: not the 2017 experiment
    assert any("strategy.bn=train" in note for note in table.notes())
    records = {(r["dataset"], r["color"], r["strategy"]): r for r in table.records()}
    assert records["simpsons", "rgb", "freeze"]["reference_2017"] is None  # bn=frozen: not the same run
    assert records["hymenoptera", "rgb", "freeze bn=train"]["reference_2017"] == 0.960784


def test_no_reference_omits_the_2017_columns(sweeps: Path) -> None:
    table = report.summarize(report.collect([sweeps], warn=None).runs, reference=False)
    assert "2017" not in table.to_markdown()
    assert all(not r.reference for r in table.rows)


def test_other_backbones_get_no_2017_value_and_the_backbone_becomes_a_row_key(tmp_path: Path) -> None:
    cell(tmp_path, "a", metrics())
    cell(tmp_path, "b", metrics(backbone="convnext_tiny"))
    table = report.summarize(report.load_runs(tmp_path))
    assert table.key_names == ["dataset", "color", "backbone"]
    assert {r.key["backbone"]: r.reference.get("finetune") for r in table.rows} == {
        "convnext_tiny": None,
        "resnet18": 0.954248,
    }


def test_runs_not_started_from_imagenet_get_no_2017_value(tmp_path: Path) -> None:
    cell(tmp_path, "a", metrics())
    cell(tmp_path, "b", metrics(weights="none"))
    table = report.summarize(report.load_runs(tmp_path))
    assert {r.key["weights"]: r.reference.get("finetune") for r in table.rows} == {
        "none": None,
        "imagenet": 0.954248,
    }


# --- files -----------------------------------------------------------------------------------------


def test_report_writes_csv_table_and_valid_pngs(sweeps: Path) -> None:
    rep = report.write_report([sweeps], warn=None)
    out = sweeps / "report"
    assert rep.out == out
    # first_k.png: the sweep has a first_k run; no curves.png: no run folder has a log
    assert sorted(p.name for p in rep.files) == sorted(set(report.REPORT_FILES) - {"curves.png"})

    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert set(metrics()) <= set(rows[0]) and "metrics_path" in rows[0]
    assert rows[0]["dataset"] == "hymenoptera" and rows[0]["test_acc"] == ""

    md = (out / "table.md").read_text()
    assert "0.9400 ± 0.0141 (n=2)" in md and "CUDA out of memory" in md and "5_seed=2,strategy=finetune" in md

    for name in ("accuracy.png", "accuracy_vs_params.png", "first_k.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert len(data) > 10_000


def test_rerunning_replaces_its_own_files_and_keeps_everything_else(sweeps: Path) -> None:
    out = sweeps / "report"
    report.write_report([sweeps], out=out, plots=False, warn=None)
    (out / "notes.txt").write_text("mine")
    (out / "old.png").write_bytes(b"mine too")
    (out / "table.md").write_text("stale")

    report.write_report([sweeps], out=out, plots=False, warn=None)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "old.png").read_bytes() == b"mine too"
    assert (out / "table.md").read_text().startswith("# translearn results")
    assert not list(out.glob("*.partial"))


def test_a_same_named_file_the_report_did_not_write_is_not_replaced_without_force(sweeps: Path) -> None:
    out = sweeps / "mine"
    out.mkdir()
    (out / "results.csv").write_text("my own results")
    with pytest.raises(UserError, match=r"not written by translearn.report.*--force"):
        report.write_report([sweeps], out=out, plots=False, warn=None)
    assert (out / "results.csv").read_text() == "my own results"

    report.write_report([sweeps], out=out, plots=False, force=True, warn=None)
    assert (out / "results.csv").read_text().startswith("dataset,")


# --- the command -----------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "translearn.report", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.cli
def test_cli_prints_the_table_warns_about_the_corrupt_file_and_lists_failed_cells(sweeps: Path) -> None:
    result = run_cli(str(sweeps), "--out", str(sweeps / "out"))
    assert result.returncode == 0, result.stderr
    assert ["hymenoptera", "rgb", "finetune", "0.9400 ± 0.0141 (n=2)"] in [
        c[:4] for c in table_cells(result.stdout)
    ]
    assert "curves.png: 8 of 8 runs have no csv/metrics.csv" in result.stdout
    assert "failed: " in result.stdout and "CUDA out of memory" in result.stdout
    assert f"translearn: wrote {sweeps / 'out' / 'accuracy.png'}" in result.stdout
    [warning] = result.stderr.splitlines()
    assert warning.startswith("translearn: warning: skipped ") and "5_seed=2" in warning


@pytest.mark.cli
@pytest.mark.parametrize(
    ("what", "says"),
    [
        ("missing", "does not exist"),
        ("empty", "no runs under"),
        ("corrupt", "no readable metrics.json"),
        ("no-args", "usage"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, what: str, says: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a run")
    cell(tmp_path, "corrupt", text='{"dataset": ')
    args = {"missing": [tmp_path / "nope"], "empty": [tmp_path / "empty"], "corrupt": [tmp_path / "corrupt"]}
    result = run_cli(*map(str, args.get(what, [])))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("translearn: error: ") and says in line
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "empty" / "report").exists() and not (tmp_path / "corrupt" / "report").exists()


def test_surgical_and_lp_ft_runs_get_columns_of_their_own() -> None:
    from translearn.report.table import strategy_label

    names = ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert strategy_label({"strategy": "surgical", "stages": [4, 5], "stage_names": names}) == (
        "surgical [4,5] layer3+layer4"
    )
    assert strategy_label({"strategy": "surgical", "stages": [2]}) == "surgical [2]"
    assert strategy_label({"strategy": "lp_ft", "probe_epochs": 3}) == "lp_ft probe=3"
