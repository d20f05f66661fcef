"""Where a step's time goes: translearn's own parts timed outside Lightning against the plain loop's.

``bench.py`` measures whole runs; this splits an uncached step into its two halves and times each side
by side with the plain loop's, alternating, in one process:

* data: one epoch of training batches from translearn's loader (index, seeded per-sample augmentation,
  (seed, epoch) shuffle) against torchvision's ImageFolder with the same transforms;
* step: TransferModule's forward + loss + metric updates + backward under ``strategy=freeze`` (or
  ``finetune``) against the plain model's forward + loss + backward, on the same batch.

What neither half explains is Lightning's loop (``bench.py``'s bare-Lightning column).

    python benchmarks/parts.py                 # 64 px, batch 32, freeze: about a minute
    python benchmarks/parts.py --toy           # seconds: proves the code runs (make test runs it)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_loop import _loaders, _model, _train_mode


def _seconds(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="tiny sizes: checks that the script runs")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--strategy", default="freeze", choices=("freeze", "finetune"))
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args(argv)
    repeats = 1 if args.toy else args.repeats
    size = 32 if args.toy else args.image_size

    from hydra.core.global_hydra import GlobalHydra

    from translearn.config import compose_config, instantiate
    from translearn.data.shapes import generate
    from translearn.module import TransferModule

    data = generate(
        Path(os.environ.get("TRANSLEARN_DATA", Path.home() / ".cache/translearn/data")) / "shapes"
    )
    cfg = compose_config(
        [f"strategy={args.strategy}", "model.weights=none", f"dataset.root={data}", "dataset.task=base",
         f"dataset.image_size={size}", f"dataset.batch_size={args.batch_size}", "dataset.num_workers=0"]
    )  # fmt: skip
    GlobalHydra.instance().clear()
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    datamodule.setup("fit")
    ours_loader = datamodule.loader(datamodule.datasets["train"], True, 0)
    plain_loader, _ = _loaders(
        str(data / "base" / "train"), str(data / "base" / "val"), size, args.batch_size, 0
    )
    freeze = args.strategy == "freeze"
    limit = 3 if args.toy else None

    def epoch(loader) -> float:
        images = 0
        start = time.perf_counter()
        for i, (x, _) in enumerate(loader):
            if limit is not None and i >= limit:
                break
            images += len(x)
        return (time.perf_counter() - start) / images * 1000  # ms an image

    torch.manual_seed(0)
    module = TransferModule(
        backbone="resnet18", weights="none", num_classes=datamodule.num_classes,
        policy=instantiate(cfg.strategy),
    )  # fmt: skip
    module.train()
    plain = _model(datamodule.num_classes, freeze)
    _train_mode(plain, freeze)
    x, y = next(iter(plain_loader))

    def plain_step() -> None:
        nn.functional.cross_entropy(plain(x), y).backward()

    def our_step() -> None:
        module._step((x, y), "train").backward()

    steps = 2 if args.toy else 10
    parts = {
        "data ms/img": (lambda: epoch(ours_loader), lambda: epoch(plain_loader)),
        "step ms": (lambda: _seconds(our_step, steps) / steps * 1000,
                    lambda: _seconds(plain_step, steps) / steps * 1000),
    }  # fmt: skip
    rows: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in parts}
    for r in range(repeats):
        for name, runners in parts.items():
            order = [0, 1] if r % 2 == 0 else [1, 0]  # alternate who goes first
            for side in order:
                rows[name][side].append(runners[side]())
    print(f"{args.strategy}, {size} px, batch {args.batch_size}, median of {repeats} alternating repeats")
    print("| part | translearn | plain loop | translearn ÷ plain, speed |")
    print("|---|--:|--:|--:|")
    for name, (mine, other) in rows.items():
        m, o = statistics.median(mine), statistics.median(other)
        print(f"| {name} | {m:.3f} | {o:.3f} | {o / m:.3f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
