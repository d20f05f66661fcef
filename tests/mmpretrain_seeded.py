"""Seeded weights for a list of (key, shape): the same tensors wherever they are made, so a record of
another library's outputs on them can be checked here (see data/make_mmpretrain_resnetv1.py)."""

from __future__ import annotations

import math

import torch

SEED = 0
INPUT_SEED = 1


def seeded_state(shapes: list[list]) -> dict[str, torch.Tensor]:
    """He-scaled conv/linear weights, and BatchNorm affine and statistics away from 1 and 0, so that a
    tensor loaded into the wrong layer changes the features."""
    gen = torch.Generator().manual_seed(SEED)
    state = {}
    for key, shape in shapes:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith(("running_mean", "bias")):
            state[key] = (torch.rand(shape, generator=gen) - 0.5) * 0.2
        elif len(shape) == 1:  # a norm's weight
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)
    return state
