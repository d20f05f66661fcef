"""``python -m translearn.advise``: which layers to retrain for your data, within a time budget.

1. **Probe** (:mod:`.probe`): relative gradient norms per stage through the pretrained model with a fresh
   head, a timed training step, and a linear probe (``strategy=freeze`` on cached features).
2. **Search** (:mod:`.search`, :mod:`.plan`, :mod:`.candidates`): successive halving over freeze, first_k
   k=1..n-1, surgical [i], finetune, lp_ft and auto_rgn, each rung a few ``translearn.train -m`` sweeps
   into ``advise.dir``; a rung starts only if its estimated cost fits what is left of the budget, and a
   rerun with the same ``advise.dir`` resumes without redoing finished cells.
3. **Answer** (:mod:`.answer`): a ranked table, one recommendation that says when the top candidates are
   within the noise, the command that trains the final model, and advice.md / advice.json / advice.png.
"""

from translearn.advise.cli import main

__all__ = ["main"]
