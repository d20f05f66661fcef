"""The optimizer and LR scheduler: torch classes named by ``model.optimizer`` / ``model.scheduler``.

Each node is a Hydra ``_partial_`` target of a torch class (``conf/model/optimizer/``,
``conf/model/scheduler/``). translearn adds only what torch cannot know: the parameter groups (one per
stage, with the strategy's LR multipliers and no weight decay on norms and biases:
:meth:`translearn.strategies.FreezePlan.param_groups`), and the children of SequentialLR/ChainedScheduler,
which need the optimizer before their parent exists, so Hydra cannot build them (the model node is
``_recursive_: false``; this module builds both nodes, and checks them for one-line errors).

Stages that ``gradual`` has not unfrozen yet need nothing here: their gradients are dropped after every
backward (:meth:`~translearn.strategies.FreezePlan.gate_gradients`), and torch's optimizers skip a
parameter whose ``grad`` is None entirely (no update, momentum, weight decay or state).
"""

from __future__ import annotations

import functools
import inspect
import pydoc
from collections.abc import Callable, Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LRScheduler

from translearn.errors import UserError

# In Python, TransferModule(optimizer=None) is this (conf/model/optimizer/sgd.yaml); scheduler=None is none.
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1e-3, "momentum": 0.9}


def _partial(node: Any, key: str, base: type, first: str) -> functools.partial:
    """The torch class of ``node`` with its keywords bound, checked: one line for any mistake in it."""
    if not isinstance(node, Mapping) or "_target_" not in node:
        raise UserError(
            f"model.{key} must name a torch class with _target_ (see conf/model/{key.split('.')[0]}/), "
            f"got {node!r}"
        )
    target = node["_target_"]
    try:
        cls = pydoc.locate(str(target))  # not hydra's get_class, which logs a traceback-like report
    except Exception:  # pydoc raises ErrorDuringImport when the module exists but fails to import
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        kind = "torch.optim.Optimizer" if key == "optimizer" else "torch.optim.lr_scheduler.LRScheduler"
        raise UserError(f"model.{key}._target_={target} is not a {kind} class")
    kwargs = {k: v for k, v in node.items() if not str(k).startswith("_")}
    signature = inspect.signature(cls)
    named = [n for n, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    open_ended = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())  # bind() judges
    unknown = [k for k in kwargs if k == first or (k not in named and not open_ended)]
    if unknown:
        from translearn.config import did_you_mean  # config imports this module's callers

        bad, names = unknown[0], [n for n in named if n != first]
        close = did_you_mean(str(bad), names)
        hint = f"did you mean model.{key}.{close}? " if close else ""
        raise UserError(
            f"unknown key model.{key}.{bad}: {cls.__name__} takes no '{bad}' ({hint}"
            f"it takes: {', '.join(names)})"
        )
    try:
        signature.bind(**{first: None}, **kwargs)  # a required argument left out
    except TypeError as exc:
        raise UserError(f"model.{key}: {cls.__name__} {exc}") from None
    return functools.partial(cls, **kwargs)


def optimizer_partial(node: Mapping | None) -> functools.partial:
    """``model.optimizer`` as a partial torch optimizer: call it on parameter groups."""
    return _partial(DEFAULT_OPTIMIZER if node is None else node, "optimizer", torch.optim.Optimizer, "params")


def scheduler_partial(node: Mapping | None, key: str = "scheduler") -> Callable[..., LRScheduler] | None:
    """``model.scheduler`` as ``make(optimizer=...)``; None for no scheduler (None or ``{}``: none.yaml)."""
    if not node:
        return None
    make = _partial(node, key, LRScheduler, "optimizer")
    children = make.keywords.get("schedulers")
    if children is None:
        return make
    if not isinstance(children, list | tuple) or not children:
        raise UserError(f"model.{key}.schedulers must be a list of scheduler configs, got {children!r}")
    parts = [scheduler_partial(child, f"{key}.schedulers.{i}") for i, child in enumerate(children)]
    if None in parts:
        raise UserError(f"model.{key}.schedulers holds an empty scheduler")

    # SequentialLR and ChainedScheduler take schedulers already built on the same optimizer.
    def make_with_children(optimizer: torch.optim.Optimizer) -> LRScheduler:
        return make(optimizer=optimizer, schedulers=[part(optimizer=optimizer) for part in parts])

    return make_with_children


def base_value(make: functools.partial, name: str, default: Any = None) -> Any:
    """A keyword of the partial optimizer (``lr``, ``weight_decay``), else the class's own default."""
    if name in make.keywords:
        return make.keywords[name]
    param = inspect.signature(make.func).parameters.get(name)
    return default if param is None or param.default is param.empty else param.default


def check(model: DictConfig, epochs: int | None = None) -> None:
    """Both nodes of a composed config, before anything runs (translearn.config.check_values); with
    ``epochs``, also the learning rates the schedule reaches over the run."""
    nodes = [
        OmegaConf.to_container(model[k], resolve=True) if model.get(k) is not None else None
        for k in ("optimizer", "scheduler")
    ]
    make_optimizer = optimizer_partial(nodes[0])
    make_scheduler = scheduler_partial(nodes[1])
    if make_scheduler is not None and epochs:
        _check_schedule(make_optimizer, make_scheduler, epochs)


def _check_schedule(make_optimizer: functools.partial, make_scheduler: Callable, epochs: int) -> None:
    """A schedule that reaches a negative or non-finite learning rate is a one-line error.

    torch checks the optimizer's ``lr`` but not what a scheduler makes of it: StepLR with ``gamma=-0.5``
    or a cosine with ``eta_min=-0.01`` ran on with negative rates, which climb the loss, without a word.
    The schedule is stepped once per epoch, as in training, on one scalar parameter (the stages' groups
    differ from it by positive factors only). A schedule that cannot be simulated so is left to the run.
    """
    import math
    import warnings

    try:
        optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(1))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler = make_scheduler(optimizer=optimizer)
            rates = []
            for _ in range(min(epochs, 10_000)):
                rates.append(optimizer.param_groups[0]["lr"])
                optimizer.step()  # no gradient: a no-op that keeps torch's order of calls
                scheduler.step()
    except Exception:  # ReduceLROnPlateau wants a metric, a custom class its own context: the run decides
        return
    bad = next(((e, lr) for e, lr in enumerate(rates) if not math.isfinite(lr) or lr < 0), None)
    if bad is not None:
        raise UserError(
            f"model.scheduler ({type(scheduler).__name__}) takes the learning rate to {bad[1]:.3g} at epoch "
            f"{bad[0]}: a negative rate climbs the loss; check its arguments (gamma > 0, eta_min >= 0)"
        )
