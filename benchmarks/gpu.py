"""GPU benchmark, for a CUDA machine: what the GPU switches buy, and the 2017 grid's wall time today.

1. **Switches.** ResNet18 and ResNet50 ``finetune`` training images per second through translearn's
   LightningModule and Lightning's loop, on batches already in GPU memory (so the data pipeline is not
   measured): fp32, then ``bf16-mixed`` + ``model.channels_last``, then the same + ``model.compile``.
   Each is reported as a ratio to fp32, measured in the same process after a warm-up.
2. **The 2017 grid.** Its 16 cells (hymenoptera, simpsons, dogs_vs_cats, caltech256 × rgb/gray ×
   finetune/freeze) run through ``translearn.train`` with ``trainer=gpu`` on synthetic JPEG folders shaped
   like the real datasets (class count, train and val images, from ``../shared/reference/seed2017.md``),
   batch 64 / 256 as in 2017. ``freeze`` is translearn's default (bn=frozen, feature cache on). The 2017
   times (Tesla M60s) are printed beside each cell.

    python benchmarks/gpu.py                      # the whole benchmark on a GPU (figures to RESULTS-gpu.md)
    python benchmarks/gpu.py --grid-epochs 2      # a shorter grid; 15-epoch times are extrapolated
    python benchmarks/gpu.py --toy                # seconds on a CPU: proves the script runs

Pixels are random, so accuracies mean nothing here; only the times do.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

# name: (classes, train images, val images, 2017 batch, 2017 finetune time, 2017 freeze time)
GRID_2017 = {
    "hymenoptera": (2, 244, 153, 64, "1m32s", "1m13s"),
    "simpsons": (20, 19548 - 3910, 3910, 256, "9m48s", "9m48s"),
    "dogs_vs_cats": (2, 20000, 5000, 256, "12m02s", "11m52s"),
    "caltech256": (257, 30607 - 6116, 6116, 256, "14m19s", "14m00s"),
}


class _StepClock:
    """Seconds and images over the steps after ``warmup`` (compile and cuDNN autotuning excluded)."""

    def __init__(self, warmup: int):
        import pytorch_lightning as pl

        clock = self

        class Callback(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
                if trainer.global_step == warmup:
                    _sync()
                    clock.start = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
                if trainer.global_step > warmup:
                    clock.images += len(batch[1])

            def on_train_end(self, trainer, module) -> None:
                _sync()
                clock.stop = time.perf_counter()

        self.callback, self.images, self.start, self.stop = Callback(), 0, 0.0, 0.0

    @property
    def rate(self) -> float:
        return self.images / max(self.stop - self.start, 1e-9)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def switch_rate(arch: str, batch: int, side: int, steps: int, warmup: int, precision: str, **model) -> float:
    """Training images per second of translearn's module on one repeated batch held on the device."""
    import pytorch_lightning as pl

    from translearn.module import TransferModule

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(batch, 3, side, side, device=device)
    y = torch.randint(0, 100, (batch,), device=device)
    module = TransferModule(arch, weights="none", num_classes=100, scheduler=None, **model)
    clock = _StepClock(warmup)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu", devices=1, precision=precision,
        max_steps=warmup + steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock.callback],
        benchmark=device == "cuda",
    )  # fmt: skip
    trainer.fit(module, _Repeat((x, y), warmup + steps))
    return clock.rate


class _Repeat:
    """One batch, ``n`` times: a loader with no data pipeline (a plain list would be read as n loaders)."""

    def __init__(self, batch: tuple, n: int):
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter([self.batch] * self.n)


def _write_images(job: tuple[str, int, int, int]) -> None:
    folder, count, side, seed = job
    from PIL import Image

    rng = np.random.default_rng(seed)
    Path(folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (side * 3 // 4 // 8, side // 8, 3), dtype=np.uint8)  # photo-like JPEG
        image = Image.fromarray(pixels).resize((side, side * 3 // 4), Image.BILINEAR)
        image.save(f"{folder}/{i:06d}.jpg", quality=90)


def make_dataset(root: Path, classes: int, train: int, val: int, side: int) -> Path:
    """root/{train,val}/<class>/*.jpg with the real dataset's counts, images spread evenly over classes."""
    jobs = []
    for split, total in (("train", train), ("val", val)):
        for c in range(classes):
            count = total // classes + (1 if c < total % classes else 0)
            jobs.append((str(root / split / f"class{c:03d}"), count, side, hash((split, c)) % 2**31))
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(_write_images, jobs, chunksize=4))
    return root


def grid_cell(root: Path, out: Path, strategy: str, color: str, batch: int, epochs: int, extra: list) -> dict:
    from hydra.core.global_hydra import GlobalHydra

    from translearn.config import compose_config
    from translearn.train import run

    cfg = compose_config(
        [
            "trainer=gpu" if torch.cuda.is_available() else "trainer=cpu",
            f"trainer.max_epochs={epochs}", "trainer.enable_progress_bar=false", "logger=csv",
            "dataset=imagefolder", f"dataset.root={root}", "dataset.split=folders", f"dataset.color={color}",
            f"dataset.batch_size={batch}", "model.weights=none", f"strategy={strategy}",
            f"hydra.run.dir={out}", f"paths.output_dir={out}", f"paths.cache_dir={out.parent}/cache",
            *extra,
        ]
    )  # fmt: skip
    GlobalHydra.instance().clear()
    return run(cfg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="tiny sizes on any device: checks the script runs")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per switch setting")
    parser.add_argument("--grid-epochs", type=int, default=15, help="epochs per grid cell (2017: 15)")
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS-gpu.md"))
    parser.add_argument("--work", default=None, help="folder for the synthetic datasets and runs")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if gpu else f"CPU ({os.cpu_count()} cores)"
    if not gpu and not args.toy:
        print("gpu.py: no CUDA device; run with --toy to check the script on a CPU", file=sys.stderr)
        return 2
    side, steps, warmup = (32, 2, 1) if args.toy else (224, args.steps, 15)
    batches = {"resnet18": 8 if args.toy else 256, "resnet50": 8 if args.toy else 128}
    backend = "inductor" if gpu else "aot_eager"  # aot_eager: no C++ toolchain needed for the CPU dry run
    settings = [
        ("fp32", "32-true", {}),
        ("bf16 + channels_last", "bf16-mixed", {"channels_last": True}),
        ("bf16 + channels_last + compile", "bf16-mixed", {"channels_last": True, "compile": backend}),
    ]
    lines = [
        "# GPU benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {name} with torch {torch.__version__} "
        f"(`{' '.join(['benchmarks/gpu.py', *sys.argv[1:]])}`).",
        "",
        f"Finetune training images per second, {side} px, batches held in GPU memory, {steps} steps "
        f"after {warmup} warm-up steps:",
        "",
        "| backbone | batch | setting | img/s | ÷ fp32 |",
        "|---|--:|---|--:|--:|",
    ]
    for arch, batch in batches.items():
        base = None
        for label, precision, model in settings:
            rate = switch_rate(arch, batch, side, steps, warmup, precision, **model)
            base = base or rate
            lines.append(f"| {arch} | {batch} | {label} | {rate:.0f} | {rate / base:.2f}× |")
            print(lines[-1], flush=True)

    if not args.skip_grid:
        work = Path(args.work or tempfile.mkdtemp(prefix="translearn-gpu-"))
        if not args.work:  # the synthetic datasets and runs are tens of GB at full size
            atexit.register(shutil.rmtree, work, True)
        epochs = 1 if args.toy else args.grid_epochs
        lines += [
            "",
            f"The 2017 grid on synthetic JPEGs shaped like each dataset, {epochs} epoch(s) per cell, "
            "`trainer=gpu` (bf16-mixed, cuDNN benchmark), ResNet18 at 224 px, workers `auto`. Seconds are "
            "the feature-cache build plus the fit; the 15-epoch column scales the fit to 15 epochs and "
            "adds the cache build once.",
            "",
            "| dataset | colour | strategy | train/val images | batch | wall s | train img/s | 15 epochs | "
            "2017 (4× M60) |",
            "|---|---|---|--:|--:|--:|--:|--:|---|",
        ]
        for dataset, (classes, train, val, batch, t_ft, t_fr) in GRID_2017.items():
            if args.toy:
                classes, train, val, batch = min(classes, 3), 12, 6, 4
            start = time.perf_counter()
            root = make_dataset(work / "data" / dataset, classes, train, val, 64 if args.toy else 300)
            print(f"gpu.py: {dataset}: {train + val} synthetic JPEGs in {time.perf_counter() - start:.0f} s")
            for color in ("rgb", "gray"):
                for strategy, then in (("finetune", t_ft), ("freeze", t_fr)):
                    extra = ["dataset.image_size=32"] if args.toy else []
                    out = work / "runs" / f"{dataset}-{color}-{strategy}"
                    m = grid_cell(root, out, strategy, color, batch, epochs, extra)
                    wall = m["cache_seconds"] + m["train_seconds"]
                    full = m["cache_seconds"] + m["train_seconds"] * 15 / epochs
                    lines.append(
                        f"| {dataset} | {color} | {strategy} | {train}/{val} | {batch} | {wall:.1f} | "
                        f"{m['train_img_per_s'] or 0:.0f} | {full / 60:.1f} min | {then} |"
                    )
                    print(lines[-1], flush=True)
                    (out / "cell.json").write_text(json.dumps(m, default=str))
    table = "\n".join([*lines, ""])
    print(table)
    if not args.toy:
        Path(args.out).write_text(table)
        print(f"gpu.py: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
