"""The answer of a search: a ranked table, one recommendation that says how sure it is, and the command.

Ranking is successive halving's own: a candidate that reached a later rung ranks above every one that
stopped earlier (it beat them at the same fidelity), then by its mean over seeds at its last rung.

Pitfalls:

* **Noise.** At a handful of seeds the top two are often indistinguishable. Two candidates differ only
  when the gap of their means exceeds two standard errors of the difference: over seeds where both
  have n >= 2 (``translearn.report.stats``); with one seed there is no spread over seeds, so the gap is
  judged against the sampling noise of the validation set, sqrt(p(1-p)/N) per side (N images; without N,
  one seed is a tie). Within the noise, the answer says so and recommends the cheapest of the tied
  (fewest trainable parameters, then fewest seconds), not the one that happened to score highest.
* **Fidelity.** Only candidates of the last rung, at its epochs, are compared for the tie; the baseline
  quoted next to the recommendation (finetune, or freeze) is quoted with its own n and epochs.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from translearn.advise.candidates import Candidate, crop_views
from translearn.advise.search import Cell
from translearn.report.stats import SPREAD_FACTOR, Stat, compare
from translearn.report.table import grid

MD_FILE, JSON_FILE, PNG_FILE = "advice.md", "advice.json", "advice.png"


@dataclass
class Entry:
    """A candidate at its last rung: the metric over seeds, and what it cost."""

    candidate: Candidate
    rung: int
    epochs: int
    stat: Stat = field(default_factory=Stat)
    test: Stat = field(default_factory=Stat)
    trainable: float | None = None
    seconds: float | None = None
    val_images: int | None = None  # the validation split's size: a single run's sampling noise

    @property
    def key(self) -> str:
        return self.candidate.key

    def text(self, digits: int = 3) -> str:
        """``0.810 ± 0.010 (n=3, 6 epochs)``; no ± for one seed."""
        if self.stat.mean is None:
            return "no result"
        spread = f" ± {self.stat.std:.{digits}f}" if self.stat.std is not None else ""
        return f"{self.stat.mean:.{digits}f}{spread} (n={self.stat.n}, {_epochs(self.epochs)})"

    def cost(self) -> tuple[float, float]:
        return (
            math.inf if self.trainable is None else self.trainable,
            math.inf if self.seconds is None else self.seconds,
        )


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("s" if n != 1 else "")


def entries(
    rungs: Sequence[tuple[int, Sequence[Cell]]], metric: str, candidates: Sequence[Candidate]
) -> list[Entry]:
    """Each candidate at the last rung it has results in; ``rungs`` are (epochs, cells), rung 0 first."""
    out: dict[Candidate, Entry] = {}
    for index, (epochs, cells) in enumerate(rungs):
        here: dict[Candidate, Entry] = {}
        for cell in cells:
            value = cell.metrics.get(metric)
            if value is None:
                continue
            entry = here.setdefault(cell.candidate, Entry(cell.candidate, index, epochs))
            entry.stat.add(float(value), cell.metrics.get("seed"))
            if cell.metrics.get("test_acc") is not None:
                entry.test.add(float(cell.metrics["test_acc"]), cell.metrics.get("seed"))
            entry.val_images = (cell.metrics.get("split_sizes") or {}).get("val") or entry.val_images
            for attr, key in (("trainable", "trainable_params"), ("seconds", "train_seconds")):
                if cell.metrics.get(key) is not None:
                    old = getattr(entry, attr)
                    n = entry.stat.runs
                    new = float(cell.metrics[key])
                    setattr(entry, attr, new if old is None else old + (new - old) / n)
        out.update(here)
    for c in candidates:
        out.setdefault(c, Entry(c, 0, rungs[0][0] if rungs else 0))
    return list(out.values())


def rank(items: Sequence[Entry]) -> list[Entry]:
    """Later rung first, then the higher mean, then the cheaper; candidates without a result last."""
    return sorted(
        items,
        key=lambda e: (
            e.stat.mean is None,
            -e.rung,
            -(e.stat.mean or 0.0),
            e.cost(),
            e.key,
        ),
    )


@dataclass(frozen=True)
class Gap:
    """The top candidate minus a rival, against the noise it can be told from."""

    rival: Entry
    diff: float
    se: float | None  # standard error of the difference; None: nothing to judge it by
    source: str  # "seeds" (both n >= 2), "sampling" (a side has n=1: the validation set's), or "none"

    @property
    def tied(self) -> bool:
        return self.se is None or abs(self.diff) <= SPREAD_FACTOR * self.se


def sampling_se(entry: Entry) -> float | None:
    """The binomial standard error of one run's accuracy, sqrt(p(1-p)/N) over N validation images."""
    p, n = entry.stat.mean, entry.val_images
    if p is None or not n or not 0 <= p <= 1:
        return None
    return math.sqrt(p * (1 - p) / n)


def gap(top: Entry, rival: Entry) -> Gap:
    """``top − rival``, with the seeds' standard error where both have n >= 2; with one seed, the
    sampling noise of the validation set (what a single run's accuracy is uncertain by); else none."""
    seeds = compare("", "", top.stat, rival.stat)
    diff = (top.stat.mean or 0.0) - (rival.stat.mean or 0.0)
    if seeds is not None and seeds.se is not None:
        return Gap(rival, diff, seeds.se, "seeds")
    a, b = sampling_se(top), sampling_se(rival)
    if a is None or b is None:
        return Gap(rival, diff, None, "none")
    return Gap(rival, diff, math.sqrt(a * a + b * b), "sampling")


@dataclass
class Decision:
    """The recommendation: the best candidate, or the cheapest of those within the noise of it."""

    chosen: Entry
    top: Entry
    gaps: list[Gap]  # the top minus each other candidate of its rung and epochs, in ranking order

    @property
    def tied(self) -> list[Entry]:
        """Candidates within the noise of the top."""
        return [g.rival for g in self.gaps if g.tied]

    @property
    def within_noise(self) -> bool:
        return bool(self.tied)

    def noise_sentence(self, most: int = 5) -> str:
        """Why the choice is (or is not) clear, in one sentence; at most ``most`` names listed."""
        if not self.tied:
            if not self.gaps:
                return f"{self.top.key} is the only candidate with a result at its rung and epochs."
            first = self.gaps[0]
            return (
                f"{self.top.key} leads the runner-up, {first.rival.key}, by {first.diff:+.3f}, beyond the "
                f"noise ({_why([first])})."
            )
        names = [self.top.key, *(e.key for e in self.tied)]
        if len(names) > most:
            names = [*names[: most - 1], f"{len(names) - most + 1} more"]
        reasons = [_why([g for g in self.tied_gaps if g.source == source]) for source in NOISE_SOURCES]
        return (
            f"{_join(names)} are within the noise ({'; '.join(r for r in reasons if r)}); the cheapest, "
            f"{self.chosen.key}, is recommended."
        )

    @property
    def tied_gaps(self) -> list[Gap]:
        return [g for g in self.gaps if g.tied]


NOISE_SOURCES = ("seeds", "sampling", "none")


def _why(gaps: Sequence[Gap]) -> str:
    """What gaps of one noise source were judged by, in a phrase ('' for none)."""
    if not gaps:
        return ""
    band = max(SPREAD_FACTOR * (g.se or 0.0) for g in gaps)
    bound = f"= {band:.3f}" if len(gaps) == 1 else f"up to {band:.3f}"
    if gaps[0].source == "seeds":
        return f"over seeds, 2 standard errors of the difference {bound}"
    if gaps[0].source == "sampling":
        images = gaps[0].rival.val_images
        return (
            f"one seed, judged by the sampling noise of {images} validation images: 2 standard errors {bound}"
        )
    return "a single seed gives no spread to tell them apart"


def _reused(seeds: Sequence[Any]) -> str:
    """``seed 0 reused`` / ``seeds 0, 1 reused``: runs a rung took over instead of training them again."""
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} reused"


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def decide(ranked: Sequence[Entry]) -> Decision:
    """Pick the recommendation from a ranking (``rank``'s order): see the module's pitfalls."""
    scored = [e for e in ranked if e.stat.mean is not None]
    if not scored:
        raise ValueError("no candidate has a result")
    top = scored[0]
    gaps = [gap(top, e) for e in scored[1:] if e.rung == top.rung and e.epochs == top.epochs]
    tied = [g.rival for g in gaps if g.tied]
    chosen = min([top, *tied], key=lambda e: (e.cost(), e.key)) if tied else top
    return Decision(chosen, top, gaps)


def baseline(ranked: Sequence[Entry], chosen: Entry) -> Entry | None:
    """What to quote next to the recommendation: finetune, else freeze, else the runner-up."""
    scored = [e for e in ranked if e.stat.mean is not None and e.key != chosen.key]
    for name in ("finetune", "freeze"):
        found = next((e for e in scored if e.key == name), None)
        if found is not None:
            return found
    return scored[0] if scored else None


def final_command(user_overrides: Sequence[str], chosen: Candidate, epochs: int) -> list[str]:
    """The train command line (after ``python -m translearn.train``) for the final model."""
    kept = [o for o in user_overrides if o.split("=", 1)[0].lstrip("+~") != "trainer.max_epochs"]
    # The search trained cached candidates on one stored random crop per epoch: so does the final run.
    return [*kept, *chosen.overrides(epochs), f"trainer.max_epochs={epochs}", *crop_views(kept, epochs)]


def recommendation(
    decision: Decision, ranked: Sequence[Entry], stage_names: Sequence[str], epochs: int
) -> str:
    """``Retrain layer3–layer4 and the head (`strategy=first_k strategy.k=3`): 0.810 ± 0.010 ... vs ...``;
    ``epochs``: the final command's (lp_ft's probe is half of them)."""
    chosen = decision.chosen
    selects = " ".join(chosen.candidate.overrides(epochs))
    sentence = f"Retrain {chosen.candidate.trains(stage_names)} (`{selects}`): {chosen.text()}"
    other = baseline(ranked, chosen)
    if other is not None:
        sentence += f" vs {other.key} {other.text()}"
        if other.rung < chosen.rung:  # its number is from a shorter rung: a higher one did not carry it on
            sentence += f", dropped after rung {other.rung}"
    return sentence + "."


@dataclass
class Advice:
    """Everything advice.md, advice.json and the printout say."""

    sentence: str
    noise: str
    command: list[str]
    ranked: list[Entry]
    decision: Decision
    stage_names: list[str]
    probe: dict[str, Any]
    rungs: list[dict[str, Any]]
    budget: dict[str, Any]
    metric: str
    title: str

    def command_line(self) -> str:
        return "python -m translearn.train " + shlex.join(self.command)

    def table(self) -> str:
        header = ["#", "strategy", "trains", self.metric, "n", "epochs", "rung", "trainable", "s/run"]
        rows = []
        for i, e in enumerate(self.ranked, 1):
            mean = "no result" if e.stat.mean is None else f"{e.stat.mean:.3f}"
            if e.stat.std is not None:
                mean += f" ± {e.stat.std:.3f}"
            mark = " ←" if e.key == self.decision.chosen.key else ""
            rows.append(
                [
                    str(i), e.key + mark, e.candidate.trains(self.stage_names), mean,
                    str(e.stat.n), str(e.epochs), str(e.rung),
                    "" if e.trainable is None else f"{e.trainable:,.0f}",
                    "" if e.seconds is None else f"{e.seconds:.1f}",
                ]
            )  # fmt: skip
        return grid(header, rows, right={0, 3, 4, 5, 6, 7, 8}, width=None)

    def markdown(self) -> str:
        probe, linear = self.probe, self.probe.get("linear") or {}
        rgn = "\n".join(
            f"| {name} | {raw:.2e} | {rel:.2f} |"
            for name, raw, rel in zip(probe["stages"], probe["rgn"], probe["relative"], strict=True)
        )
        rungs = "\n".join(
            f"- rung {r['index']}: {len(r['candidates'])} candidate(s) × {r['seeds']} seed(s) × "
            f"{_epochs(r['epochs'])}"
            + (f" ({_reused(r['reused'])} from earlier rungs, not retrained)" if r.get("reused") else "")
            + f", estimated {r.get('estimate') or 0:.0f} s, took "
            + ("(not measured)" if r.get("wall") is None else f"{r['wall']:.0f} s")
            for r in self.rungs
        )
        linear_acc = linear.get(self.metric)
        return f"""# Which layers to retrain: {self.title}

**{self.sentence}**

{self.noise}

Train it:

```bash
{self.command_line()}
```

## Ranking ({self.metric}, mean ± std over seeds at each candidate's last rung)

{self.table()}

## Probe

Relative gradient norms ‖g‖/‖w‖ with a fresh head, mean over {probe["batches"]} training batch(es): the
data pulls hardest on the stages with the largest (relative: over the largest stage; the head's RGN is
{probe["head_rgn"]:.2e}).

| stage | RGN | relative |
|---|--:|--:|
{rgn}

Linear probe (`strategy=freeze`, {_epochs(int(linear.get("epochs") or 0))}): {self.metric}
{"n/a" if linear_acc is None else f"{linear_acc:.3f}"}, {linear.get("train_seconds")} s of training.

## Search

Successive halving: every candidate for a few epochs, then the top 1/eta for eta times longer with
more seeds.

{rungs}

Budget {self.budget["minutes"]:g} minutes, {self.budget["spent_minutes"]:.1f} used. The search ended:
{self.budget["stopped"]}. Every run of it: `python -m translearn.report {self.budget["folder"]}`.
"""

    def as_json(self) -> dict[str, Any]:
        def row(rank: int, e: Entry) -> dict[str, Any]:
            return {
                "rank": rank, "candidate": e.key, "strategy": e.candidate.strategy,
                "overrides": e.candidate.overrides(max(2, e.epochs)),
                "trains": e.candidate.trains(self.stage_names),
                "stages": list(e.candidate.trained_stages(len(self.stage_names))),
                "mean": e.stat.mean, "std": e.stat.std, "n": e.stat.n,
                "values": e.stat.per_seed(), "epochs": e.epochs, "rung": e.rung,
                "test_acc": e.test.mean, "trainable_params": e.trainable, "train_seconds": e.seconds,
            }  # fmt: skip

        return {
            "title": self.title,
            "metric": self.metric,
            "recommendation": {
                "candidate": self.decision.chosen.key,
                "sentence": self.sentence,
                "noise": self.noise,
                "within_noise": self.decision.within_noise,
                "tied": [e.key for e in self.decision.tied],
                "gaps": [
                    {"rival": g.rival.key, "diff": g.diff, "se": g.se, "noise": g.source, "tied": g.tied}
                    for g in self.decision.gaps
                ],
                "command": self.command_line(),
                "overrides": self.command,
            },
            "ranking": [row(i, e) for i, e in enumerate(self.ranked, 1)],
            "probe": self.probe,
            "rungs": self.rungs,
            "budget": self.budget,
        }


def figure(advice: Advice) -> Any:
    """advice.png: the probe's RGN per stage, and each candidate's accuracy (± std) by what it trains."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained", dpi=110)
    left, right = fig.subplots(1, 2, width_ratios=[1, 3])
    probe = advice.probe
    left.bar(range(len(probe["stages"])), probe["relative"], color="tab:gray")
    left.set_xticks(range(len(probe["stages"])), probe["stages"], rotation=45, ha="right", fontsize="small")
    left.set_ylabel("relative gradient norm (max = 1)")
    left.set_title("Probe: where the data pulls", fontsize="medium")
    order = ["freeze", "first_k", "surgical", "finetune", "lp_ft", "auto_rgn"]
    items = sorted(
        (e for e in advice.ranked if e.stat.mean is not None),
        key=lambda e: (order.index(e.candidate.strategy), e.candidate.k or 0, e.candidate.stages),
    )
    cmap = colormaps["tab10"]
    last = max((e.rung for e in items), default=0)
    # Faded: stopped in an earlier rung, so measured with fewer epochs and seeds than the rest.
    colors = [
        (*cmap(order.index(e.candidate.strategy) % 10)[:3], 1.0 if e.rung == last else 0.4) for e in items
    ]
    x = range(len(items))
    right.bar(
        x, [e.stat.mean for e in items], yerr=[e.stat.std or math.nan for e in items], color=colors,
        capsize=3, linewidth=2,
        edgecolor=["black" if e.key == advice.decision.chosen.key else "none" for e in items],
    )  # fmt: skip
    labels = [
        f"{e.key}\n{e.candidate.trains(advice.stage_names).replace(' and the head', ' +head')}" for e in items
    ]
    right.set_xticks(list(x), labels, rotation=45, ha="right", fontsize="x-small")
    for i, e in enumerate(items):
        right.annotate(
            f"{e.epochs}ep n={e.stat.n}", (i, e.stat.mean), textcoords="offset points", xytext=(0, 3),
            ha="center", fontsize="xx-small",
        )  # fmt: skip
    right.set_ylabel(f"{advice.metric} (± std over seeds)")
    right.set_title(
        f"Candidates at their last rung (faded: stopped early); recommended: {advice.decision.chosen.key}",
        fontsize="medium",
    )
    return fig


def write(advice: Advice, folder: Path) -> list[Path]:
    """advice.md, advice.json and advice.png into ``folder``; returns their paths."""
    from translearn.storage import write_atomic, write_json

    md, js, png = folder / MD_FILE, folder / JSON_FILE, folder / PNG_FILE
    write_atomic(md, advice.markdown())
    write_json(js, advice.as_json())
    figure(advice).savefig(png)
    return [md, js, png]
