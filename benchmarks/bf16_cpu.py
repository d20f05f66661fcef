"""bf16 on a CPU: translearn under ``trainer.precision=bf16-mixed`` against ``32-true``, side by side.

CPUs with bf16 matrix units (Intel AMX) run bf16 convolutions far faster than fp32; an fp32 run on one
says so at startup. This measures what that line claims, in alternating pairs in one process:

* training images per second, bf16-mixed ÷ 32-true, each with ``model.channels_last=auto``: finetune and
  uncached freeze at 224 px (8 batches), finetune at 64 px (2 epochs), where bf16 is also timed in both
  layouts (auto's rule runs NHWC under bf16 at every size);
* freeze at 224 px under bf16-mixed, 10 epochs: uncached ÷ cached, with the cache built under the run's
  autocast (what translearn does) and, for comparison, built in fp32 (what it did before).

    python benchmarks/bf16_cpu.py              # ~15 min on 2 cores with AMX; writes RESULTS-bf16-cpu.md
    python benchmarks/bf16_cpu.py --toy        # seconds: proves the code runs (make test runs it)

On a CPU without AMX bf16 runs in emulation; the figures then say what it costs there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import computing_seconds, translearn_run

BF16 = ("trainer.precision=bf16-mixed",)


def _pairs(names: list[str], repeats: int, measure) -> dict[str, list[float]]:
    """``measure(name, repeat)`` for each name, each repeat starting with the other end of the list."""
    values: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            values[name].append(measure(name, r))
    return values


def _ratio(a: list[float], b: list[float]) -> str:
    pairs = [x / y for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(pairs):.2f}× ({min(pairs):.2f}–{max(pairs):.2f})"


def _rate(data: Path, work: Path, case: tuple, variants: dict, name: str, r: int) -> float:
    """Training images per second of one translearn run of ``case`` in variant ``name``."""
    crop, strategy, epochs, batches, extra = case
    run_dir = work / f"rate-{crop}-{strategy}-{name.replace(' ', '_')}-{r}"
    m = translearn_run(data, run_dir, crop, epochs, 32, strategy, batches, (*extra, *variants[name]))
    shutil.rmtree(run_dir, ignore_errors=True)
    return m["train_img_per_s"]


def throughput(data: Path, work: Path, repeats: int, toy: bool) -> list[str]:
    """Table rows: training img/s of bf16-mixed ÷ 32-true, per case."""
    big, small = (40, 32) if toy else (224, 64)
    cases = [  # label, crop, strategy, epochs, batches, overrides
        (f"finetune {big} px", big, "finetune", 1, 2 if toy else 8, ()),
        (f"freeze {big} px, no cache", big, "freeze", 1, 2 if toy else 8, ("strategy.cache_features=false",)),
        (f"finetune {small} px", small, "finetune", 1 if toy else 2, 2 if toy else None, ()),
    ]
    variants = {
        "fp32": (),
        "bf16": BF16,
        "bf16 NCHW": (*BF16, "model.channels_last=false"),
        "bf16 NHWC": (*BF16, "model.channels_last=true"),
    }
    rows = []
    for label, crop, strategy, epochs, batches, extra in cases:
        # The small crop also times both layouts under bf16: what model.channels_last=auto's rule rests on.
        names = ["fp32", "bf16"] if crop == big else ["fp32", "bf16 NCHW", "bf16 NHWC"]
        case = (crop, strategy, epochs, batches, extra)
        rates = _pairs(names, repeats, partial(_rate, data, work, case, variants))
        layouts = "–"
        if "bf16 NHWC" in rates:
            layouts = _ratio(rates["bf16 NHWC"], rates["bf16 NCHW"])
            rates["bf16"] = rates["bf16 NHWC"]  # what auto runs under bf16 on a CPU
        rows.append(
            f"| {label} | {statistics.median(rates['fp32']):.1f} | {statistics.median(rates['bf16']):.1f} "
            f"| {_ratio(rates['bf16'], rates['fp32'])} | {layouts} |"
        )
        print(f"bf16_cpu: {rows[-1]}", flush=True)
    return rows


def cached_under_bf16(data: Path, work: Path, repeats: int, toy: bool) -> list[str]:
    """Table rows: uncached ÷ cached freeze under bf16-mixed, the cache built in bf16 and in fp32."""
    from translearn import features

    crop, epochs = (40, 1) if toy else (224, 10)
    names = ["uncached", "cached, bf16 build", "cached, fp32 build"]
    autocast_dtype = features.autocast_dtype

    def seconds(name: str, r: int) -> float:
        if name == "cached, fp32 build":  # the build as it was before it followed the run's precision
            features.autocast_dtype = lambda precision: None
        try:
            mode = "false" if name == "uncached" else "true"
            run_dir = work / f"cache-{names.index(name)}-{r}"
            m = translearn_run(
                data, run_dir, crop, epochs, 32, "freeze", 2 if toy else None,
                (f"strategy.cache_features={mode}", *BF16), cache_dir=run_dir / "cache",
            )  # fmt: skip
            shutil.rmtree(run_dir, ignore_errors=True)
        finally:
            features.autocast_dtype = autocast_dtype
        return computing_seconds(m)  # what bench.py's cache table counts

    runs = _pairs(names, repeats, seconds)
    rows = [
        f"| {name} | {statistics.median(runs[name]):.1f} | {_ratio(runs['uncached'], runs[name])} |"
        for name in names[1:]
    ]
    for row in rows:
        print(f"bf16_cpu: {row}", flush=True)
    return [f"| uncached | {statistics.median(runs['uncached']):.1f} | 1.00× |", *rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="tiny sizes: checks that the benchmark runs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS-bf16-cpu.md"))
    args = parser.parse_args(argv)
    repeats = 1 if args.toy else args.repeats
    threads = torch.get_num_threads()
    if not args.toy:
        torch.set_num_threads(os.cpu_count() or 1)
    work = Path(tempfile.mkdtemp(prefix="translearn-bf16-"))
    try:
        from translearn.data.shapes import generate

        data = generate(
            Path(os.environ.get("TRANSLEARN_DATA", Path.home() / ".cache/translearn/data")) / "shapes"
        )
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        lines = [
            "# bf16 on a CPU",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} (`{' '.join(sys.argv)}`): ResNet18 from scratch on the "
            "shapes base task, batch 32, `num_workers=0`, translearn's defaults otherwise; "
            f"bf16-mixed against 32-true on {os.cpu_count()} CPU cores (AMX: {'yes' if amx else 'no'}), "
            f"median of {repeats} alternating pairs (min–max). Computing seconds as in RESULTS.md's cache "
            "table: build + training epochs + validation + test.",
            "",
            "| run | fp32 img/s | bf16 img/s | bf16 ÷ fp32 | under bf16, NHWC ÷ NCHW |",
            "|---|--:|--:|--:|--:|",
            *throughput(data, work, repeats, args.toy),
            "",
            f"| freeze at {40 if args.toy else 224} px under bf16-mixed, {1 if args.toy else 10} epochs "
            "| computing s | speed-up over uncached |",
            "|---|--:|--:|",
            *cached_under_bf16(data, work, repeats, args.toy),
        ]
        print("\n".join(lines))
        if not args.toy:  # toy figures are never written as results
            Path(args.out).write_text("\n".join(lines) + "\n")
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
