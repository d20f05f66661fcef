"""translearn's one output channel: the ``translearn`` logger.

Every status line and warning of the library goes through ``log`` (``logging.getLogger("translearn")``).
Its console handler keeps what users and scripts read: ``translearn: <line>`` on stdout, ``translearn:
warning: <line>`` on stderr, each line in one write so DDP ranks and parallel sweep cells that share a
terminal never interleave half-lines. It does not propagate, so Hydra's console handler does not print
a line twice; ``train`` attaches the run's ``train.log`` handler to it. A command's own answer (a table,
a listing) is printed, not logged.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

log = logging.getLogger("translearn")
_warned: set[str] = set()


class _Console(logging.Handler):
    """stdout for information, stderr for warnings and errors; the stream is looked up per record."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno >= logging.ERROR:
                stream, prefix = sys.stderr, "translearn: error: "
            elif record.levelno >= logging.WARNING:
                stream, prefix = sys.stderr, "translearn: warning: "
            else:
                stream, prefix = sys.stdout, "translearn: "
            stream.write(prefix + record.getMessage() + "\n")
            stream.flush()
        except BrokenPipeError:  # `... | head` closed the pipe: nobody is reading, say nothing more
            pass
        except Exception:  # a closed stream must not end the run
            self.handleError(record)


if not any(isinstance(h, _Console) for h in log.handlers):
    log.addHandler(_Console())
    log.setLevel(logging.INFO)
    log.propagate = False


def rank() -> int:
    """Lightning's global rank where Lightning is loaded (it updates it in strategy setup), else the
    launcher's environment as Lightning reads it. Not imported here: every error exit passes through this
    module, and importing Lightning costs seconds."""
    lightning = sys.modules.get("lightning_fabric.utilities.rank_zero")
    rank = getattr(getattr(lightning, "rank_zero_only", None), "rank", None)
    if rank is not None:
        return int(rank)
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key) is not None:
            return int(os.environ[key])
    return 0


def info_rank_zero(message: str) -> None:
    """A line every DDP rank would print alike, printed once."""
    if rank() == 0:
        log.info(message)


def warn_once(message: str) -> None:
    """A warning once per process and only on rank 0 (data discovery runs on every rank)."""
    if message in _warned or rank() != 0:
        return
    _warned.add(message)
    log.warning(message)


class _NoAdvert(logging.Filter):
    """Drops the advertisement Lightning logs at every Trainer start (a cloud logger's "💡 Tip")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def mute_lightning_noise() -> None:
    """Keep Lightning's useful lines, drop its noise: an advert per Trainer, a deprecation notice that
    Lightning's own pytree code triggers on recent torch (nothing a user can act on), and its alarm at the
    frozen BatchNorm layers in eval mode. Idempotent; by logger name, so Lightning is not imported here."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, _NoAdvert) for f in rank_zero.filters):
        rank_zero.addFilter(_NoAdvert())
    warnings.filterwarnings("ignore", message=r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # Every run with frozen BatchNorm: they are in eval mode on purpose (bn=frozen), and translearn's own
    # startup line names the frozen stages; Lightning's "may lead to unexpected behavior" only alarms.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
