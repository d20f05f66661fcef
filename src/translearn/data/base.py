"""The shared data module: an index of (path, label) per split → datasets → loaders.

Every dataset module only says how to find its files (``build_index``) and, where it can, how to get
them (``prepare_data``). Loading, colour conversion, transforms and batching live here once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler

from translearn.data.images import load_rgb
from translearn.data.transforms import (
    COLORS,
    CROP_RATIO,
    CROP_SCALE,
    GRAY_MODES,
    Preprocessing,
    build_transform,
    check_range,
    input_channels,
)
from translearn.errors import UserError

SPLITS = ("train", "val", "test")
_SPLIT_WORDS = {"train": "training", "val": "validation"}


@dataclass
class DatasetIndex:
    """Class names and, per split, the (path, label) samples: what training reads, nothing else."""

    classes: list[str]
    samples: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def count(self, split: str) -> int:
        return len(self.samples.get(split, []))


class ImageFileDataset(Dataset):
    """Decodes one indexed file per item, converting any image mode to RGB first.

    Items are addressed by an index, or by ``(index, epoch)`` from :class:`EpochShuffle`: then the random
    augmentation of that item is seeded from (seed, epoch, index) alone, so it does not depend on worker
    count, fetch order or where a resumed run picked up.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], transform, seed: int = 0):
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, index: int):
        """The RGB PIL image of item ``index`` (decoded from its file here; from a store in subclasses)."""
        return load_rgb(self.samples[index][0])

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key if isinstance(key, tuple) else (key, None)
        label = self.samples[index][1]
        image = self.image(index)
        if epoch is None:
            return self.transform(image), label
        # The CPU generator only, saved and restored by hand: torch.manual_seed also queues lazy seeding of
        # CUDA, XPU and MTIA, each recording a stack trace (~1 ms a sample), and torch.random.fork_rng
        # costs ~20 µs a sample more than this (6% of the data path at 64 px: issue 8's profile).
        generator = torch.default_generator
        state = generator.get_state()
        try:
            generator.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
            return self.transform(image), label
        finally:
            generator.set_state(state)


class EpochShuffle(Sampler):
    """A shuffle that is a pure function of (seed, epoch), yielding ``(index, epoch)`` keys.

    Lightning creates the first iterator of a (resumed) fit before any epoch hook runs, so re-seeding the
    global RNG in a hook cannot make shuffling reproducible; reading the epoch when iteration starts can.
    """

    def __init__(self, size: int, seed: int, epoch: Callable[[], int]):
        self.size, self.seed, self.epoch = size, seed, epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch()
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return ((i, epoch) for i in torch.randperm(self.size, generator=generator).tolist())


class ImageDataModule(pl.LightningDataModule):
    """Base for every dataset. ``batch_size`` is the global batch; each of N DDP ranks gets 1/N of it."""

    def __init__(
        self,
        root: str | Path,
        name: str = "",
        num_classes: int | None = None,
        color: str = "rgb",
        gray_mode: str = "replicate",
        image_size: int | None = None,
        resize_ratio: float | None = None,
        interpolation: str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        preprocessing: Preprocessing | None = None,
        crop_scale: Sequence[float] = CROP_SCALE,
        crop_ratio: Sequence[float] = CROP_RATIO,
        hflip: bool = True,
        batch_size: int = 64,
        num_workers: int | str = "auto",
        seed: int = 0,
        pin_memory: bool | None = None,
        cache: str = "none",
        cache_dir: str | Path | None = None,
    ):
        super().__init__()
        if cache not in ("none", "decoded"):
            raise UserError(f"dataset.cache must be none or decoded, got '{cache}'")
        if color not in COLORS:
            raise UserError(f"dataset.color must be one of {', '.join(COLORS)}, got '{color}'")
        if gray_mode not in GRAY_MODES:
            raise UserError(f"dataset.gray_mode must be one of {', '.join(GRAY_MODES)}, got '{gray_mode}'")
        if not isinstance(hflip, bool):
            raise UserError(f"dataset.hflip must be true or false, got '{hflip}'")
        if batch_size < 1:
            raise UserError(f"dataset.batch_size must be >= 1, got {batch_size}")
        if num_workers != "auto" and (not isinstance(num_workers, int) or num_workers < 0):
            raise UserError(f"dataset.num_workers must be auto or an integer >= 0, got '{num_workers}'")
        self.root = Path(str(root)).expanduser()
        self.name = name or type(self).__name__
        self.expected_classes = num_classes
        self.color, self.gray_mode = color, gray_mode
        # The weights' own preprocessing (train.run passes it), with explicit dataset.* values on top.
        self.preprocessing = (preprocessing or Preprocessing()).resolve(
            image_size, resize_ratio, interpolation, mean, std
        )
        self.image_size = self.preprocessing.crop
        # Training augmentation: RandomResizedCrop's area and aspect-ratio ranges, then a horizontal flip.
        self.crop_scale = check_range("crop_scale", crop_scale, upper=1.0)
        self.crop_ratio = check_range("crop_ratio", crop_ratio)
        self.hflip = hflip
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.pin_memory = pin_memory
        self.cache = cache
        self.cache_dir = (
            Path(str(cache_dir)).expanduser() if cache_dir else Path.home() / ".cache" / "translearn"
        )
        self._index: DatasetIndex | None = None
        self.datasets: dict[str, ImageFileDataset] = {}

    # --- what each dataset defines ----------------------------------------------------------------

    def build_index(self) -> DatasetIndex:
        """Find the files under ``self.root`` and assign each a label and a split."""
        raise NotImplementedError

    # --- shared machinery -------------------------------------------------------------------------

    @property
    def index_digest(self) -> str | None:
        """Which file is in which split, as a digest; None for data drawn in memory (no files to change)."""
        return None

    @property
    def index(self) -> DatasetIndex:
        if self._index is None:
            index = self.build_index()
            if len(index.classes) < 2:
                raise UserError(
                    f"{self.name}: found {len(index.classes)} class(es) under {self.root}; "
                    "a classifier needs at least 2"
                )
            if self.expected_classes is not None and len(index.classes) != self.expected_classes:
                raise UserError(
                    f"{self.name}: dataset.num_classes={self.expected_classes} but {self.root} holds "
                    f"{len(index.classes)} classes; fix dataset.num_classes or the folder"
                )
            empty = [split for split in ("train", "val") if index.count(split) == 0]
            if empty:
                total = sum(index.count(split) for split in ("train", "val", "test"))
                hint = (
                    f"; {total} image(s) in all: too few to split off a validation set (add images, or "
                    "raise dataset.val_fraction)"
                    if empty == ["val"] and total
                    else ""
                )
                raise UserError(
                    f"{self.name}: no {' or '.join(_SPLIT_WORDS[s] for s in empty)} images under {self.root}"
                    f"{hint}"
                )
            self._index = index
        return self._index

    @property
    def num_classes(self) -> int:
        return len(self.index.classes)

    @property
    def class_names(self) -> list[str]:
        return list(self.index.classes)

    @property
    def in_chans(self) -> int:
        return input_channels(self.color, self.gray_mode)

    def has_split(self, split: str) -> bool:
        return self.index.count(split) > 0

    def transform(self, train: bool, resized: bool = False):
        return build_transform(
            train,
            color=self.color,
            gray_mode=self.gray_mode,
            crop_scale=self.crop_scale,
            crop_ratio=self.crop_ratio,
            hflip=self.hflip,
            preprocessing=self.preprocessing,
            resized=resized,
        )

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if self.index.count(split) and split not in self.datasets:
                samples, train = self.index.samples[split], split == "train"
                if self.cache == "decoded":
                    from translearn.data.decoded import DecodedImages, build_store

                    prep = self.preprocessing
                    store = build_store(samples, prep.resize, prep.interpolation, self.cache_dir / "decoded")
                    dataset = DecodedImages(
                        store, samples, self.transform(train, resized=True), seed=self.seed
                    )
                else:
                    dataset = ImageFileDataset(samples, self.transform(train), seed=self.seed)
                self.datasets[split] = dataset

    def _per_rank_batch(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise UserError(
                f"dataset.batch_size={self.batch_size} is the global batch and must divide evenly "
                f"over {world} processes"
            )
        return self.batch_size // world

    def _on_gpu(self) -> bool:
        accelerator = getattr(self.trainer, "accelerator", None)
        if accelerator is None:
            return torch.cuda.is_available()
        return type(accelerator).__name__ != "CPUAccelerator"

    def workers(self) -> int:
        """``dataset.num_workers``, with ``auto`` resolved from the cores this process may use.

        On a GPU each process gets its share of the cores, one left for the process itself (at most 8:
        more rarely helps and costs memory). On a CPU the model's intra-op threads already use every core,
        so workers only compete with it (measured on 2 cores: freeze at 64 px fell from 498 to 424-449
        img/s with 1 or 2 workers); ``auto`` takes one worker per 8 cores, none below 8.
        """
        if self.num_workers != "auto":
            return int(self.num_workers)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if not self._on_gpu():
            return min(4, cores // 8)
        local = getattr(self.trainer, "num_devices", 1)
        return max(0, min(8, cores // max(1, local) - 1))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return self.loader(self.datasets[split], shuffle, self.workers())

    def loader(self, dataset: Dataset, shuffle: bool, num_workers: int) -> DataLoader:
        """Training: the (seed, epoch) shuffle; evaluation: every item once over all DDP ranks."""
        sampler: Sampler | None = None
        world = self.trainer.world_size if self.trainer is not None else 1
        if shuffle:
            sampler = EpochShuffle(len(dataset), self.seed, self._current_epoch)
            if world > 1:  # sharded here, as Lightning would, so loaders it cannot inspect are sharded too
                sampler = DistributedSamplerWrapper(
                    sampler, num_replicas=world, rank=self.trainer.global_rank, shuffle=False
                )
        elif world > 1:
            # Lightning's default DistributedSampler pads evaluation sets so every rank gets as many samples,
            # counting some images twice; this one gives each image to exactly one rank.
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=self.trainer.world_size, rank=self.trainer.global_rank, shuffle=False
            )
        gpu = self._on_gpu()
        # Persistent workers keep resumed runs exact: an item's augmentation is seeded from its
        # (seed, epoch, index) key, never from a worker's RNG stream, and the sampler runs in this process.
        return DataLoader(
            dataset,
            batch_size=self._per_rank_batch(),
            sampler=sampler,
            num_workers=num_workers,
            pin_memory=gpu if self.pin_memory is None else self.pin_memory,
            persistent_workers=num_workers > 0,
            prefetch_factor=(4 if gpu else 2) if num_workers > 0 else None,
        )

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.datasets:
            raise UserError(f"{self.name} has no test split")
        return self._loader("test", shuffle=False)
