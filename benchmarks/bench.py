"""``make bench``: translearn measured side by side with a plain PyTorch loop, as ratios, in one run.

Absolute images per second mean little on a shared 2-core machine; a ratio of two runs made
back to back, on the same folder, batch, precision and workers, does. Each comparison is run
``--loop-repeats`` (translearn against the plain loop) or ``--repeats`` times (the rest), each repeat
starting with the next runner, and the median ratio reported. Results go to ``benchmarks/RESULTS.md``.

    python benchmarks/bench.py                 # the full benchmark: ~45 min on 2 CPU cores
    python benchmarks/bench.py --repeats 3     # what RESULTS.md holds: ~50-60 min
    python benchmarks/bench.py --toy           # 35 s: proves the code runs (make test runs it)
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_loop import lightning_loop, plain_loop

RECIPE_EPOCHS = 15  # the 2017 recipe's (../shared/reference/seed2017.md)


def translearn_run(
    root: Path,
    out: Path,
    image_size: int,
    epochs: int,
    batch: int,
    strategy: str,
    limit: int | None,
    extra: tuple[str, ...] = ("strategy.cache_features=false",),
    task: str = "base",
    weights: str = "none",
    seed: int = 0,
    cache_dir: Path | None = None,
) -> dict:
    """One translearn run on the shapes data; returns its metrics.json."""
    if out.exists():  # a reused folder reuses its feature cache: a 224 px run once 'built' it in 0.9 s
        raise RuntimeError(f"bench: {out} exists; each run needs a fresh folder (and feature cache)")
    from hydra.core.global_hydra import GlobalHydra

    from translearn.config import compose_config
    from translearn.train import run

    overrides = [
        "trainer=cpu",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"dataset.root={root}",
        f"dataset.task={task}",
        f"dataset.image_size={image_size}",
        f"dataset.batch_size={batch}",
        "dataset.num_workers=0",
        f"model.weights={weights}",
        f"seed={seed}",
        f"strategy={strategy}",
        f"hydra.run.dir={out}",
        f"paths.output_dir={out}",
        f"paths.cache_dir={cache_dir or out / 'cache'}",  # a fresh feature cache: its build counts
        *extra,
    ]
    if limit is not None:
        overrides += [f"+trainer.limit_train_batches={limit}", f"+trainer.limit_val_batches={limit}"]
    cfg = compose_config(overrides)
    GlobalHydra.instance().clear()
    return run(cfg)


def _rate(loop, *args, repeat: int = 0, **kwargs) -> float:
    """Training images per second of a yardstick loop (``repeat`` is only for the translearn runs)."""
    return loop(*args, **kwargs)["train_img_per_s"]


def _translearn_rate(
    data: Path, work: Path, strategy: str, args: argparse.Namespace, epochs: int, limit: int | None,
    repeat: int = 0,
) -> float:  # fmt: skip
    """Training images per second of translearn; with the feature cache, its build counts as training."""
    cached = strategy.endswith("cache)")
    metrics = translearn_run(
        data, work / f"{strategy[:6]}-{cached}-{repeat}", args.image_size, epochs, args.batch_size,
        strategy.split()[0], limit, () if cached else ("strategy.cache_features=false",),
    )  # fmt: skip
    rate = metrics["train_img_per_s"]
    if cached:  # images per second from the start of the build
        rate = metrics["train_samples"] / (metrics["cache_seconds"] + metrics["train_samples"] / rate)
    return rate


class CacheRun(NamedTuple):
    """One freeze run of the cache table, cache on or off."""

    computing: float  # seconds of build + training epochs + validation + test
    wall: float  # seconds of build + fit + test, as a user waits for them
    best_val_acc: float
    split_sizes: dict


def computing_seconds(m: dict) -> float:
    """Every backbone pass the cache table counts: the build, training epochs, validation and test, each
    from its own clock in ``metrics.json`` (checkpoint writes and Lightning's set-up fall between them)."""
    return (
        m["cache_seconds"]
        + m["train_samples"] / m["train_img_per_s"]
        + (m["val_seconds"] or 0.0)
        + m["test_seconds"]
    )


def _cache_run(
    data: Path, work: Path, size: int, epochs: int, batch: int, limit: int | None, mode: str, repeat: int,
    seeds: int = 1,
) -> CacheRun:  # fmt: skip
    """Freeze with the feature cache on (``mode="true"``) or off (``"false"``): one run, or a sweep of
    ``seeds`` runs (seeds 0, 1, ...) sharing one cache folder, as a multirun's cells do; times are summed.

    A sweep's runs start from one weights file, as pretrained weights are shared by a sweep's cells:
    ``model.weights=none`` draws other weights for each seed, and so other features.
    """
    name = f"cache-{mode}-{size}-{epochs}-{repeat}" + (f"-{seeds}seeds" if seeds > 1 else "")
    weights = "none"
    if seeds > 1:
        import torchvision

        weights = str(work / "resnet18-seed0.pth")
        if not Path(weights).exists():
            torch.manual_seed(0)
            torch.save(torchvision.models.resnet18().state_dict(), weights)
    computing, wall, accuracy, sizes = 0.0, 0.0, [], {}
    for seed in range(seeds):
        m = translearn_run(
            data, work / (f"{name}-seed{seed}" if seeds > 1 else name), size, epochs, batch, "freeze",
            limit, (f"strategy.cache_features={mode}",), weights=weights, seed=seed,
            cache_dir=work / f"{name}-cache",
        )  # fmt: skip
        computing += computing_seconds(m)
        # The whole run as a user waits for it: build, fit (sanity check and checkpoints included), test.
        wall += m["cache_seconds"] + m["train_seconds"] + m["test_seconds"]
        accuracy.append(m["best_val_acc"])
        sizes = sizes or m["split_sizes"]
    best = statistics.mean(accuracy)
    print(
        f"bench: freeze {size} px {epochs} epochs {seeds} seed(s) cache={mode} repeat {repeat}: "
        f"{computing:.1f} s computing, {wall:.1f} s in all, best val acc {best:.3f}",
        flush=True,
    )
    return CacheRun(computing, wall, best, sizes)


def cache_accuracy(data: Path, work: Path, seeds: int, epochs: int, toy: bool) -> dict[str, list[float]]:
    """Best val acc and test acc of a freeze run per seed, uncached and cached (one eval view).

    On a pretrained backbone (the embedded weights, shapes target task): the speed table's random-init
    backbone is a random-feature probe near chance, where one image is half a point. Both modes run on the
    same seeds, so the difference is taken seed by seed (a paired comparison: the seed's split and head
    init cancel). The runs share one cache folder, so the embedded weights are pretrained once (a minute),
    not once per run, and the cached runs build their features once. Keys: ``val-false``, ``test-false``,
    ``val-true``, ``test-true``.
    """
    scores: dict[str, list[float]] = {}
    for mode in ("false", "true"):
        for seed in range(seeds):
            m = translearn_run(
                data, work / f"acc-{mode}-{seed}", 32 if toy else 64, epochs, 16, "freeze",
                2 if toy else None, (f"strategy.cache_features={mode}",), task="target",
                weights="none" if toy else "embedded", seed=seed, cache_dir=work / "acc-cache",
            )  # fmt: skip
            scores.setdefault(f"val-{mode}", []).append(m["best_val_acc"])
            scores.setdefault(f"test-{mode}", []).append(m["test_acc"])
        val, test = scores[f"val-{mode}"], scores[f"test-{mode}"]
        print(f"bench: accuracy cache={mode}: best val {val}, test {test}", flush=True)
    return scores


def paired(scores: dict[str, list[float]], metric: str) -> tuple[float, float, float, float, float]:
    """(uncached mean, cached mean, mean difference, its standard error, 95% interval half-width) over seeds.

    The interval uses Student's t for n - 1 degrees of freedom; with one seed there is no spread (0).
    """
    slow, fast = scores[f"{metric}-false"], scores[f"{metric}-true"]
    mean, se, half = _mean_interval([b - a for a, b in zip(slow, fast, strict=True)])
    return statistics.mean(slow), statistics.mean(fast), mean, se, half


def ratio_interval(ratios: list[float]) -> tuple[float, float]:
    """The 95% interval of the geometric mean of paired ratios (Student's t on their logarithms).

    Why: a target such as "≥ 0.97× the plain loop" is within the pair-to-pair noise of a shared machine
    (pairs spread ±5%), so a median of three says little; the interval says whether the target is within
    what the pairs allow. One ratio gives no spread, so the interval is that ratio.
    """
    mean, _, half = _mean_interval([math.log(r) for r in ratios])
    return math.exp(mean - half), math.exp(mean + half)


def _mean_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, standard error, 95% half-width) of independent paired values; no spread from one value."""
    from translearn.report.stats import Stat  # the mean and standard error as the report takes them

    stat = Stat(values=values, seeds=list(range(len(values))))  # one sample each
    se = stat.sem or 0.0
    return stat.mean or 0.0, se, _t95(stat.n - 1) * se


def _t95(df: int) -> float:
    """Student's t two-sided 95% quantile (0 for no degrees of freedom); no SciPy for one number."""
    table = (0.0, 12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14, 2.13)
    return table[df] if df < len(table) else 1.96 + 2.4 / df  # within 0.01 of t from 16 on


# The last commit before the performance work (issue 8): the "before" of the offline default's wall time.
BEFORE = "366b27d"


def default_wall_seconds(src: Path, out: Path, overrides: list[str]) -> float:
    """Wall seconds of ``python -m translearn.train`` (the offline default) with translearn from ``src``.

    Each run gets a fresh cache folder (a feature cache built by an earlier run would be free) that links
    to the shared base weights (retraining those is a one-off, not part of a run).
    """
    shared = Path(os.environ.get("TRANSLEARN_CACHE", Path.home() / ".cache" / "translearn"))
    cache = out.with_name(out.name + "-cache")
    cache.mkdir(parents=True)
    (shared / "weights").mkdir(parents=True, exist_ok=True)
    (cache / "weights").symlink_to(shared / "weights")
    env = {**os.environ, "PYTHONPATH": str(src), "WANDB_MODE": "disabled", "TRANSLEARN_CACHE": str(cache)}
    command = [sys.executable, "-m", "translearn.train", f"hydra.run.dir={out}", "logger=none",
               "trainer.enable_progress_bar=false", *overrides]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def before_after(work: Path, rev: str, repeats: int, toy: bool) -> list[tuple[str, float, float]]:
    """The offline default (``make train``, and with strategy=freeze) at ``rev`` and now, alternately.

    Both read the same cached base weights and data; each pair runs back to back, ``repeats`` times.
    """
    repo = Path(__file__).resolve().parents[1]
    old = work / "before"
    git = ["git", "-C", str(repo)]
    known = subprocess.run([*git, "cat-file", "-e", f"{rev}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        print(f"bench: before/after skipped: commit {rev} is not in this clone", flush=True)
        return []
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "-f", str(old), rev],
                   check=True, capture_output=True)  # fmt: skip
    try:
        rows = []
        cases = [("make train (finetune)", []), ("make train ARGS=strategy=freeze", ["strategy=freeze"])]
        for case, (label, overrides) in enumerate(cases[1:] if toy else cases):  # toy: one case proves it
            if toy:  # no base-task pretraining either: the toy run only proves the code path
                overrides = [*overrides, "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
                             "+trainer.limit_val_batches=1", "model.weights=none"]  # fmt: skip
            then, now = [], []
            for r in range(repeats):
                then.append(default_wall_seconds(old / "src", work / f"before-{case}-{r}", overrides))
                now.append(default_wall_seconds(repo / "src", work / f"now-{case}-{r}", overrides))
                print(f"bench: {label}: before {then[-1]:.1f} s, now {now[-1]:.1f} s", flush=True)
            rows.append((label, statistics.median(then), statistics.median(now)))
        return rows
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(old)],
                       capture_output=True)  # fmt: skip


def decode_rates(folder: Path, image_size: int, count: int) -> tuple[float, float, float]:
    """Training images per second through the loader's dataset: decoding JPEGs vs the decoded store.

    Photo-like inputs: ``count`` shapes images upscaled to 500x375 JPEGs (the size of a typical Caltech256
    or Kaggle photo). Returns (JPEG img/s, decoded img/s, seconds to build the store once).
    """
    from PIL import Image

    from translearn.data.imagefolder import ImageFolderDataModule
    from translearn.data.shapes import generate

    shapes = generate(
        Path(os.environ.get("TRANSLEARN_DATA", Path.home() / ".cache/translearn/data")) / "shapes"
    )
    root = folder / "jpegs"
    classes = sorted(p for p in (shapes / "base" / "train").iterdir() if p.is_dir())
    sources = [path for c in classes for path in sorted(c.glob("*.png"))[: count // len(classes)]]
    for path in sources:
        target = root / path.parent.name / (path.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").resize((500, 375), Image.BICUBIC).save(target, quality=90)

    def dataset(cache: str):
        dm = ImageFolderDataModule(
            root, cache=cache, cache_dir=folder / "cache", index_dir=folder / "cache" / "index",
            image_size=image_size, num_workers=0, split="random", val_fraction=0.1,
        )  # fmt: skip
        start = time.perf_counter()
        dm.prepare_data()
        dm.setup("fit")
        return dm.datasets["train"], time.perf_counter() - start

    rates = []
    build = 0.0
    for cache in ("none", "decoded"):
        data, setup_seconds = dataset(cache)
        build = setup_seconds if cache == "decoded" else build
        start = time.perf_counter()
        for epoch in (1, 2):
            for i in range(len(data)):
                data[(i, epoch)]
        rates.append(2 * len(data) / (time.perf_counter() - start))
    return rates[0], rates[1], build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="tiny sizes: checks that the benchmark runs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="pairs of the cache table and wall times")
    parser.add_argument(
        "--loop-repeats", type=int, default=7, help="repeats of translearn vs the plain loop (cheap, noisy)"
    )
    parser.add_argument("--cache-epochs", type=int, default=10)
    parser.add_argument(
        "--recipe-epochs", type=int, default=RECIPE_EPOCHS,
        help="epochs of the cache table's extra 224 px row, the 2017 recipe's count (0: no such row)",
    )  # fmt: skip
    parser.add_argument(
        "--sweep-seeds", type=int, default=3,
        help="seeds of the cache table's seed-sweep row, whose runs share one cache (0: no such row)",
    )  # fmt: skip
    parser.add_argument("--accuracy-seeds", type=int, default=10, help="seeds of the cached-accuracy check")
    parser.add_argument("--before", default=BEFORE, help="the commit to time the offline default against")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="translearn-bench-"))
    threads = torch.get_num_threads()
    if not args.toy:  # every core; a toy run keeps its caller's threads (the test suite shares them out)
        torch.set_num_threads(os.cpu_count() or 1)
    try:
        return _bench(args, work)
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(work, ignore_errors=True)  # checkpoints and caches: over a GB even at toy size


def _bench(args: argparse.Namespace, work: Path) -> int:
    limit = 2 if args.toy else None
    epochs, repeats = (1, 1) if args.toy else (args.epochs, args.repeats)
    loop_repeats = 1 if args.toy else args.loop_repeats
    cache_epochs = 1 if args.toy else args.cache_epochs

    from translearn.data.shapes import generate

    data = generate(
        Path(os.environ.get("TRANSLEARN_DATA", Path.home() / ".cache/translearn/data")) / "shapes"
    )
    train_dir, val_dir = str(data / "base" / "train"), str(data / "base" / "val")
    rows = []
    for strategy in ("finetune", "freeze", "freeze (default: feature cache)"):
        cached = strategy.endswith("cache)")
        freeze = strategy.startswith("freeze")

        loop = (train_dir, val_dir, args.image_size, epochs, args.batch_size, freeze)
        runners = {
            "plain": partial(_rate, plain_loop, *loop, limit_batches=limit),
            "translearn": partial(_translearn_rate, data, work, strategy, args, epochs, limit),
        }
        if not cached:
            runners["lightning"] = partial(_rate, lightning_loop, *loop, limit_batches=limit)
        rates: dict[str, list[float]] = {name: [] for name in runners}
        for r in range(loop_repeats):
            names = list(runners)
            # Each repeat starts with the next runner: a drift in the machine's speed (shared cores) then
            # falls on every runner alike instead of always on the one that runs last.
            for name in names[r % len(names) :] + names[: r % len(names)]:
                rates[name].append(runners[name](repeat=r))
            line = ", ".join(f"{name} {rates[name][-1]:.1f} img/s" for name in names)
            print(f"bench: {strategy} repeat {r}: {line}", flush=True)
        ratios = [a / b for a, b in zip(rates["translearn"], rates["plain"], strict=True)]
        floor = [a / b for a, b in zip(rates.get("lightning", []), rates["plain"], strict=False)]
        rows.append(
            (
                strategy,
                statistics.median(rates["translearn"]),
                statistics.median(rates["plain"]),
                statistics.median(ratios),
                ratio_interval(ratios),
                (min(ratios), max(ratios)),
                statistics.median(floor) if floor else None,
            )
        )

    cache_rows = []
    # The 224 px target (14x, "the limit is 15x: one backbone pass instead of 15") counts the
    # 2017 recipe's 15 epochs, while it names a 10-epoch run, whose limit is 10 passes: both are measured.
    cells = [(args.image_size, cache_epochs, 1), (224, cache_epochs, 1)]
    if args.recipe_epochs:
        cells.append((224, args.recipe_epochs, 1))
    if args.sweep_seeds > 1:  # a seed sweep: its cells share the one cache the first of them builds
        cells.append((args.image_size, cache_epochs, args.sweep_seeds))
    # toy: two sizes, two run folders, the second a two-seed sweep
    for size, cell_epochs, seeds in [(32, 1, 1), (40, 2, 2)] if args.toy else cells:
        runs: dict[str, list[CacheRun]] = {"false": [], "true": []}
        for r in range(repeats):
            # Pairs, each starting with the other mode than the last: one cached run is a burst of seconds
            # that a spike of outside load can spoil, so the median of pairs is reported, as above.
            for mode in ("false", "true") if r % 2 == 0 else ("true", "false"):
                runs[mode].append(
                    _cache_run(data, work, size, cell_epochs, args.batch_size, limit, mode, r, seeds)
                )
        sizes = runs["true"][0].split_sizes
        train, val, test = sizes.get("train", 0), sizes.get("val", 0), sizes.get("test", 0)
        # Backbone passes uncached (train + val every epoch, test once, in every run) ÷ cached (each image
        # once, in the sweep's first run): the speed-up if only the backbone cost time (decoding and
        # augmentation are cached away too, so it can be exceeded).
        limit_ratio = seeds * (cell_epochs * (train + val) + test) / (train + val + test)
        slow, fast = runs["false"], runs["true"]
        ratios = [a.computing / b.computing for a, b in zip(slow, fast, strict=True)]
        wall = [a.wall / b.wall for a, b in zip(slow, fast, strict=True)]
        cache_rows.append(
            (
                size,
                cell_epochs,
                seeds,
                statistics.median(a.computing for a in slow),
                statistics.median(b.computing for b in fast),
                statistics.median(ratios),
                (min(ratios), max(ratios)),
                limit_ratio,
                statistics.median(wall),
                statistics.median(a.best_val_acc for a in slow),
                statistics.median(b.best_val_acc for b in fast),
            )
        )

    seeds = 1 if args.toy else args.accuracy_seeds
    accuracy = cache_accuracy(data, work, seeds, cache_epochs, args.toy)

    walls = before_after(work, args.before, repeats, args.toy)

    jpeg, decoded, build = decode_rates(work / "decode", args.image_size, 40 if args.toy else 400)
    print(f"bench: JPEG decode {jpeg:.1f} img/s, decoded store {decoded:.1f} img/s (built in {build:.1f} s)")

    lines = [
        "# Benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores (`{' '.join(sys.argv)}`): "
        f"ResNet18 from scratch, shapes base task ({args.image_size} px, batch {args.batch_size}, "
        f"{epochs} epochs, `num_workers=0`, fp32), training images per second with validation excluded, "
        f"median of {loop_repeats} repeats (each starting with the next runner, so that a drift in the "
        "shared machine's speed falls on all alike), and the 95% interval of the ratio's geometric mean over "
        "the pairs. `freeze` turns the feature cache off, to measure the loop alone; the default (bn=frozen: "
        "cache on) counts the cache build as training time.",
        "",
        "| run | translearn img/s | plain loop img/s | translearn ÷ plain | 95% interval | pairs, min–max "
        "| bare Lightning ÷ plain |",
        "|---|--:|--:|--:|--:|--:|--:|",
        *[
            f"| {s} | {a:.1f} | {b:.1f} | {r:.3f}× | {ci_lo:.3f}–{ci_hi:.3f} | {lo:.3f}–{hi:.3f} | "
            + (f"{f:.3f}× |" if f is not None else "– |")
            for s, a, b, r, (ci_lo, ci_hi), (lo, hi), f in rows
        ],
        "",
        "`bare Lightning` is the plain loop's model, loaders and optimizer in a LightningModule and Trainer "
        "with nothing else (no callbacks, logger, checkpoints or metrics): the floor of a loop run by "
        "Lightning, measured in the same repeats.",
        "",
        "Frozen-feature cache: `strategy=freeze` on the shapes base task (bn=frozen, fresh cache, "
        f"`cache_views=1`), uncached ÷ cached, {repeats} pairs (alternating which runs first), medians"
        + (
            f"; {args.recipe_epochs} epochs is the 2017 recipe's count, the passes of the issue's 224 px "
            f"limit ({args.recipe_epochs}×)"
            if args.recipe_epochs
            else ""
        )
        + ". `computing` is the seconds of cache build + "
        "training epochs + validation + test, each from its own clock; `in all` is the whole run (build, "
        "fit with its sanity check and a checkpoint write per epoch, test). `passes` is backbone passes "
        "uncached (train and val each epoch) ÷ cached (each image once): the speed-up if only the backbone "
        "cost time. Decoding and augmenting are cached away too, so the speed-up can exceed it. A row with "
        "several `runs` is a seed sweep (`seed=0,1,...` from one weights file, with one cache folder, as a "
        "multirun's cells share `paths.cache_dir`): seconds are summed over its runs, accuracy is their "
        "mean, and only the first cached run builds (one eval view is a function of the image file, not of "
        "the seed).",
        "",
        "| crop | epochs | runs | uncached s | cached s | speed-up computing | pairs, min–max | passes "
        "| speed-up in all | best val acc uncached | cached |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        *[
            f"| {size} px | {n} | {k} | {a:.1f} | {b:.1f} | {r:.1f}× | {lo:.1f}–{hi:.1f}× | {lim:.1f}× "
            f"| {w:.1f}× | {x:.3f} | {y:.3f} |"
            for size, n, k, a, b, r, (lo, hi), lim, w, x, y in cache_rows
        ],
        "",
        f"Accuracy with the cache on a pretrained backbone: `strategy=freeze` on the shapes target task "
        f"(embedded weights, 150 training images, 200 val, 200 test, 64 px, batch 16, {cache_epochs} "
        f"epochs), seeds 0–{seeds - 1}, each seed run both ways. With one cached view the head trains on "
        "the eval transform instead of random crops; with `cache_views` ≥ epochs the cached run equals the "
        "uncached one (tested). The difference is taken seed by seed; its interval is the 95% t-interval "
        "over seeds.",
        "",
        "| metric | uncached (random crops) | cached (one eval view) | cached − uncached | 95% interval |",
        "|---|--:|--:|--:|--:|",
        *[
            f"| {label} | {a:.4f} | {b:.4f} | {d:+.4f} | {d - h:+.4f} to {d + h:+.4f} |"
            for label, (a, b, d, _se, h) in (
                ("best val acc", paired(accuracy, "val")),
                ("test acc", paired(accuracy, "test")),
            )
        ],
        "",
        f"Decode-once images (`dataset.cache=decoded`): training samples per second through the dataset "
        f"(decode or read, resize, seeded random crop, flip, normalise) at {args.image_size} px, from "
        "500x375 JPEGs, two epochs each, single process.",
        "",
        "| JPEG decode img/s | decoded store img/s | decoded ÷ JPEG | store built once in |",
        "|--:|--:|--:|--:|",
        f"| {jpeg:.1f} | {decoded:.1f} | {decoded / jpeg:.1f}× | {build:.1f} s |",
        "",
        f"The offline default, wall seconds of `python -m translearn.train` (process start to exit, cached "
        f"base weights), at `{args.before}` (before the performance work) and now, median of {repeats} "
        "alternating runs:",
        "",
        "| command | before s | now s | before ÷ now |",
        "|---|--:|--:|--:|",
        *[f"| `{label}` | {a:.1f} | {b:.1f} | {a / b:.2f}× |" for label, a, b in walls],
        "",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.toy:
        Path(args.out).write_text(table)
        print(f"bench: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
