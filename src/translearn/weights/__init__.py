"""Pretrained weights: names (:mod:`.catalog`), the cache and downloads (:mod:`.cache`), and files as their
publishers ship them (:mod:`.files`). ``python -m translearn.weights fetch|list`` fills and lists the cache.
"""

from translearn.weights.catalog import (
    LIBRARIES,
    WeightsChoice,
    available_backbones,
    check_backbone,
    parse_weights,
    preprocessing_for,
)
from translearn.weights.files import read_state_dict

__all__ = [
    "LIBRARIES",
    "WeightsChoice",
    "available_backbones",
    "check_backbone",
    "parse_weights",
    "preprocessing_for",
    "read_state_dict",
]
