"""The cheap look before the search: where the data pulls on the pretrained network, and what an epoch costs.

Relative gradient norms: the pretrained backbone with a fresh head for the user's classes, a few training
batches forward and backward, and per stage the mean over its tensors of ‖g‖/‖w‖ (Lee et al., ICLR 2023,
the signal behind ``strategy=auto_rgn``). A stage with a large relative gradient is one the data asks to
change. The same batches time a full forward and backward step, which prices an epoch of fine-tuning
before any cell has run; it is a snapshot of a shared machine, so every rung is re-priced on what its
cells took. (The linear probe, ``strategy=freeze`` for an epoch or two through the feature
cache, runs as a one-cell sweep like every rung: see ``translearn.advise.search``.)

Pitfalls:

* A tensor whose weights are all zero (a fresh BatchNorm bias) has no relative scale: it is left out of
  its stage's mean rather than dividing by zero, as AutoRGN does.
* The first batch pays for lazy initialisation (cuDNN autotune, allocator warm-up); the step time is the
  median of the later ones.
* Building the embedded weights or generating the embedded data happens once per machine: their seconds
  are timed apart so they do not inflate what every cell is charged.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from omegaconf import DictConfig

EVAL_SHARE = 0.35  # a validation batch (forward only, no grad) against a training step


@dataclass
class GradientProbe:
    """What the gradient probe measured."""

    stages: list[str]
    rgn: list[float]  # mean ‖g‖/‖w‖ per stage (1 = the stem), averaged over the batches
    head_rgn: float
    batches: int
    step_seconds: float  # one training batch: loading, forward and backward through every stage
    build_seconds: float  # the model and data of one cell, once weights and data exist
    once_seconds: float  # weights and data made once per machine (embedded pretraining, data generation)
    train_batches: int  # per epoch, trainer.limit_train_batches applied
    val_batches: int
    train_images: int
    num_classes: int
    device: str

    @property
    def relative(self) -> list[float]:
        """Each stage's RGN over the largest: AutoRGN's per-tensor LR scale, per stage."""
        top = max(self.rgn, default=0.0)
        return [r / top if top > 0 else 0.0 for r in self.rgn]

    def epoch_seconds(self) -> float:
        """A fine-tuning epoch, estimated: every training step, then validation at a forward's cost."""
        return self.step_seconds * (self.train_batches + EVAL_SHARE * self.val_batches)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "relative": self.relative}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradientProbe:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def relative_gradient_norms(groups: list[tuple[str, list[Any]]]) -> dict[str, float]:
    """Per group, the mean of ‖g‖/‖w‖ over its tensors that have a gradient and non-zero weights."""
    out: dict[str, float] = {}
    for name, params in groups:
        ratios = []
        for p in params:
            if p.grad is None:
                continue
            norm = float(p.detach().norm())
            if norm > 0:
                ratios.append(float(p.grad.detach().norm()) / norm)
        out[name] = statistics.fmean(ratios) if ratios else 0.0
    return out


def _batches_per_epoch(total: int, limit: Any) -> int:
    """Lightning's ``limit_*_batches``: an int caps the count, a float is a fraction of it."""
    if limit is None:
        return total
    if isinstance(limit, int) and not isinstance(limit, bool):
        return min(total, limit)
    return max(1, int(total * float(limit))) if float(limit) > 0 else 0


def measure_gradients(cfg: DictConfig, batches: int) -> GradientProbe:
    """Build the run's data and model as ``translearn.train`` would, with every stage trainable, and run
    ``batches`` training batches through it."""
    import pytorch_lightning as pl
    import torch

    from translearn.config import instantiate
    from translearn.pretrain import resolve_weights
    from translearn.strategies import Finetune
    from translearn.weights import parse_weights, preprocessing_for

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    start = time.perf_counter()
    choice = parse_weights(
        cfg.model.get("library", "torchvision"), cfg.model.backbone, str(cfg.model.weights)
    )
    datamodule = instantiate(cfg.dataset, _partial_=True)(preprocessing=preprocessing_for(choice))
    datamodule.prepare_data()
    weights = resolve_weights(cfg)  # embedded: pretrained once per machine, then read from the cache
    once = time.perf_counter() - start
    start = time.perf_counter()
    datamodule.setup("fit")
    model = instantiate(
        cfg.model, policy=Finetune(), weights=weights, num_classes=datamodule.num_classes,
        in_chans=datamodule.in_chans, class_names=datamodule.class_names,
        preprocessing=datamodule.preprocessing.as_dict(), color=datamodule.color,
        gray_mode=datamodule.gray_mode,
    )  # fmt: skip
    build = time.perf_counter() - start
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    device = torch.device("cuda" if torch.cuda.is_available() and accelerator != "cpu" else "cpu")
    net = model.net.to(device).train()
    criterion = torch.nn.CrossEntropyLoss()
    train_loader = datamodule.train_dataloader()
    sums: dict[str, float] = {}
    times: list[float] = []
    batches_in = iter(train_loader)
    while len(times) < batches:
        tick = time.perf_counter()  # loading counts: decoding and augmentation are part of every step
        try:
            x, y = next(batches_in)
        except StopIteration:
            break
        net.zero_grad(set_to_none=True)
        criterion(net(x.to(device)), y.to(device)).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tick)
        for name, value in relative_gradient_norms(list(net.named_groups())).items():
            sums[name] = sums.get(name, 0.0) + value
    seen = max(1, len(times))
    stages = [s.name for s in net.stages]
    step = statistics.median(times[1:] if len(times) > 1 else times or [0.0])
    return GradientProbe(
        stages=stages,
        rgn=[sums.get(name, 0.0) / seen for name in stages],
        head_rgn=sums.get("head", 0.0) / seen,
        batches=len(times),
        step_seconds=step,
        build_seconds=build,
        once_seconds=once,
        train_batches=_batches_per_epoch(len(train_loader), cfg.trainer.get("limit_train_batches")),
        val_batches=_batches_per_epoch(
            len(datamodule.val_dataloader()), cfg.trainer.get("limit_val_batches")
        ),
        train_images=datamodule.index.count("train"),
        num_classes=datamodule.num_classes,
        device=str(device),
    )
