"""The yardsticks: a minimal PyTorch training loop, and the same loop inside a bare Lightning Trainer.

``plain_loop`` is what a researcher writes in an afternoon: ImageFolder, the same transforms, a DataLoader,
forward, backward, step, and a validation pass per epoch. ``lightning_loop`` runs that very model and those
loaders in a LightningModule with no callbacks, logger, checkpoints or metrics: the floor of any product
built on Lightning's loop. ``bench.py`` runs them side by side with translearn on the same folder and
reports the ratios. Kept deliberately plain: no translearn imports.
"""

from __future__ import annotations

import time
import warnings

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2


def _loaders(
    train_dir: str, val_dir: str, image_size: int, batch_size: int, workers: int
) -> tuple[DataLoader, DataLoader]:
    norm = [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ]
    resize = round(image_size * 256 / 224)
    train_tf = v2.Compose(
        [
            v2.Resize(resize),
            v2.RandomResizedCrop(image_size, scale=(0.35, 1.0)),
            v2.RandomHorizontalFlip(),
            *norm,
        ]
    )
    val_tf = v2.Compose([v2.Resize(resize), v2.CenterCrop(image_size), *norm])
    train = DataLoader(
        torchvision.datasets.ImageFolder(train_dir, train_tf), batch_size, shuffle=True, num_workers=workers
    )
    val = DataLoader(torchvision.datasets.ImageFolder(val_dir, val_tf), batch_size, num_workers=workers)
    return train, val


def _model(num_classes: int, freeze: bool) -> nn.Module:
    model = torchvision.models.resnet18(num_classes=num_classes)
    if freeze:
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("fc.")
    return model


def _train_mode(model: nn.Module, freeze: bool) -> None:
    model.train()
    if freeze:
        for name, m in model.named_modules():
            if name and not name.startswith("fc"):
                m.eval()  # frozen BatchNorm keeps its statistics


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)


def plain_loop(
    train_dir: str,
    val_dir: str,
    image_size: int,
    epochs: int,
    batch_size: int,
    freeze: bool,
    workers: int = 0,
    limit_batches: int | None = None,
) -> dict[str, float]:
    """Train ResNet18 from scratch (finetune) or its head only (freeze); returns seconds and images."""
    torch.manual_seed(0)
    train, val = _loaders(train_dir, val_dir, image_size, batch_size, workers)
    model = _model(len(train.dataset.classes), freeze)
    opt = _optimizer(model)
    loss_fn = nn.CrossEntropyLoss()
    train_seconds = val_seconds = 0.0
    images = 0
    for _ in range(epochs):
        _train_mode(model, freeze)
        start = time.perf_counter()
        for i, (x, y) in enumerate(train):
            if limit_batches is not None and i >= limit_batches:
                break
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            images += len(y)
        train_seconds += time.perf_counter() - start
        start = time.perf_counter()
        model.eval()
        correct = 0
        with torch.no_grad():
            for i, (x, y) in enumerate(val):
                if limit_batches is not None and i >= limit_batches:
                    break
                correct += int((model(x).argmax(1) == y).sum())
        val_seconds += time.perf_counter() - start
    return {
        "train_seconds": train_seconds,
        "val_seconds": val_seconds,
        "train_img_per_s": images / train_seconds,
    }


def lightning_loop(
    train_dir: str,
    val_dir: str,
    image_size: int,
    epochs: int,
    batch_size: int,
    freeze: bool,
    workers: int = 0,
    limit_batches: int | None = None,
) -> dict[str, float]:
    """``plain_loop``'s model, loaders and optimizer in a bare LightningModule and Trainer."""
    import pytorch_lightning as pl

    torch.manual_seed(0)
    train, val = _loaders(train_dir, val_dir, image_size, batch_size, workers)

    class Bare(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = _model(len(train.dataset.classes), freeze)
            self.train_seconds, self.images, self._since = 0.0, 0, 0.0

        def on_train_epoch_start(self) -> None:
            _train_mode(self.model, freeze)
            self._since = time.perf_counter()

        def training_step(self, batch, batch_idx):
            x, y = batch
            self.images += len(y)
            return nn.functional.cross_entropy(self.model(x), y)

        def on_validation_start(self) -> None:  # validation excluded, as in the plain loop
            self.train_seconds += time.perf_counter() - self._since

        def validation_step(self, batch, batch_idx) -> None:
            x, y = batch
            (self.model(x).argmax(1) == y).sum()

        def configure_optimizers(self):
            return _optimizer(self.model)

    module = Bare()
    limits = (
        {}
        if limit_batches is None
        else {"limit_train_batches": limit_batches, "limit_val_batches": limit_batches}
    )
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **limits,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "consider more workers" and the like: the same loaders as plain
        trainer.fit(module, train, val)
    return {"train_seconds": module.train_seconds, "train_img_per_s": module.images / module.train_seconds}
