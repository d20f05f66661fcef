"""translearn: which layers of a pretrained network should you retrain for your data?

The pipeline, one module per stage: ``data`` → ``backbones`` → ``strategies`` → ``module`` →
``train`` (Lightning trainer, Hydra sweeps) → ``report``.
"""

__version__ = "0.1.0"
