"""Loaders: exact evaluation under DDP, and shuffling that depends only on (seed, epoch)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from translearn.data.shapes import ShapesDataModule


def shapes(**kwargs) -> ShapesDataModule:
    root = Path(os.environ["TRANSLEARN_DATA"]) / "shapes"
    dm = ShapesDataModule(root, image_size=32, batch_size=8, num_workers=0, **kwargs)
    dm.setup()
    return dm


def test_ddp_evaluation_sees_every_image_exactly_once() -> None:
    dm = shapes()
    dm.datasets["val"].samples = dm.datasets["val"].samples[:7]  # odd: a padding sampler would repeat one
    seen = []
    for rank in range(2):
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank, current_epoch=0)
        seen += list(iter(dm.val_dataloader().sampler))
    assert sorted(seen) == list(range(7))


def test_training_order_depends_only_on_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list:
        dm = shapes(seed=seed)
        dm.trainer = SimpleNamespace(world_size=1, global_rank=0, current_epoch=epoch)
        return list(iter(dm.train_dataloader().sampler))

    assert order(0, 3) == order(0, 3)
    assert order(0, 3) != order(0, 4) and order(0, 3) != order(1, 3)
    assert sorted(i for i, _ in order(0, 3)) == list(range(150))
    assert {e for _, e in order(0, 3)} == {3}


def test_augmentation_is_a_function_of_seed_epoch_and_index_and_leaves_global_rng_alone(monkeypatch) -> None:
    """Seeded per sample from (seed, epoch, index), without torch.manual_seed's device bookkeeping."""
    import torch

    dataset = shapes().datasets["train"]
    torch.manual_seed(1)
    first = dataset[(5, 2)][0]
    state = torch.get_rng_state()
    torch.manual_seed(999)  # another global state: the sample must not care
    calls = []
    monkeypatch.setattr(torch, "manual_seed", lambda *a: calls.append(a))
    again = dataset[(5, 2)][0]
    assert torch.equal(first, again) and not torch.equal(first, dataset[(5, 3)][0])
    assert calls == [], (
        "per-sample seeding must not go through torch.manual_seed (~1 ms a call in a deep stack)"
    )
    torch.set_rng_state(state)
    before = torch.get_rng_state()
    dataset[(6, 2)]
    assert torch.equal(before, torch.get_rng_state()), "a sample moved the global RNG"


def test_auto_workers_follow_the_cores_and_the_device(monkeypatch) -> None:
    from pytorch_lightning.accelerators import CPUAccelerator, CUDAAccelerator

    dm = shapes()
    dm.num_workers = "auto"
    for cores, accelerator, devices, expected in (
        (2, CPUAccelerator(), 1, 0),  # the model's threads use both cores; a worker would only compete
        (16, CPUAccelerator(), 1, 2),
        (16, CUDAAccelerator(), 2, 7),  # 8 cores per GPU process, one left for the process itself
        (96, CUDAAccelerator(), 1, 8),
    ):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)), raising=False)
        dm.trainer = SimpleNamespace(
            world_size=devices, global_rank=0, current_epoch=0, accelerator=accelerator, num_devices=devices
        )
        assert dm.workers() == expected, (cores, accelerator, devices)
    dm.trainer = SimpleNamespace(world_size=1, global_rank=0, current_epoch=0, accelerator=CPUAccelerator())
    dm.num_workers = 3
    loader = dm.train_dataloader()
    assert loader.num_workers == 3 and loader.persistent_workers and not loader.pin_memory


def test_persistent_workers_give_the_batches_of_a_single_process() -> None:
    """Augmentation is keyed by (seed, epoch, index), so workers, kept alive across epochs, change nothing."""
    import torch

    def batches(workers: int) -> list:
        dm = shapes(seed=3)
        dm.num_workers = workers
        state = SimpleNamespace(world_size=1, global_rank=0, current_epoch=0)
        dm.trainer = state
        loader = dm.train_dataloader()
        out = []
        for epoch in (0, 1):
            state.current_epoch = epoch
            out += [(x.clone(), y.clone()) for _, (x, y) in zip(range(3), loader, strict=False)]
        return out

    alone, pooled = batches(0), batches(2)
    assert len(alone) == len(pooled) == 6
    for (xa, ya), (xb, yb) in zip(alone, pooled, strict=True):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)
    assert not torch.equal(alone[0][0], alone[3][0])  # epochs differ


def test_ddp_training_shards_the_epoch_shuffle_between_ranks() -> None:
    """Sharded by the data module itself, so loaders Lightning cannot inspect (gradual's) are sharded too."""
    dm = shapes()
    shards = []
    for rank in range(2):
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank, current_epoch=4)
        shards.append(list(iter(dm.train_dataloader().sampler)))
    dm.trainer = SimpleNamespace(world_size=1, global_rank=0, current_epoch=4)
    whole = list(iter(dm.train_dataloader().sampler))
    assert len(shards[0]) == len(shards[1]) == 75
    assert not set(shards[0]) & set(shards[1]) and set(shards[0]) | set(shards[1]) == set(whole)
