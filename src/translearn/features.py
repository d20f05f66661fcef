"""The frozen-feature cache (``strategy.cache_features``): a frozen backbone runs once per image.

In 2017 ``freeze`` took exactly as long as ``finetune``: every epoch re-ran the frozen backbone to train
one linear layer. When everything below the head is frozen and deterministic, its output for an image
never changes, so translearn computes it once, stores it, and trains the head on the stored tensors.

When it is exact, and what ``auto`` does:

* Only the head trains (``freeze``, or ``first_k`` with k = all stages) with ``bn=frozen``: BatchNorm in
  eval mode, so the frozen part is a fixed function. ``bn=train`` adapts running statistics batch by
  batch, and ``finetune`` changes the backbone, so neither can be cached (``true`` there is an error).
* Nothing random runs below the head during training: no dropout or drop-path with p > 0 outside the
  frozen stages (which run in eval mode).
* The model's output is its head applied to the cached input (SqueezeNet pools after its head: not cached).
  This is checked on a real batch before the cache is trusted.
* ``gradual`` trains only its head until its first unfreeze: those epochs read stored features, and
  the run switches to images at the first unfreeze (``auto`` does this when the head-only phase lasts at
  least two epochs; one cached epoch would cost what it saves).
* ``auto`` turns the cache on exactly where these hold, and says so at startup.

Augmentation: a random crop changes the features, so a cache cannot serve fresh random crops. With
``strategy.cache_views=1`` (default) training images are seen through the *eval* transform (resize +
centre crop), which trades augmentation for a run that costs one backbone pass; with ``cache_views=V`` each
training image is stored in V augmented views, drawn with the same (seed, epoch, index) seeding as the
uncached path, and epoch e trains on view e mod V: with V >= epochs the cached run sees exactly the crops the
uncached run would. Validation and test use the eval transform, so they are cached exactly.

The cache key covers everything that changes the features: backbone and library, the frozen tensors
themselves (a hash), the transforms, colour mode, the image files (path, size, mtime), the views, and the
autocast dtype of the run's precision (the build infers under it, as the uncached forward does:
``bf16-mixed`` features are bf16's, and the head then trains exactly as uncached). Anything else gets its
own folder under ``${paths.cache_dir}/features``; a folder without its ``meta.json`` (written last) or
with unreadable arrays is rebuilt with a warning. Files are memory-mapped ``.npy``
(``strategy.cache_dtype=float16`` halves them), shared by the cells of a sweep, and built once under a
file lock.

Images seen through the eval transform are stored one row per file (``images.npy``, files in sorted
order), whatever split they fall in, and each split finds its rows by path when a run starts; labels come
from the run's index. So with one view the seed and the split are not in the key: the cells of a seed
sweep (``seed=0,1,2``, which also redraws a ``split=random``) share one build instead of one each. With V
augmented views the training split's views (``train-<v>.npy``, in the split's order) depend on the seed
and on which files are training files, so then both are in the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.data import DataLoader, Dataset

from translearn.data.base import SPLITS, ImageDataModule, ImageFileDataset
from translearn.data.images import DECODE_VERSION
from translearn.errors import UserError
from translearn.log import log
from translearn.progress import bar
from translearn.storage import (
    build_once,
    disk_full,
    file_stats,
    no_space,
    open_npy,
    remove_stale,
    write_sources,
)

# 2: stored tensors are what the stage returned, before any later in-place op; 3: folded BN; 4: one row per
# file for the eval transform, whatever its split (the split and, with one view, the seed left the key)
VERSION = 4
MODES = ("auto", "true", "false")
DTYPES = ("float32", "float16")


def parse_mode(value: Any) -> str:
    mode = str(value).lower()
    if mode not in MODES:
        raise UserError(f"strategy.cache_features must be auto, true or false, got '{value}'")
    return mode


def check_settings(mode: Any, views: Any, dtype: Any) -> str:
    """The three ``strategy.cache_*`` keys; returns the mode.

    Called where the command line is checked (``translearn.config.check_values``), so a bad value is one
    line before any cell or Trainer starts, and by :func:`maybe_cache` for configs built in Python.
    """
    mode = parse_mode(mode)
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise UserError(f"strategy.cache_views must be >= 1 (a whole number of views), got {views}")
    if dtype not in DTYPES:
        raise UserError(f"strategy.cache_dtype must be float32 or float16, got '{dtype}'")
    return mode


def inexact(reason: str) -> UserError:
    """The one line for ``strategy.cache_features=true`` where caching would change what trains."""
    return UserError(
        f"strategy.cache_features=true but caching would not be exact: {reason}; use auto or false"
    )


def frozen_prefix(plan: Any, mode: str = "auto") -> tuple[int, float, str | None]:
    """(k, until, None) when the first k stages are a fixed function until epoch ``until``; else a reason.

    Derived from the plan's unfreeze epochs, not from the policy's name: ``until`` is infinite when the
    first k stages never train (freeze, first_k); when every stage waits for a later epoch (gradual), only
    the head trains before the first unfreeze and ``until`` is that epoch. ``auto`` caches such a
    head-only phase only when it lasts two epochs or more: building the cache costs about one uncached
    epoch, so a single cached epoch saves nothing.
    """
    net = plan.net
    policy, never = plan.policy.name, float("inf")
    k = 0
    while k < net.num_stages and plan.unfreeze[k] == never:
        k += 1
    first = min(plan.unfreeze[: net.num_stages])  # the first epoch any stage trains
    until = never
    if k == 0 and 1 <= first < never:  # a head-only phase, then stages unfreeze
        if first < 2 and mode == "auto":
            return (
                0,
                never,
                f"strategy={policy} unfreezes its first stage at epoch 1; caching one head-only epoch costs "
                "as much as it saves (strategy.cache_features=true caches it anyway)",
            )
        k, until = net.num_stages, first
    if k == 0:
        what = "the stem" if plan.unfreeze[0] == 0 else "a stage from epoch 0"
        return 0, never, f"strategy={policy} trains {what}, so no frozen part comes first"
    if plan.policy.bn != "frozen":
        return (
            0,
            never,
            "strategy.bn=train adapts BatchNorm statistics on every batch, so the frozen part is not fixed",
        )
    if k == net.num_stages:  # head-only: nothing random may run between the frozen stages and the head
        head = net.head
        for name, sub in net.model.named_modules():
            p = getattr(sub, "p", getattr(sub, "drop_prob", 0.0))
            random_layer = isinstance(sub, nn.modules.dropout._DropoutNd) or type(sub).__name__ == "DropPath"
            if random_layer and p and not _in_frozen_stage(net, name) and sub is not head:
                return (
                    0,
                    never,
                    f"{name} ({type(sub).__name__}, p={p}) is random in training, outside the frozen stages",
                )
    return k, until, None


def _in_frozen_stage(net: Any, name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for stage in net.stages for m in stage.modules)


class _Recorder:
    """Records the cached tensor during a forward pass: the head's input, or the k-th stage's output.

    With ``cut`` set, it ends the forward pass right there (by raising :class:`_Cut`): the layers above
    the cut do not run for nothing (first_k k=4 at 224 px: a 10% shorter build). ``calls`` counts how
    often the recorded module ran in one pass; only once is a clean cut.
    """

    def __init__(self, net: Any, k: int):
        self.value: torch.Tensor | None = None
        self.cut, self.calls = False, 0
        if k == net.num_stages:
            self.handle = net.head.register_forward_pre_hook(self._input)
        else:
            last = net.model.get_submodule(net.stages[k - 1].modules[-1])
            self.handle = last.register_forward_hook(self._output)

    def _record(self, value: torch.Tensor) -> None:
        self.calls += 1
        if self.cut:
            self.value = value
            raise _Cut
        # A copy: the rest of a whole pass may change the tensor in place (ResNet's stem ends at bn1, and
        # an in-place ReLU follows), and the store holds what the stage returned, as a cut pass does.
        self.value = value.clone()

    def _input(self, _module: nn.Module, args: tuple) -> None:
        self._record(args[0])

    def _output(self, _module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
        self._record(output)

    def close(self) -> None:
        self.handle.remove()


class _Cut(Exception):
    """Raised by the recorder to end a forward pass once the cached tensor is recorded."""


class SkipFrozen:
    """Makes the first k stages pass their input through, so the net runs from stored stage-k features.

    The modules keep their parameters (checkpoints hold the whole net); only their ``forward`` is replaced
    on the instance, and :meth:`restore` puts it back.
    """

    def __init__(self, net: Any, k: int):
        self.modules = [net.model.get_submodule(m) for i in range(k) for m in net.stages[i].modules]

    def apply(self) -> None:
        for module in self.modules:
            module.forward = _passthrough

    def restore(self) -> None:
        for module in self.modules:
            module.__dict__.pop("forward", None)


def _passthrough(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return x


@torch.no_grad()  # not inference_mode: the replay check runs in-place ops (ReLU) on these tensors
def _frozen_outputs(
    net: Any, k: int, loader: DataLoader, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(cached tensor, model output) per batch, with the whole net in eval mode, in the net's layout.

    Only the first batch runs the whole net (its output checks the cut, :func:`_check_replay`); later
    batches stop at the cut and yield ``None`` for the output.
    """
    recorder = _Recorder(net, k)
    layout = torch.channels_last if _is_channels_last(net) else torch.contiguous_format
    try:
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            x = x.contiguous(memory_format=layout) if x.dim() == 4 else x
            recorder.calls = 0
            try:
                logits = net(x)
            except _Cut:
                logits = None
            yield recorder.value, logits
            # A module run twice in one pass cannot be cut there: every pass then runs whole.
            recorder.cut = recorder.calls == 1
    finally:
        recorder.close()


def _is_channels_last(net: nn.Module) -> bool:
    return any(
        p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
        for p in net.parameters()
    )


class _Layout(NamedTuple):
    """Which images a cache stores, and where: its key and its build both read this."""

    images: list[tuple[str, int, int]]  # (path, size, mtime), sorted: one row each of images.npy (eval view)
    train: list[tuple[str, int, int]]  # with V > 1 views: the training split's files, in its order

    @property
    def sources(self) -> list[tuple[str, int, int]]:
        """Every file once, for ``sources.json``."""
        return sorted(set(self.images) | set(self.train))


def _layout(datamodule: ImageDataModule, views: int) -> _Layout:
    """One stat per file (20k files on a network disk are seconds each time): the key and ``sources.json``
    both read these rows, so a file that changes during the build cannot be recorded otherwise than keyed.

    With one view every split is seen through the eval transform, so every file is an ``images`` row; with
    V views the training files are stored as views instead, unless a file is in an eval split too.
    """
    samples = datamodule.index.samples
    train = [str(path) for path, _ in samples.get("train", [])] if views > 1 else []
    images = {str(path) for s in SPLITS if views == 1 or s != "train" for path, _ in samples.get(s, [])}
    stats = {row[0]: row for row in file_stats(sorted(images | set(train)))}
    return _Layout([stats[path] for path in sorted(images)], [stats[path] for path in train])


def _fingerprint(
    net: Any, k: int, datamodule: ImageDataModule, views: int, dtype: str, autocast: torch.dtype | None,
    layout: _Layout,
) -> str:  # fmt: skip
    """A hash of everything that changes the stored features (see the module docstring)."""
    digest = hashlib.sha256()
    frozen = {m for i in range(k) for m in net.stages[i].modules}
    frozen_params = {p for i in range(k) for p in net.stages[i].params}
    for key, tensor in net.model.state_dict().items():  # the frozen stages' tensors, buffers included
        if key in frozen_params or any(key.startswith(m + ".") for m in frozen):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    recipe = {
        "version": VERSION,
        "decode": DECODE_VERSION,  # how files become pixels (EXIF orientation, ...)
        "library": net.library,
        "arch": net.arch,
        "head": net.head_name,
        "frozen_stages": [net.stages[i].name for i in range(k)],
        "in_chans": net.in_chans,
        "preprocessing": datamodule.preprocessing.as_dict(),
        "color": datamodule.color,
        "gray_mode": datamodule.gray_mode,
        "views": views,
        "dtype": dtype,
        "images": layout.images,
        "autocast": str(autocast) if autocast is not None else None,
    }
    if views > 1:  # augmented views: seeded by (seed, epoch, index in the training split)
        recipe.update(
            seed=datamodule.seed,
            train=layout.train,
            crop_scale=list(datamodule.crop_scale),
            crop_ratio=list(datamodule.crop_ratio),
            hflip=datamodule.hflip,
        )
    digest.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


class _Views(Dataset):
    """Training images in augmented view ``v``: the crop the uncached path draws in epoch ``v``."""

    def __init__(self, dataset: ImageFileDataset, view: int):
        self.dataset, self.view = dataset, view

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[(index, self.view)]


def _eval_view(datamodule: ImageDataModule, dataset: ImageFileDataset) -> ImageFileDataset:
    """The training images through the eval transform (resize and centre crop: one cached view)."""
    return ImageFileDataset(dataset.samples, datamodule.transform(train=False), seed=dataset.seed)


def _rows(dataset: Dataset, row_of: dict[str, int]) -> np.ndarray:
    """The ``images.npy`` row of each of a split's items, in the split's order (rows are per file)."""
    return np.array([row_of[str(path)] for path, _ in dataset.samples], dtype=np.int64)


def build_cache(
    net: Any, k: int, datamodule: ImageDataModule, folder: Path, views: int, dtype: str, device: torch.device,
    precision: str = "32-true",
) -> Path:  # fmt: skip
    """Compute and store the first k stages' output for every image under ``folder/<key>``."""
    reduced = autocast_dtype(precision)
    stored = _layout(datamodule, views)
    key = _fingerprint(net, k, datamodule, views, dtype, reduced, stored)

    def build(partial: Path) -> None:
        # Every module's own mode, not net.training alone: frozen BatchNorm is in eval mode while the rest
        # trains, and a net.train() after the build would put it back in train mode (the model summary
        # then counted every module in train mode).
        modes = [(m, m.training) for m in net.modules()]
        rows = len(stored.images) + views * len(stored.train)
        own = torch.channels_last if _is_channels_last(net) else torch.contiguous_format
        # Inference in channels-last (NHWC) from 112 px up: ResNet18 on a CPU (oneDNN) ran 1.15x faster at
        # 112-160 px and 1.4x at 224 px, but 10% slower at 64 px (issue 8's measurements). Equal to the
        # default layout up to float rounding.
        layout = torch.channels_last if datamodule.preprocessing.crop >= 112 else own
        # Said before, not only after: at 224 px on a CPU a 30k-image dataset is minutes of silence.
        log.info(f"building the feature cache once: {rows} images through the frozen stages into {folder}")
        try:
            # The folded copy is what moves; the net itself where it cannot be folded or under mixed
            # precision (it is then the inference net, and the finally below puts it back). Under mixed
            # precision the BatchNorms stay: folded into bf16 weights they would round otherwise than the
            # uncached path, whose frozen stages the cache stands in for.
            inference = net.eval() if reduced is not None else fold_batchnorm(net.eval())
            inference = inference.to(device, memory_format=layout)
            arrays = _Arrays(partial, dtype, rows)
            row_of = {path: row for row, (path, _, _) in enumerate(stored.images)}
            with (
                bar(rows, "feature cache", "img", min_total=200) as shown,
                torch.autocast(device.type, dtype=reduced or torch.float32, enabled=reduced is not None),
            ):
                for split, dataset in datamodule.datasets.items():
                    if split == "train" and views > 1:
                        for v in range(views):
                            store = (f"train-{v}", len(dataset), None)
                            _store(inference, k, datamodule, _Views(dataset, v), store, arrays, device, shown)
                    else:  # eval transform: the split's rows of images.npy
                        source = _eval_view(datamodule, dataset) if split == "train" else dataset
                        store = ("images", len(stored.images), _rows(dataset, row_of))
                        _store(inference, k, datamodule, source, store, arrays, device, shown)
            meta = {
                "version": VERSION, "key": key, "views": views, "dtype": dtype, "arrays": arrays.close(),
                "images": [path for path, _, _ in stored.images],
            }  # fmt: skip
            write_sources(partial, stored.sources)  # so a later build can tell when this one is dead
            (partial / "meta.json").write_text(json.dumps(meta, indent=1))  # last: marks the cache complete
            remove_stale(folder, key, "feature cache", version=VERSION)
        finally:
            net.to("cpu", memory_format=own)
            for module, mode in modes:
                module.training = mode

    return build_once(folder, key, _readable, build, "feature cache")


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The dtype the run's forward passes autocast to, which the build then infers in too.

    Why: the cache stands in for the frozen stages as the uncached run computes them, and under
    ``bf16-mixed`` that is in bf16. An fp32 build trained the head on other numbers (weights 1.3e-4 apart,
    another val accuracy) and cost what it saved: freeze at 224 px, 10 epochs, bf16-mixed on a 2-core CPU
    with AMX, cached ÷ uncached was 5.3x with an fp32 build and 11.1x with a bf16 one (issue 8).
    ``*-true`` runs convert the net itself; the build approximates them by autocast.
    Lightning's ``MixedPrecision.forward_context()`` autocasts to these same dtypes (bf16 for ``bf16-mixed``,
    fp16 for ``16-mixed``); it is not called here because the cache key needs the dtype itself, and the
    ``*-true`` plugins convert the module only once fit starts, after the build.
    """
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return None


def fold_batchnorm(net: Any) -> Any:
    """A copy of ``net`` in which every eval-mode BatchNorm fed by a conv alone is folded into that conv.

    Why: the build only infers, and a folded conv spares BatchNorm's own pass over each activation map
    (ResNet18 at 224 px, channels-last, on a 2-core CPU: 68.5 → 76.5 img/s; issue 8). The copy keeps the
    module tree, with the folded conv in the conv's place and an Identity in the BatchNorm's, so the
    recorder's hooks and the replay check run on it as on the original; torch.fx only finds which conv
    feeds which BatchNorm (torch's own ``fuse_conv_bn_eval`` does the arithmetic). The outputs equal the
    original's up to float rounding. A net that fx cannot trace is returned as it is.
    """
    try:
        graph = fx.symbolic_trace(net.model).graph
    except Exception:  # data-dependent control flow and the like: no folding, same results
        return net
    modules = dict(net.model.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not (isinstance(source, fx.Node) and source.op == "call_module"):
            continue
        conv, bn = modules[source.target], modules[node.target]
        if (
            isinstance(conv, nn.Conv2d)
            and not (conv.training or bn.training)
            and bn.track_running_stats
            and len(source.users) == 1  # nothing else reads the conv's own output
            and calls[source.target] == calls[node.target] == 1  # neither module is shared
        ):
            pairs.append((source.target, node.target))
    if not pairs:
        return net
    folded = copy.deepcopy(net)
    for conv_name, bn_name in pairs:
        conv, bn = folded.model.get_submodule(conv_name), folded.model.get_submodule(bn_name)
        folded.model.set_submodule(conv_name, fuse_conv_bn_eval(conv, bn))
        folded.model.set_submodule(bn_name, nn.Identity())
    return folded


def build_batch(batch_size: int, crop: int, device: torch.device) -> int:
    """The batch the build infers in: the training batch, on a CPU at most ~400 K pixels an input channel.

    Why: oneDNN keeps small NHWC activations in cache. On 2 cores at 224 px, batch 8 ran ResNet18 at
    11.6 ms an image against 12.1 at 32, and ResNet50 at 26.1 against 32.0; at 64-112 px larger batches
    were faster (issue 8). 32 images at 112 px, 8 at 224. The features do not depend on the batch (the
    frozen part runs in eval mode), only their float rounding may. GPUs keep the training batch.
    """
    if device.type != "cpu":
        return batch_size
    return max(1, min(batch_size, 32 * 112 * 112 // (crop * crop)))


class _Arrays:
    """The cache's ``.npy`` files, each created (its space reserved) when its first batch arrives: only
    then is a feature's shape known."""

    def __init__(self, partial: Path, dtype: str, rows: int):
        self.partial, self.dtype, self.rows = partial, dtype, rows
        self.open: dict[str, np.ndarray] = {}

    def write(self, name: str, length: int, where: slice | np.ndarray, feats: torch.Tensor) -> None:
        array = self.open.get(name)
        if array is None:
            try:  # space reserved up front: a full disk is this error, not SIGBUS in a later write
                array = open_npy(self.partial / f"{name}.npy", self.dtype, (length, *feats.shape[1:]))
            except OSError as exc:
                if not disk_full(exc):
                    raise
                needs = self.rows * feats[0].numel() * np.dtype(self.dtype).itemsize
                raise no_space("feature cache", self.partial.parent, exc, needs) from None
            self.open[name] = array
        array[where] = feats.float().cpu().numpy().astype(self.dtype)

    def close(self) -> dict[str, list[int]]:
        """Flushes every file; returns each one's shape, by name, for ``meta.json``."""
        for array in self.open.values():
            array.flush()
        return {name: list(array.shape) for name, array in self.open.items()}


def _store(
    net: Any, k: int, datamodule: ImageDataModule, source: Dataset,
    store: tuple[str, int, np.ndarray | None], arrays: _Arrays, device: torch.device, shown: Any = None,
) -> None:  # fmt: skip
    """Run ``source`` through the frozen stages into ``store``: (file, its rows, the row of each item; None
    for the items' own order)."""
    name, length, rows = store
    batch = build_batch(datamodule.batch_size, datamodule.preprocessing.crop, device)
    loader = DataLoader(source, batch_size=batch, num_workers=datamodule.workers())
    start = 0
    for feats, logits in _frozen_outputs(net, k, loader, device):
        if logits is not None and start == 0:
            _check_replay(net, k, feats, logits)
        end = start + len(feats)
        arrays.write(name, length, slice(start, end) if rows is None else rows[start:end], feats)
        start = end
        if shown is not None:
            shown.update(len(feats))


def _check_replay(net: Any, k: int, feats: torch.Tensor, logits: torch.Tensor) -> None:
    """The rest of the net run on the stored tensor must give the model's own output, or nothing is cached."""
    with torch.no_grad():
        if k == net.num_stages:
            again = net.head(feats)
            where = f"its head ({net.head_name}) is not its last operation"
        else:
            skip = SkipFrozen(net, k)
            skip.apply()
            try:
                again = net(feats)
            except Exception:  # a forward that is not a chain through its stages
                again = None
            finally:
                skip.restore()
            where = (
                f"its forward is not a chain through its stages (stage {k} cannot start from stored input)"
            )
    # Under autocast the replay may round otherwise (another kernel, bf16's 8 bits of mantissa); a wrong cut
    # is off by far more.
    tolerance = 2e-2 if logits.dtype in (torch.bfloat16, torch.float16) else 1e-4
    if (
        again is None
        or again.shape != logits.shape
        or not torch.allclose(again.float(), logits.float(), atol=tolerance, rtol=tolerance)
    ):
        raise _NotCacheable(f"{net.arch} cannot be cached after stage {k}: {where}")


class _NotCacheable(Exception):
    """The cache would not be exact for this network."""


def _readable(target: Path) -> bool:
    meta_file = target / "meta.json"
    if not meta_file.is_file():
        return False
    try:
        meta = json.loads(meta_file.read_text())
        for name, shape in meta["arrays"].items():
            if list(np.load(target / f"{name}.npy", mmap_mode="r").shape) != shape:
                return False
        if meta["arrays"].get("images", [0])[0] != len(meta["images"]):
            return False
    except (OSError, ValueError, KeyError, IndexError, json.JSONDecodeError):
        return False
    return True


class FeatureDataset(Dataset):
    """Stored features of one split, in its order; training keys are ``(index, epoch)`` and read view
    ``epoch % V``. ``rows``: each item's row in the arrays (None: the items' own order)."""

    def __init__(self, arrays: list[np.ndarray], rows: np.ndarray | None, labels: np.ndarray):
        self.arrays, self.rows, self.labels = arrays, rows, labels

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """One stored feature's shape."""
        return tuple(self.arrays[0].shape[1:])

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        array = self.arrays[epoch % len(self.arrays)]
        row = index if self.rows is None else self.rows[index]
        return torch.from_numpy(np.array(array[row], dtype=np.float32)), int(self.labels[index])


def _feature_datasets(images: ImageDataModule, folder: Path, views: int) -> dict[str, FeatureDataset]:
    """Each split of the image module as stored features; labels from the run's own index."""
    meta = json.loads((folder / "meta.json").read_text())
    row_of = {path: row for row, path in enumerate(meta["images"])}
    stored = np.load(folder / "images.npy", mmap_mode="r") if "images" in meta["arrays"] else None
    datasets = {}
    for split, dataset in images.datasets.items():
        labels = np.array([label for _, label in dataset.samples], dtype=np.int64)
        if split == "train" and views > 1:
            arrays = [np.load(folder / f"train-{v}.npy", mmap_mode="r") for v in range(views)]
            datasets[split] = FeatureDataset(arrays, None, labels)
        else:
            datasets[split] = FeatureDataset([stored], _rows(dataset, row_of), labels)
    return datasets


class CachedFeatures(pl.LightningDataModule):
    """The image data module's splits, served as stored features (same order, same batch, same sampler)."""

    def __init__(self, images: ImageDataModule, folder: Path, views: int):
        super().__init__()
        self.images, self.folder, self.views = images, folder, views
        self.datasets = _feature_datasets(images, folder, views)

    def __getattr__(self, name: str) -> Any:  # num_classes, class_names, preprocessing, has_split, ...
        if name in ("images", "folder", "views", "datasets") or name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.images, name)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.images.trainer = self.trainer
        # The image module's samplers (exact under DDP); features are decoded already: no workers needed.
        return self.images.loader(self.datasets[split], shuffle, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def training_inputs(data: Any, epochs: int) -> str:
    """What the trained layers saw of the training images, for metrics.json and the report's caveats.

    ``random crops`` (the images, augmented; also V >= epochs cached views, which are those very crops),
    ``eval transform`` (one cached view: no augmentation), or ``V cached views`` (fewer than the epochs,
    so views repeat). Strategies compared on different inputs are not compared like for like: a study
    found the same first_k cell 8 points apart with and without augmentation.
    """
    if isinstance(data, PhasedFeatures):  # only the epochs before the first unfreeze read the cache
        epochs = min(epochs, int(data.until))
    if not isinstance(data, CachedFeatures) or (data.views > 1 and epochs <= data.views):
        return "random crops"
    seen = "eval transform" if data.views == 1 else f"{data.views} cached views"
    return f"{seen} before the first unfreeze" if isinstance(data, PhasedFeatures) else seen


class PhasedLoader:
    """Stored-feature batches for epochs before ``until``, image batches from then on (gradual).

    Both loaders share the image module's sampler, so batch order and count match; the epoch is read when
    iteration starts, as :class:`~translearn.data.base.EpochShuffle` does, so a resumed run picks the
    right one.
    """

    def __init__(self, features: DataLoader, images: DataLoader, until: float, epoch: Any):
        self.features, self.images, self.until, self.epoch = features, images, until, epoch

    def current(self) -> DataLoader:
        return self.features if self.epoch() < self.until else self.images

    def __len__(self) -> int:
        return len(self.current())

    def __iter__(self) -> Iterator:
        return iter(self.current())


class PhasedFeatures(CachedFeatures):
    """Gradual unfreezing: stored features while only the head trains, the images once stages unfreeze."""

    def __init__(self, images: ImageDataModule, folder: Path, views: int, until: float):
        super().__init__(images, folder, views)
        self.until = until

    def _phased(self, split: str, shuffle: bool) -> PhasedLoader:
        features = self._loader(split, shuffle)
        images = self.images.loader(self.images.datasets[split], shuffle, self.images.workers())
        return PhasedLoader(features, images, self.until, self.images._current_epoch)

    def train_dataloader(self) -> PhasedLoader:
        return self._phased("train", shuffle=True)

    def val_dataloader(self) -> PhasedLoader:
        return self._phased("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:  # after training: the whole net runs on images
        self.images.trainer = self.trainer
        return self.images.test_dataloader()


def maybe_cache(
    mode: str,
    module: Any,
    datamodule: ImageDataModule,
    cache_dir: str | Path,
    views: int,
    dtype: str,
    device: str,
    precision: str = "32-true",
) -> tuple[pl.LightningDataModule, str]:
    """The data module to train on (cached or not) and the line that says which, and why."""
    mode = check_settings(mode, views, dtype)  # checked up front too (config.check_values)
    if mode == "false":
        return datamodule, "feature cache off (strategy.cache_features=false)"
    k, until, reason = frozen_prefix(module.plan, mode)
    if reason is not None:
        if mode == "true":
            raise inexact(reason)
        return datamodule, f"feature cache off: {reason}"
    datamodule.prepare_data()
    datamodule.setup("fit")
    try:
        folder = Path(cache_dir).expanduser() / "features"
        folder = build_cache(module.net, k, datamodule, folder, views, dtype, torch.device(device), precision)
    except _NotCacheable as exc:
        if mode == "true":
            raise UserError(f"strategy.cache_features=true but caching would not be exact: {exc}") from None
        return datamodule, f"feature cache off: {exc}"
    phased = until != float("inf")
    data = (
        PhasedFeatures(datamodule, folder, views, until)
        if phased
        else CachedFeatures(datamodule, folder, views)
    )
    module.use_cached_features(k, until, data.datasets["train"].feature_shape)
    what = "the eval transform" if views == 1 else f"{views} augmented views"
    cut = (
        "the head's input" if k == module.net.num_stages else f"the output of {module.net.stages[k - 1].name}"
    )
    line = f"feature cache on: {cut} stored once, training images seen through {what}, {folder}"
    if phased:
        phase = f"feature cache on for epochs 0-{int(until) - 1}, before the first unfreeze (images after):"
        line = line.replace("feature cache on:", phase)
    return data, line
