"""The network a freezing policy works on: a library's model cut into ordered stages, plus its head.

Whatever the library, a :class:`TransferNet` is a *stem*, then one stage per block group, then the *head*,
the single layer that maps features to classes. Every parameter sits in exactly one stage or the head
(:func:`check_partition`), so "freeze stages 1..k" means the same thing for every architecture.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from translearn.errors import UserError


@dataclass(frozen=True)
class Stage:
    """A group of layers that freeze and unfreeze together."""

    name: str
    modules: tuple[str, ...]
    params: tuple[str, ...] = ()  # parameters owned directly by a parent (ViT's class token)


class TransferNet(nn.Module):
    """A model plus its stage layout: ``stages[0]`` is the stem, then blocks, then ``head``."""

    def __init__(
        self,
        model: nn.Module,
        arch: str,
        stages: list[Stage],
        head: str,
        in_chans: int = 3,
        library: str = "torchvision",
    ):
        super().__init__()
        self.model = model
        self.arch = arch
        self.library = library
        self.stages = list(stages)
        self.head_name = head
        self.in_chans = in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        # GoogLeNet/Inception return a named tuple in training mode.
        return out.logits if hasattr(out, "logits") else out

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def head(self) -> nn.Module:
        return self.model.get_submodule(self.head_name)

    def stage_modules(self, index: int) -> list[nn.Module]:
        return [self.model.get_submodule(name) for name in self.stages[index].modules]

    def stage_parameters(self, index: int) -> list[nn.Parameter]:
        stage = self.stages[index]
        params = [p for m in self.stage_modules(index) for p in m.parameters()]
        params += [self.model.get_parameter(name) for name in stage.params]
        return params

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def named_groups(self) -> Iterator[tuple[str, list[nn.Parameter]]]:
        """Every parameter exactly once: the stages in order, then the head."""
        for i, stage in enumerate(self.stages):
            yield stage.name, self.stage_parameters(i)
        yield "head", self.head_parameters()


def check_partition(model: nn.Module, stages: list[Stage], head: str) -> None:
    """Every parameter in exactly one stage or the head; anything else is a model we cannot freeze right."""
    seen: dict[int, str] = {}
    for stage in stages:
        params = [p for m in stage.modules for p in model.get_submodule(m).parameters()]
        params += [model.get_parameter(p) for p in stage.params]
        for p in params:
            if id(p) in seen:
                raise UserError(
                    f"{type(model).__name__}: a parameter sits in stages {seen[id(p)]} and {stage.name}"
                )
            seen[id(p)] = stage.name
    for p in model.get_submodule(head).parameters():
        seen[id(p)] = "head"
    loose = [n for n, p in model.named_parameters() if id(p) not in seen]
    if loose:
        raise UserError(
            f"{type(model).__name__} is not supported: parameters outside every stage: {loose[:3]}"
        )


def stage_name(index: int, modules: list[str]) -> str:
    if index == 0:
        return "stem"
    return modules[0] if len(modules) == 1 else f"{modules[0]}..{modules[-1]}"


def first_conv(model: nn.Module) -> str | None:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    return None


def adapt_first_conv(model: nn.Module) -> None:
    """Make the first conv take 1 channel by summing its weights over RGB (exact for equal channels)."""
    name = first_conv(model)
    conv = model.get_submodule(name) if name else None
    if conv is None or conv.in_channels not in (1, 3) or conv.groups != 1:
        raise UserError(f"{type(model).__name__} has no plain RGB first convolution to adapt to 1 channel")
    if conv.in_channels == 1:
        return
    conv.weight = nn.Parameter(conv.weight.detach().sum(dim=1, keepdim=True))
    conv.in_channels = 1
