"""``python -m translearn.predict RUN_DIR_OR_CKPT INPUT...``: class predictions for image files, as a CSV.

    python -m translearn.predict outputs/runs/2024-05-01_12-00-00_000000 photos/ extra.jpg --top-k 3

Each image goes through the run's own eval preprocessing (resize, crop, colour mode, normalisation, read
from the checkpoint), so a prediction equals what validation computed for the same file. A run folder is
read at its best checkpoint (``metrics.json``'s ``best_checkpoint``, else ``checkpoints/best-*.ckpt``, else
``last.ckpt``). Files that do not decode are skipped and listed on stderr; nothing else is a traceback.

Finding a run's checkpoint and loading its model (shared with ``translearn.eval`` and
``translearn.export``) live in :mod:`translearn.trained`.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from translearn.errors import OneLineParser, UserError, exit_with
from translearn.log import log
from translearn.storage import write_atomic
from translearn.trained import Trained, load_trained, quiet_lightning

MAX_LISTED = 20  # skipped files listed one per line; the rest are counted


def describe(trained: Trained) -> str:
    """One line: which model, which classes, which preprocessing."""
    from translearn.data.files import preprocessing_of

    h = trained.hparams
    names = trained.class_names
    shown = ", ".join(names[:6]) + (f", … ({len(names)})" if len(names) > 6 else "")
    prep = preprocessing_of(h)
    return (
        f"{h['backbone']} from {trained.checkpoint} · classes {shown} · {h.get('color', 'rgb')}"
        f"{'/' + h.get('gray_mode', 'replicate') if h.get('color') == 'gray' else ''} · "
        f"resize {prep.resize} ({prep.interpolation}) → crop {prep.crop}"
    )


def predict_files(
    trained: Trained,
    files: Sequence[Path],
    batch_size: int = 64,
    num_workers: int = 0,
    accelerator: str = "cpu",
) -> dict[str, torch.Tensor]:
    """Probabilities per file path (as given), through ``trainer.predict``; unreadable files are absent."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import BasePredictionWriter

    from translearn.data.files import ImageFilesDataModule

    rows: dict[str, torch.Tensor] = {}

    class Collect(BasePredictionWriter):
        """Pairs each batch's probabilities with its paths (the batch rides along to this hook)."""

        def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dl_idx):
            for path, probs in zip(batch[1], prediction.float().cpu(), strict=True):
                rows[path] = probs

    data = ImageFilesDataModule.for_checkpoint(files, trained.hparams, batch_size, num_workers)
    with quiet_lightning():
        trainer = pl.Trainer(
            accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
            callbacks=[Collect(write_interval="batch")],
        )  # fmt: skip
        trainer.predict(trained.module, datamodule=data, return_predictions=False)
    return rows


def csv_text(rows: Sequence[tuple[str, torch.Tensor]], class_names: Sequence[str], top_k: int) -> str:
    """``path,label,prob`` (the most likely class), then ``label_2,prob_2`` … ``label_K,prob_K``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["path", "label", "prob"]
    for rank in range(2, top_k + 1):
        header += [f"label_{rank}", f"prob_{rank}"]
    writer.writerow(header)
    for path, probs in rows:
        values, indices = probs.topk(top_k)
        row = [path]
        for value, index in zip(values.tolist(), indices.tolist(), strict=True):
            row += [class_names[index], f"{value:.6f}"]
        writer.writerow(row)
    return out.getvalue()


def _is_predictions_csv(path: Path) -> bool:
    """An earlier output of predict (its header), which a rerun may replace; anything else is the user's."""
    try:
        with open(path, newline="") as f:
            return f.readline().startswith("path,label,prob")
    except (OSError, UnicodeDecodeError):
        return False


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        usage_hint="python -m translearn.predict RUN_DIR_OR_CKPT INPUT... [--out CSV] [--top-k N]",
        prog="python -m translearn.predict",
        description="Predict the class of image files with a trained run, through the run's own eval "
        "preprocessing. Writes a CSV: path,label,prob (the most likely class and its probability), then "
        "label_2,prob_2 ... label_K,prob_K for --top-k K; labels are the run's class names, probabilities "
        "the softmax of the model's outputs. Files that do not decode are skipped and listed on stderr.",
    )
    parser.add_argument(
        "target",
        metavar="RUN_DIR_OR_CKPT",
        help="a run directory (its best checkpoint: metrics.json best_checkpoint, else "
        "checkpoints/best-*.ckpt, else last.ckpt) or a .ckpt file",
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, or folders searched recursively for images"
    )
    parser.add_argument(
        "--out",
        help="the CSV to write; '-' for stdout (default: predictions.csv). An existing file is replaced only "
        "if it is an earlier predictions CSV",
    )
    parser.add_argument("--force", action="store_true", help="replace --out even if it is some other file")
    parser.add_argument(
        "--top-k", type=int, default=1, metavar="K", help="classes per image, most likely first (default: 1)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, metavar="N", help="images per batch (default: 64)"
    )
    parser.add_argument(
        "--num-workers", type=int, default=0, metavar="N", help="loader processes (default: 0)"
    )
    parser.add_argument(
        "--accelerator", default="cpu", help="Lightning accelerator: cpu (default), gpu, mps, auto"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse, load the run, predict, write the CSV, list what was skipped."""
    args = _parser().parse_args(argv)
    for name in ("top_k", "batch_size"):
        if getattr(args, name) < 1:
            exit_with(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.num_workers < 0:
        exit_with(f"--num-workers must be >= 0, got {args.num_workers}")
    try:
        run(args)
    except UserError as exc:
        exit_with(str(exc))


def run(args: argparse.Namespace) -> None:
    from translearn.data.files import find_images, why_unreadable

    out = None if args.out == "-" else Path(args.out or "predictions.csv")
    if out is not None and out.exists() and not args.force and not _is_predictions_csv(out):
        raise UserError(
            f"{out} exists and is not a predictions CSV of translearn; choose another --out, or pass --force "
            "to replace it"
        )
    say = log.info if out is not None else (lambda _line: None)  # stdout holds the CSV with --out -
    found = find_images(args.inputs)
    if not found.files:
        missing = f" ({', '.join(map(str, found.missing))}: no such file or folder)" if found.missing else ""
        raise UserError(
            f"no image files in {' '.join(args.inputs)}{missing}; pass image files or folders that hold them"
        )
    trained = load_trained(args.target)
    top_k = min(args.top_k, len(trained.class_names))
    say(describe(trained))
    probs = predict_files(trained, found.files, args.batch_size, args.num_workers, args.accelerator)
    skipped = [(str(p), "no such file or folder") for p in found.missing]
    skipped += [(str(p), why_unreadable(p) or "unreadable") for p in found.files if str(p) not in probs]
    if not probs:
        path, why = skipped[len(found.missing)]  # the first file that did not decode
        raise UserError(
            f"none of the {len(found.files)} files is an image translearn can read (e.g. {path}: {why})"
        )
    rows = [(str(p), probs[str(p)]) for p in found.files if str(p) in probs]
    text = csv_text(rows, trained.class_names, top_k)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(out, text)
    for path, why in skipped[:MAX_LISTED]:
        log.warning(f"skipped {path}: {why}")
    if len(skipped) > MAX_LISTED:
        log.warning(f"skipped {len(skipped) - MAX_LISTED} more files that are missing or not images")
    ignored = (
        f"; {found.ignored} file(s) without an image extension in the folders ignored"
        if found.ignored
        else ""
    )
    skip_note = f", {len(skipped)} skipped (listed on stderr)" if skipped else ""
    say(f"wrote {out}: {len(rows)} images, top-{top_k}{skip_note}{ignored}")


if __name__ == "__main__":
    main(sys.argv[1:])
