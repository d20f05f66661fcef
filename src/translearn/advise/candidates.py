"""The search space of ``translearn.advise``: which freezing policies are candidates, and how a rung of them
becomes ``translearn.train -m`` commands.

For a backbone of n stages (1 = the stem) the candidates are ``freeze``, ``first_k`` k=1..n-1, ``surgical``
[i] for i=1..n-1, ``finetune``, ``lp_ft`` and ``auto_rgn``. Pitfalls named here:

* ``surgical [n]`` trains exactly what ``first_k k=n-1`` trains (the last stage and the head), so it is left
  out whenever first_k is searched: the same run twice would spend budget and split the vote.
* ``lp_ft`` needs a fine-tuning epoch after its probe: ``strategy.probe_epochs`` is half the rung's epochs,
  so a rung of lp_ft needs at least 2 epochs.
* Hydra sweeps one group option per command, and the keys of one option (``strategy.k``) do not exist in
  another, so a rung runs one command per *family*: freeze/finetune/auto_rgn together (no extra keys), then
  first_k, surgical and lp_ft each on their own. Surgical stages sweep as ``strategy.stages=[1],[2]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

FAMILIES = ("freeze", "first_k", "surgical", "finetune", "lp_ft", "auto_rgn")
PLAIN = ("freeze", "finetune", "auto_rgn")  # no keys of their own: one command sweeps them together


@dataclass(frozen=True)
class Candidate:
    """One policy to try: a strategy and its stage setting (``k`` for first_k, ``stages`` for surgical)."""

    strategy: str
    k: int | None = None
    stages: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        """The name tables and advice.json use: ``freeze``, ``first_k k=2``, ``surgical [3]``."""
        if self.strategy == "first_k":
            return f"first_k k={self.k}"
        if self.strategy == "surgical":
            return f"surgical [{','.join(map(str, self.stages))}]"
        return self.strategy

    @property
    def family(self) -> str:
        """The command (and folder) the candidate runs in within a rung."""
        return "plain" if self.strategy in PLAIN else self.strategy

    def min_epochs(self) -> int:
        return 2 if self.strategy == "lp_ft" else 1

    def overrides(self, epochs: int) -> list[str]:
        """What selects this candidate on a train command line, at ``epochs`` epochs."""
        out = [f"strategy={self.strategy}"]
        if self.strategy == "first_k":
            out.append(f"strategy.k={self.k}")
        elif self.strategy == "surgical":
            out.append(f"strategy.stages=[{','.join(map(str, self.stages))}]")
        elif self.strategy == "lp_ft":
            out.append(f"strategy.probe_epochs={lp_ft_probe_epochs(epochs)}")
        return out

    def trained_stages(self, n: int) -> tuple[int, ...]:
        """Stage numbers (1-based) that train at some point; the head always trains."""
        if self.strategy == "freeze":
            return ()
        if self.strategy == "first_k":
            return tuple(range((self.k or 0) + 1, n + 1))
        if self.strategy == "surgical":
            return self.stages
        return tuple(range(1, n + 1))

    def trains(self, stage_names: Sequence[str]) -> str:
        """In words: ``the head only``, ``layer3–layer4 and the head``, ``everything``."""
        if self.strategy == "lp_ft":
            return "the head, then everything"
        if self.strategy == "auto_rgn":
            return "everything, at RGN-scaled rates"
        stages = self.trained_stages(len(stage_names))
        if not stages:
            return "the head only"
        if len(stages) == len(stage_names):
            return "everything"
        names = [stage_names[s - 1] if s <= len(stage_names) else f"stage {s}" for s in stages]
        contiguous = list(stages) == list(range(stages[0], stages[-1] + 1))
        if len(names) > 1 and contiguous:
            return f"{names[0]}–{names[-1]} and the head"
        return f"{', '.join(names)} and the head"

    @classmethod
    def from_run(cls, metrics: dict[str, Any], config: dict[str, Any] | None) -> Candidate:
        """The candidate a finished run was, from its metrics.json and .hydra/config.yaml."""
        strategy = str(metrics.get("strategy"))
        if strategy == "first_k":
            return cls(strategy, k=int(metrics["k"]))
        if strategy == "surgical":
            stages = ((config or {}).get("strategy") or {}).get("stages") or []
            return cls(strategy, stages=tuple(sorted({int(s) for s in stages})))
        return cls(strategy)

    @classmethod
    def parse(cls, key: str) -> Candidate:
        """The inverse of :attr:`key` (advise's state file stores keys)."""
        name, _, rest = key.partition(" ")
        if name == "first_k":
            return cls(name, k=int(rest.removeprefix("k=")))
        if name == "surgical":
            return cls(name, stages=tuple(int(s) for s in rest.strip("[]").split(",") if s))
        return cls(name)


def lp_ft_probe_epochs(epochs: int) -> int:
    """LP-FT's head-only epochs in a run of ``epochs``: half, at least one, and one left to fine-tune."""
    return max(1, min(epochs - 1, epochs // 2))


def candidates_for(n_stages: int, families: Iterable[str] = FAMILIES) -> list[Candidate]:
    """Every candidate of ``families`` for a backbone of ``n_stages`` stages, in the plot's order."""
    chosen = set(families)
    out: list[Candidate] = []
    if "freeze" in chosen:
        out.append(Candidate("freeze"))
    if "first_k" in chosen:
        out += [Candidate("first_k", k=k) for k in range(1, n_stages)]
    if "surgical" in chosen:
        last = n_stages - 1 if "first_k" in chosen else n_stages  # [n] is first_k k=n-1
        out += [Candidate("surgical", stages=(i,)) for i in range(1, last + 1)]
    out += [Candidate(name) for name in ("finetune", "lp_ft", "auto_rgn") if name in chosen]
    return out


def commands_for(candidates: Sequence[Candidate], epochs: int) -> list[tuple[str, list[str]]]:
    """One ``(family, overrides)`` per family of ``candidates``: each a Hydra sweep over its members."""
    families: dict[str, list[Candidate]] = {}
    for c in candidates:
        families.setdefault(c.family, []).append(c)
    out = []
    for family, members in families.items():
        if family == "plain":
            overrides = [f"strategy={','.join(c.strategy for c in members)}"]
        elif family == "first_k":
            overrides = ["strategy=first_k", f"strategy.k={','.join(str(c.k) for c in members)}"]
        elif family == "surgical":
            lists = ",".join("[" + ",".join(map(str, c.stages)) + "]" for c in members)
            overrides = ["strategy=surgical", f"strategy.stages={lists}"]
        else:
            overrides = members[0].overrides(epochs)
        out.append((family, overrides))
    return out


def crop_views(user_overrides: Sequence[str], epochs: int) -> list[str]:
    """Like for like: a feature-cached candidate stores one random crop per epoch, the very crops the
    uncached candidates train on (not the eval transform), unless the user chose the views."""
    if any(o.lstrip("+~").startswith("strategy.cache_views=") for o in user_overrides):
        return []
    return [f"strategy.cache_views={epochs}"]
