"""Checkpoint files: written beside their final name and renamed, read with ``weights_only=True``.

Lightning's own writer saves through an fsspec transaction whose temporary file lives in ``$TMPDIR``; when
that is another filesystem than the run directory (a cluster's NFS or Lustre), the final step is a copy,
and a kill during it leaves a cut ``last.ckpt`` and no previous one. Lightning's reader leaves
``weights_only`` to torch's default, which was ``False`` before torch 2.6. This plugin fixes both for every
checkpoint a Trainer writes or reads: resume, ``test(ckpt_path="best")`` and the ModelCheckpoint callbacks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """A kill at any moment leaves the previous checkpoint intact; loading never runs pickled code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with interrupts_after():  # a Ctrl-C lands once the file is in place
            try:
                with open(partial, "wb") as f:
                    torch.save(checkpoint, f)
                # No fsync: a killed process loses nothing once close() returns; only a power cut could,
                # and syncing 45 MB per epoch would double the cost of a cached freeze epoch.
                os.replace(partial, path)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> Any:
        # weights_only=True whatever the caller asks: translearn's checkpoints hold tensors and plain types.
        return torch.load(path, map_location=map_location, weights_only=True)


@contextlib.contextmanager
def interrupts_after() -> Iterator[None]:
    """A Ctrl-C during the block takes effect when it ends.

    Why: torch.save's zip writer turns a KeyboardInterrupt raised inside its write into a RuntimeError
    ("unexpected pos ..."), so a Ctrl-C that fell on an epoch's checkpoint save gave a traceback and a run
    recorded as failed instead of an interrupted, resumable one. Only the main thread can hold a handler.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda _signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):  # Python's default raises KeyboardInterrupt; Lightning's or a sweep's own
                previous(signal.SIGINT, received[-1])
            elif previous != signal.SIG_IGN:  # the default action (or a handler set outside Python)
                os.kill(os.getpid(), signal.SIGINT)
