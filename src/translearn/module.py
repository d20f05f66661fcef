"""The LightningModule: a backbone, a freezing plan, the optimizer built from the plan's groups, metrics."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from translearn.backbones import build_backbone
from translearn.errors import UserError
from translearn.log import info_rank_zero
from translearn.optimization import DEFAULT_OPTIMIZER, base_value, optimizer_partial, scheduler_partial
from translearn.strategies import Finetune, FreezePlan, FreezePolicy


def _plain(value: Any) -> Any:
    """Hydra hands over DictConfigs; checkpoints must hold plain types to load with weights_only."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


class BalancedAccuracy(MulticlassConfusionMatrix):
    """The mean recall over the classes that have samples (sklearn's ``balanced_accuracy_score``).

    torchmetrics' macro accuracy also averages in a class that was only ever predicted, at recall 0: a
    validation split with one class 14/16 right and two stray predictions into absent classes read 0.29,
    not 0.875. Built on the confusion matrix, so it stays exact under DDP.
    """

    def compute(self) -> torch.Tensor:
        matrix = super().compute().double()
        support = matrix.sum(dim=1)
        present = support > 0
        return (matrix.diagonal()[present] / support[present]).mean().float()


def split_metrics(num_classes: int, prefix: str, top5: bool = True) -> MetricCollection:
    """Accuracy (micro, as in 2017), balanced accuracy (macro: the mean of per-class recalls, honest on
    imbalanced data such as Simpsons and Caltech256), and top-5 accuracy when there are more than 5 classes.
    """
    metrics = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "acc_macro": BalancedAccuracy(num_classes),
    }
    if top5 and num_classes > 5:
        metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
    return MetricCollection(metrics, prefix=prefix)


class TransferModule(pl.LightningModule):
    """A pretrained torchvision or timm backbone with a new head, trained under a freezing policy.

    ``optimizer`` and ``scheduler`` are the ``model.optimizer`` / ``model.scheduler`` configs: a torch class
    as a Hydra ``_target_`` with its arguments, e.g. ``{"_target_": "torch.optim.AdamW", "lr": 3e-4}``
    (``conf/model/optimizer/``, ``conf/model/scheduler/``). ``optimizer=None`` is SGD(lr=1e-3, momentum=0.9);
    ``scheduler=None`` (or ``{}``) keeps the LR constant. To reload a trained model without re-fetching
    pretrained weights: ``TransferModule.load_from_checkpoint(path, weights="none")``.

    ``class_names``, ``preprocessing`` (the eval transform, :meth:`Preprocessing.as_dict`), ``color`` and
    ``gray_mode`` describe the inputs; ``translearn.train`` passes the data module's, so a checkpoint is
    a usable model on its own (predict, eval, export read them from its hyperparameters).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        weights: str | None = "imagenet",
        library: str = "torchvision",
        num_classes: int = 2,
        in_chans: int = 3,
        class_names: list[str] | None = None,
        preprocessing: dict | None = None,
        color: str = "rgb",
        gray_mode: str = "replicate",
        policy: FreezePolicy | None = None,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        decay_norm_and_bias: bool = False,
        label_smoothing: float = 0.0,
        channels_last: bool | str = False,
        compile: bool | str = False,
    ):
        super().__init__()
        self.policy = policy or Finetune()
        self.save_hyperparameters(ignore=["policy"])
        # Plain dicts, checked only when fit builds them: an old checkpoint still loads for inference.
        self.hparams.optimizer = _plain(optimizer) or dict(DEFAULT_OPTIMIZER)
        self.hparams.scheduler = _plain(scheduler) or None  # {}: conf/model/scheduler/none.yaml
        self.hparams.strategy = self.policy.describe()
        self.net = build_backbone(backbone, num_classes, weights, in_chans, library=library)
        if preprocessing and preprocessing.get("crop"):
            check_input_size(self.net.model, backbone, in_chans, int(preprocessing["crop"]))
        # True/False now; "auto" once the Trainer says the device and precision (setup, before fit).
        self.channels_last = channels_last is True or channels_last == "true"
        self._channels_last_auto = channels_last == "auto"
        if self.channels_last:  # NHWC: what tensor cores want for convolutions under bf16/fp16
            self.net.to(memory_format=torch.channels_last)
        # Compiled once here; requires_grad never changes afterwards (gradual drops a waiting stage's
        # gradients instead), so the graph is not invalidated when a stage unfreezes. Kept out of the
        # module tree so checkpoints hold the plain net's names.
        backend = compile if isinstance(compile, str) and compile not in ("true", "false") else "inductor"
        enabled = compile not in (False, "false", None)
        object.__setattr__(self, "_compiled", torch.compile(self.net, backend=backend) if enabled else None)
        self.plan = FreezePlan(self.net, self.policy)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self._epoch = 0  # the epoch whose freezing state is in force

        # One collection per split, logged under "<split>/<name>"; top-5 only where it means something.
        self.train_metrics = split_metrics(num_classes, "train/", top5=False)
        self.val_metrics = split_metrics(num_classes, "val/")
        self.test_metrics = split_metrics(num_classes, "test/")
        # Weighted by batch size, exact under DDP.
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_confusion = MulticlassConfusionMatrix(num_classes)  # rows: true class; not logged
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        # The last validation epoch's confusion matrix and balanced accuracy, kept in the module's state so
        # that every checkpoint carries those of its own epoch: the best checkpoint then holds the best
        # epoch's, whatever callbacks.model_checkpoint.monitor is (translearn.rundir.best_validation).
        self.register_buffer(
            "val_confusion_at_epoch", torch.zeros(num_classes, num_classes, dtype=torch.long)
        )
        self.register_buffer("val_acc_macro_at_epoch", torch.tensor(float("nan")))
        # Persistent so that a resumed run still knows the best accuracy of the epochs before the cut.
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)
        # Born in epoch 0's modes (frozen BatchNorm in eval): Lightning's model summary reads the modes
        # before anything calls train(), and printed every module in train mode for a frozen run.
        self.train()

    # --- freezing ---------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> TransferModule:
        """Lightning calls ``train()`` after every validation loop; frozen BatchNorm must survive it."""
        super().train(mode)
        if mode and hasattr(self, "plan"):
            self.plan.apply_modes(self._epoch)
        return self

    def on_train_epoch_start(self) -> None:  # LRs are logged per stage by Lightning's LearningRateMonitor
        self._epoch = self.current_epoch
        self.train(self.training)

    def on_after_backward(self) -> None:
        # Here, not in on_before_optimizer_step: under 16-mixed Lightning unscales and checks for inf
        # between the two, and a gated stage's inf gradient would make the scaler skip the whole step.
        self.plan.gate_gradients(self.current_epoch)

    def setup(self, stage: str) -> None:
        if not self._channels_last_auto:
            return
        crop = int((self.hparams.preprocessing or {}).get("crop") or 0)
        device, was = self.trainer.strategy.root_device.type, self.channels_last
        self.channels_last = channels_last_pays(device, str(self.trainer.precision), crop)
        self.net.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        if self.channels_last and not was:  # said once, at fit (setup runs again for test)
            info_rank_zero(f"channels-last (NHWC) on: model.channels_last=auto on {device} at {crop} px")

    def on_fit_start(self) -> None:
        self.policy.check_epochs(self.trainer.max_epochs)
        trainable = sum(p.numel() for p in self.plan.trainable_parameters())
        total = sum(p.numel() for p in self.parameters())
        counts = {"params/trainable": trainable, "params/frozen": total - trainable, "params/total": total}
        for logger in self.loggers:
            logger.log_hyperparams(counts)
        info_rank_zero(f"{self.net.arch} stages: {self.plan.summary(self.current_epoch)}")
        info_rank_zero(f"parameters trainable {trainable:,} / frozen {total - trainable:,} / total {total:,}")

    def on_train_start(self) -> None:
        if self.current_epoch == 0:
            self.val_acc_best.reset()  # forget the sanity-check batches

    @property
    def example_input_array(self) -> torch.Tensor | None:
        """One input of what ``forward`` reads: Lightning's model summary runs it to count FLOPs.

        Without it the summary printed "Total FLOPs: 0". An eval-size image, or a stored feature when
        the run trains on the feature cache (the FLOPs are then the head's, what each step really runs).
        None for a compiled net: a batch of one would compile it for a shape training never uses.
        """
        if self._example_input_array is not None:
            return self._example_input_array
        if self._compiled is not None:
            return None
        shape = getattr(self, "_cached_shape", None)
        if shape is None:
            crop = (self.hparams.preprocessing or {}).get("crop")
            shape = (self.hparams.in_chans, crop, crop) if crop else None
        return None if shape is None else torch.zeros(1, *shape)

    @example_input_array.setter
    def example_input_array(self, example: torch.Tensor | None) -> None:
        self._example_input_array = example

    # --- steps ------------------------------------------------------------------------------------

    def use_cached_features(
        self, k: int, until: float = float("inf"), shape: tuple[int, ...] | None = None
    ) -> None:
        """Batches hold the first k stages' stored output (translearn.features): run only the rest.

        ``until``: gradual unfreezing reads stored head inputs only before its first unfreeze; training
        and validation of later epochs, and testing, read images and run the whole net. ``shape``: one
        stored feature's (the summary's example input).
        """
        from translearn.features import SkipFrozen

        self._cached_stages, self._cached_until, self._cached_shape = k, until, shape
        if 0 < k < self.net.num_stages:
            SkipFrozen(self.net, k).apply()

    def _reads_features(self) -> bool:
        k = getattr(self, "_cached_stages", 0)
        if k != self.net.num_stages:
            return False
        if self._cached_until == float("inf"):
            return True
        trainer = self._trainer
        return trainer is not None and not trainer.testing and trainer.current_epoch < self._cached_until

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._reads_features():
            return self.net.head(x)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return (self.net if self._compiled is None else self._compiled)(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        """The one step of every split: forward, loss, metric updates.

        Epoch values are logged once, at the epoch's end (``_log_epoch``): each ``self.log`` call costs
        about a millisecond of Lightning bookkeeping, and three a step were 5% of a frozen run's training
        time (issue 8's profile). The step loss is logged only when something reads it.
        """
        x, y = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        getattr(self, f"{split}_metrics").update(logits, y)
        getattr(self, f"{split}_loss").update(loss.detach(), weight=len(y))
        if split != "train":
            getattr(self, f"{split}_confusion").update(logits, y)
        elif self._step_loss_wanted():
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _step_loss_wanted(self) -> bool:
        """True when a progress bar shows the step loss or a logger writes this step (log_every_n_steps)."""
        trainer = self._trainer
        if trainer is None:
            return False
        bar = trainer.progress_bar_callback
        if bar is not None and bar.is_enabled:
            return True
        # Lightning's own decision of whether loggers write this step's values.
        return bool(trainer.loggers) and getattr(trainer._logger_connector, "should_update_logs", True)

    def _log_epoch(self, split: str) -> None:
        """Epoch means of the loss and the metrics: torchmetrics objects, reduced over DDP ranks."""
        bar = split != "test"
        name = f"{split}/loss" + ("_epoch" if split == "train" else "")
        self.log(name, getattr(self, f"{split}_loss"), on_step=False, on_epoch=True, prog_bar=bar)
        self.log_dict(getattr(self, f"{split}_metrics"), on_step=False, on_epoch=True, prog_bar=bar)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int = 0, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities (softmax, float32) of images, ``(images, labels)`` or ``(images, paths)``.

        Whatever rides along with the images is left in the batch for the caller (a prediction writer gets
        the batch in ``on_predict_batch_end``), so any of the project's loaders can be predicted on as is.
        """
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if x.shape[0] == 0:  # every file of the batch was unreadable (translearn.data.files)
            return torch.zeros(0, self.hparams.num_classes, device=self.device)
        return torch.softmax(self(x).float(), dim=1)

    def on_validation_epoch_start(self) -> None:
        self.val_confusion.reset()

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        if self.trainer.sanity_checking:
            return
        self.val_confusion_at_epoch.copy_(self.val_confusion.compute())
        self.val_acc_macro_at_epoch.fill_(self.val_metrics["acc_macro"].compute())
        self.val_acc_best(self.val_metrics["acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    # --- optimisation -----------------------------------------------------------------------------

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        """Auto-RGN scales each tensor's LR between backward and the update, then restores the schedule."""
        if not getattr(self.policy, "per_tensor_groups", False):
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        from translearn.strategies import AutoRGN

        chosen: dict[str, float] = {}

        def closure() -> Any:  # the optimizer calls it first: forward, backward, gradient gate
            loss = optimizer_closure()
            chosen.update(AutoRGN.scale(optimizer))
            return loss

        optimizer.step(closure=closure)
        AutoRGN.restore(optimizer)
        for stage, scale in chosen.items():  # which layers it chose to move: one curve per stage
            self.log(f"rgn/{stage}", scale, on_step=False, on_epoch=True)
        return None

    def configure_optimizers(self) -> dict[str, Any]:
        """The partial torch optimizer called on the plan's groups (one per stage: lr × multiplier)."""
        make = optimizer_partial(self.hparams.optimizer)
        groups = self.plan.param_groups(
            lr=base_value(make, "lr", 1e-3),
            weight_decay=base_value(make, "weight_decay", 0.0),
            decay_norm_and_bias=self.hparams.decay_norm_and_bias,
        )
        optimizer = make(groups)
        schedule = scheduler_partial(self.hparams.scheduler)
        if schedule is None:
            return {"optimizer": optimizer}
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": schedule(optimizer=optimizer), "interval": "epoch"},
        }


def channels_last_pays(device: str, precision: str, crop: int) -> bool:
    """Where ``model.channels_last=auto`` turns NHWC on: where it was measured faster (issue 8).

    GPUs under 16/bf16: tensor cores run convolutions in NHWC. CPUs from 128 px: oneDNN trained, on 2
    cores at 224 px, ResNet18 1.2x faster (freeze 1.3x), ResNet50 1.17x, MobileNetV3 1.55x,
    EfficientNet-B0 1.23x, DenseNet121 1.08x, ConvNeXt-T 1.02x, and at 128 px 1.1-1.4x; at 64 px ResNet18
    ran 0.91x (the offline default's size), so small crops stay in NCHW, except under bf16 (AMX): ResNet18
    finetune at 64 px under bf16-mixed ran 1.07-1.08x faster in NHWC than in NCHW. The results differ only by
    float rounding.
    """
    if device == "cuda":
        return precision.startswith(("16", "bf16"))
    return device == "cpu" and (crop >= 128 or precision.startswith("bf16"))


def precision_hint(device: str, precision: str) -> str | None:
    """The line that tells an fp32 run on a CPU with bf16 matrix units (AMX) what bf16-mixed would save.

    Said, not switched on: the precision changes the numbers a study reports, so it is the user's choice.
    Measured side by side on 2 cores of such a CPU (issue 8): translearn ResNet18 under bf16-mixed trained
    2.4-2.9x faster at 224 px (freeze without the cache, finetune) and 1.27x at 64 px
    (benchmarks/RESULTS-bf16-cpu.md).
    """
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, hence guarded: torch 2.1+
    if device != "cpu" or not precision.startswith("32") or amx is None or not amx():
        return None
    return (
        "this CPU has bf16 matrix units (AMX): trainer.precision=bf16-mixed trained ResNet18 2.4-2.9x faster "
        "at 224 px and 1.3x at 64 px on such a CPU, with results that differ by bf16 rounding"
    )


def check_input_size(net: nn.Module, arch: str, in_chans: int, crop: int) -> None:
    """A network that cannot take ``crop`` px images (ViT and MaxViT take one size, Inception at least 75 px)
    is a one-line error here, not a traceback from inside the cache build or the first step.

    Run on the meta device: the parameters are swapped for meta tensors, so the forward only works out
    shapes (no memory, no arithmetic). An op without a meta kernel leaves the check to the real run.
    """
    meta = {k: torch.empty_like(v, device="meta") for k, v in net.state_dict(keep_vars=True).items()}
    x = torch.empty(1, in_chans, crop, crop, device="meta")
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            torch.func.functional_call(net, meta, (x,), strict=False)
    except NotImplementedError:
        return
    except Exception as exc:  # the shape checks of torch's ops and the models' own asserts
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(
            f"{arch} cannot run on {crop}x{crop} px images ({reason[:200]}); set dataset.image_size to a "
            "size it takes (ViT and MaxViT: the size of their weights, 224 for ImageNet ones)"
        ) from None
    finally:
        net.train(was_training)
