"""The yardstick: a minimal PyTorch training loop of the kind a researcher writes in an afternoon.

It does what translearn does per step, and nothing else: ImageFolder, the same transforms, a DataLoader,
forward, backward, step, and a validation pass per epoch. ``bench.py`` runs it side by side with
translearn on the same folder and reports the ratio. Kept deliberately plain: no translearn imports.
"""

from __future__ import annotations

import time

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2


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
    model = torchvision.models.resnet18(num_classes=len(train.dataset.classes))
    if freeze:
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("fc.")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    train_seconds = val_seconds = 0.0
    images = 0
    for _ in range(epochs):
        model.train()
        if freeze:
            for name, m in model.named_modules():
                if name and not name.startswith("fc"):
                    m.eval()  # frozen BatchNorm keeps its statistics
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
