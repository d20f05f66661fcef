"""Prepare once: find a dataset's files in its publisher's layout, verify each, split, write the index.

Training reads only the index, so no epoch ever meets a file that does not decode. The pipeline:

1. **scan** (per dataset, :meth:`PreparedDataModule.scan`, with :mod:`translearn.data.scan`): the image
   files of the layout, each with its class and, where the layout fixes it, its split. Stray entries
   (``056.dog/greg/``, ``RENAME2``, the nested ``simpsons_dataset/simpsons_dataset/``) are set aside as
   *ignored* and listed in the report.
2. **select** the classes: ``dataset.classes`` (``all``, a preset, or a list) then ``dataset.top_n``.
   Empty class folders are dropped with a warning.
3. **verify** (:mod:`translearn.data.verify`) every selected file once: not empty, decodes completely,
   converts to RGB. Results are cached by (size, mtime), so preparing again re-verifies only what
   changed. Files that fail are *excluded* and listed with the reason; nothing is deleted or rewritten.
4. **split** (:mod:`translearn.data.splits`) and **write** the index and a report.

Nothing is written into the data root, which may be read-only: the index, the verification cache and
the report live in ``index_dir`` (``${paths.cache_dir}/index`` in the configs), in one folder per
dataset and absolute root (``<name>-<hash of the resolved root>``). ``translearn.train`` builds the
data module first and gives the model the index's class count and names, so the head can never
disagree with the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from filelock import FileLock
from omegaconf import DictConfig, ListConfig, OmegaConf

from translearn.data.base import SPLITS, DatasetIndex, ImageDataModule
from translearn.data.scan import Scan
from translearn.data.splits import SPLIT_RULES, Entry, assign_splits, natural_key
from translearn.data.verify import verify_files
from translearn.errors import UserError
from translearn.log import log, warn_once
from translearn.storage import disk_full, no_space, write_atomic, write_json

INDEX_VERSION = 1

SHOWN = 12  # names listed in one line before "... (N in all)"


def names_shown(names: list[str], limit: int = SHOWN) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _warn_case_twins(dataset: str, classes: list[str]) -> None:
    """Classes whose names differ only in case (``cat`` and ``Cat``): two classes here, one folder on
    macOS and Windows, and almost always one class split in two by mistake."""
    groups: dict[str, list[str]] = {}
    for name in classes:
        groups.setdefault(name.casefold(), []).append(name)
    twins = [names for names in groups.values() if len(names) > 1]
    if twins:
        shown = "; ".join(" and ".join(names) for names in twins[:3])
        more = f" ({len(twins)} groups in all)" if len(twins) > 3 else ""
        warn_once(
            f"{dataset}: class folders that differ only in case are separate classes: {shown}{more}; "
            "merge them if they are one class (they would be one folder on macOS and Windows)"
        )


# --- class selection --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return (
        OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value
    )


def select_classes(
    name: str,
    root: Path,
    counts: dict[str, int],
    wanted: Sequence[str] | None,
    top_n: int | None,
    match=None,
) -> list[str]:
    """The classes to train on: ``wanted`` (None = all non-empty), then the ``top_n`` largest.

    ``counts`` maps every class folder to its number of image files (0 for an empty folder).
    ``match(requested, available)`` resolves a requested name to a folder name (e.g. ``dog`` → ``056.dog``).
    """
    empty = sorted(c for c, n in counts.items() if n == 0)
    if wanted is None:
        chosen = sorted((c for c, n in counts.items() if n > 0), key=natural_key)
        for cls in empty:
            warn_once(f"{name}: class folder '{cls}' under {root} holds no images; it is left out")
    else:
        chosen, missing = [], []
        for requested in wanted:
            found = (
                match(str(requested), counts)
                if match
                else (str(requested) if str(requested) in counts else None)
            )
            if found is None:
                missing.append(str(requested))
            elif found not in chosen:
                chosen.append(found)
        if missing:
            available = sorted(counts, key=natural_key)
            shown = ", ".join(available[:12]) + (
                f", ... ({len(available)} in all)" if len(available) > 12 else ""
            )
            raise UserError(
                f"{name}: dataset.classes names {', '.join(missing)}, not found under {root}; "
                f"available: {shown}"
            )
        bare = [c for c in chosen if counts[c] == 0]
        if bare:
            raise UserError(
                f"{name}: class folder(s) {', '.join(bare)} under {root} hold no images; add images or "
                "leave them out of dataset.classes"
            )
        chosen = sorted(chosen, key=natural_key)
    if top_n is not None:
        if top_n < 2 or top_n > len(chosen):
            raise UserError(
                f"{name}: dataset.top_n={top_n} must be between 2 and the {len(chosen)} selected classes"
            )
        largest = sorted(chosen, key=lambda c: (-counts[c], natural_key(c)))[:top_n]
        chosen = sorted(largest, key=natural_key)
    if len(chosen) < 2:
        inner = Path(root) / chosen[0] if chosen else None
        wrapper = (  # ROOT/mydata/{train,val}/...: the root is one folder too high
            f"; if {inner} is the dataset, set dataset.root={inner}"
            if inner is not None and inner.is_dir() and any(p.is_dir() for p in inner.iterdir())
            else ""
        )
        raise UserError(
            f"{name}: {len(chosen)} class(es) with images under {root} ({', '.join(chosen) or 'none'}); "
            f"a classifier needs at least 2 — check dataset.root and dataset.classes{wrapper}"
        )
    return chosen


# --- the prepared data module -----------------------------------------------------------------------


@dataclass
class Prepared:
    """What one preparation found and wrote."""

    classes: list[str]
    counts: dict[str, int]
    per_class: dict[str, dict[str, int]]
    usable: int
    excluded: list[tuple[str, str]]
    ignored: list[tuple[str, str]]
    checked: int
    index_path: Path
    report_path: Path
    digest: str


def default_index_dir() -> Path:
    cache = os.environ.get("TRANSLEARN_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "translearn"
    )
    return Path(cache) / "index"


class PreparedDataModule(ImageDataModule):
    """A dataset read in its publisher's layout, verified and indexed once, then trained from the index.

    Subclasses say where the files are (:meth:`scan`), how the layout looks (``LAYOUT``) and how to get
    it (``HOW_TO_GET``, :meth:`download`). Shared knobs: ``split`` (see :mod:`translearn.data.splits`),
    ``val_fraction``/``test_fraction`` (``split=random``), ``classes`` (``all``, a preset, or a list),
    ``top_n`` (keep the N classes with the most images) and ``index_dir`` (where the index is kept).
    """

    DATASET: ClassVar[str] = "images"
    LAYOUT: ClassVar[str] = "ROOT/<class>/<image>"
    HOW_TO_GET: ClassVar[str] = "put the images there"
    DEFAULT_SPLIT: ClassVar[str] = "seed2017"

    def __init__(
        self,
        root: str | Path,
        index_dir: str | Path | None = None,
        split: str | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        classes: str | Sequence[str] = "all",
        top_n: int | None = None,
        **kwargs: Any,
    ):
        if root is None or str(root) in ("", "???"):
            raise UserError(f"{self.DATASET}: set dataset.root=DIR, a folder laid out as {self.LAYOUT}")
        kwargs.setdefault("name", self.DATASET)
        super().__init__(root, **kwargs)
        self.index_dir = Path(str(index_dir)).expanduser() if index_dir else default_index_dir()
        self.split = split or self.DEFAULT_SPLIT
        if self.split not in self.split_rules():
            raise UserError(
                f"{self.name}: dataset.split must be one of {', '.join(self.split_rules())}, "
                f"got '{self.split}'"
            )
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.classes_wanted = _plain(classes)
        try:
            self.top_n = None if top_n is None else int(top_n)
        except (TypeError, ValueError):
            raise UserError(
                f"{self.name}: dataset.top_n must be a whole number or null, got '{top_n}'"
            ) from None
        self.digest = ""
        self._discovered: tuple[Scan, list[str]] | None = None  # the disk is read on first use, not here

    @property
    def selected_classes(self) -> list[str]:
        """The classes the index will hold, in label order (found on disk on first use)."""
        if self._discovered is None:
            self._discovered = self.discover()
        return self._discovered[1]

    @property
    def _scan(self) -> Scan:
        if self._discovered is None:
            self._discovered = self.discover()
        return self._discovered[0]

    # --- what each dataset defines ----------------------------------------------------------------

    def scan(self) -> Scan:
        """Every image of the layout under ``self.root``, with its class and any fixed split."""
        raise NotImplementedError

    def split_rules(self) -> tuple[str, ...]:
        return SPLIT_RULES

    def class_preset(self, name: str) -> list[str] | None:
        """A named class list for ``dataset.classes`` (e.g. simpsons' ``seed2017``), or None."""
        return None

    def match_class(self, requested: str, available: dict[str, int]) -> str | None:
        return requested if requested in available else None

    def split_entries(self, entries: list[Entry]) -> dict[str, list[Entry]]:
        return assign_splits(entries, self.split, self.val_fraction, self.test_fraction, self.seed)

    def split_name(self) -> str:
        """The split rule as the report names it."""
        return self.split

    @classmethod
    def download(cls, root: Path) -> None:
        """Fetch the dataset into ``root`` where that is possible; otherwise say how to get it."""
        raise UserError(f"{cls.DATASET} cannot be downloaded automatically; {cls.how_to_get(root)}")

    @classmethod
    def how_to_get(cls, root: Path) -> str:
        return cls.HOW_TO_GET.format(root=root, name=cls.DATASET)

    # --- discovery: cheap, no decoding ------------------------------------------------------------

    def check_root(self) -> None:
        self.check_folder(self.name, self.root)

    @classmethod
    def check_folder(cls, name: str, root: Path) -> None:
        """``root`` exists, is a folder and can be read: also checked for every cell of a grid up front
        (``translearn.config.check_data_root``), in the same words."""
        if not root.exists():
            raise UserError(f"{name}: dataset.root {root} does not exist; {cls.how_to_get(root)}")
        if not root.is_dir():
            raise UserError(f"{name}: dataset.root {root} is not a folder; expected {cls.LAYOUT}")
        if not os.access(root, os.R_OK | os.X_OK):
            raise UserError(
                f"{name}: dataset.root {root} is not readable; fix its permissions (chmod u+rx) or "
                "point dataset.root at a readable copy"
            )

    def layout_error(self, detail: str) -> UserError:
        return UserError(
            f"{self.name}: {detail} under dataset.root {self.root}; expected layout {self.LAYOUT}"
        )

    def discover(self) -> tuple[Scan, list[str]]:
        """(the layout's scan, the selected classes): what the index will hold, before any decoding."""
        self.check_root()
        scan = self.scan()
        if not scan.entries and not scan.class_dirs:
            raise self.layout_error("no class folders with images found")
        # Classes come from the training layout; a test-only name (Simpsons' test set) makes no class.
        counts = Counter(dict.fromkeys(scan.class_dirs, 0))
        counts.update(e.cls for e in scan.entries if e.split != "test")
        wanted = self.classes_wanted
        if isinstance(wanted, str):
            wanted = None if wanted == "all" else self.class_preset(wanted) or [wanted]
        classes = select_classes(self.name, self.root, counts, wanted, self.top_n, self.match_class)
        _warn_case_twins(self.name, classes)
        return scan, classes

    def check_every_class_trains(self, scan: Scan, classes: list[str], folders: dict[str, str]) -> None:
        """Under the publisher's own split folders, a selected class with no training images is an error:
        the model could never predict it, silently capping validation accuracy.

        ``folders``: each split's folder name as the user sees it (``Validation`` for val).
        """
        train, val = folders.get("train", "train"), folders.get("val", "val")
        trained = {e.cls for e in scan.entries if e.split == "train"}
        untrained = [c for c in classes if c not in trained]
        if not untrained:
            return
        where = Counter((e.cls, folders.get(e.split, e.split)) for e in scan.entries if e.cls in untrained)
        shown = ", ".join(
            f"{c} ({', '.join(f'{n} in {top}/' for (cls, top), n in sorted(where.items()) if cls == c)})"
            for c in untrained[:5]
        ) + (f" and {len(untrained) - 5} more" if len(untrained) > 5 else "")
        keep = [c for c in classes if c in trained]
        listed = sorted(trained, key=natural_key)
        leave_out = (
            f"dataset.classes=[{','.join(keep)}]" if len(keep) <= SHOWN else "dataset.classes (those to keep)"
        )
        raise UserError(
            f"{self.name}: {len(untrained)} class(es) have no images in {train}/ and could never be "
            f"predicted, capping validation accuracy: {shown}; add their training images or fix misspelt "
            f"folder names ({train}/ holds {names_shown(listed)}), leave them out with {leave_out}, or pool "
            f"{train}/ and {val}/ with dataset.split=random"
        )

    # --- preparation --------------------------------------------------------------------------------

    @property
    def index_folder(self) -> Path:
        key = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:12]
        return self.index_dir / f"{self.name}-{key}"

    def settings(self) -> dict[str, Any]:
        """Everything the index depends on besides the files; a change gives a separate index file."""
        out: dict[str, Any] = {"split": self.split, "classes": self.selected_classes}
        if self.split not in ("seed2017", "folders"):
            out.update(val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.seed)
        return out

    @property
    def index_path(self) -> Path:
        blob = json.dumps([INDEX_VERSION, self.settings()], sort_keys=True).encode()
        return self.index_folder / f"index-{self.split}-{hashlib.sha1(blob).hexdigest()[:10]}.json"

    @property
    def report_path(self) -> Path:
        return self.index_path.with_name(self.index_path.stem.replace("index-", "report-") + ".txt")

    def _writable_index_folder(self) -> Path:
        folder = self.index_folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise UserError(
                f"{self.name}: cannot write the dataset index in {folder} ({exc.strerror}); set "
                "paths.cache_dir=DIR (or TRANSLEARN_CACHE) to a writable folder"
            ) from None
        return folder

    def prepare(self, reverify: bool = False) -> Prepared:
        """Scan, verify (only what changed), split and write the index and report. Safe across processes.

        A full disk is one line naming the folder; each file is written whole or not at all.
        """
        folder = self._writable_index_folder()
        try:
            return self._prepare(folder, reverify)
        except OSError as exc:
            if not disk_full(exc):
                raise
            raise UserError(f"{self.name}: {no_space('dataset index', folder, exc)}") from None

    def _prepare(self, folder: Path, reverify: bool) -> Prepared:
        with FileLock(str(folder / "prepare.lock")):
            self._discovered = self.discover()  # the files may have changed since the last look
            selected = set(self.selected_classes)
            entries = [e for e in self._scan.entries if e.cls in selected]
            verified = verify_files(self.root, [e.rel for e in entries], folder / "files.json", reverify)
            excluded = [(e.rel, verified.reasons[e.rel]) for e in entries if verified.reasons[e.rel]]
            usable = [e for e in entries if verified.reasons[e.rel] is None]
            split = self.split_entries(usable)
            label = {c: i for i, c in enumerate(self.selected_classes)}
            samples = {s: [[e.rel, label[e.cls]] for e in split[s]] for s in SPLITS}
            digest = hashlib.sha1(json.dumps(samples).encode()).hexdigest()[:10]
            per_class = {c: dict.fromkeys(SPLITS, 0) for c in self.selected_classes}
            for s in SPLITS:
                for e in split[s]:
                    per_class[e.cls][s] += 1
            result = Prepared(
                classes=list(self.selected_classes),
                counts={s: len(samples[s]) for s in SPLITS},
                per_class=per_class,
                usable=len(usable),
                excluded=excluded,
                ignored=list(self._scan.ignored),
                checked=verified.checked,
                index_path=self.index_path,
                report_path=self.report_path,
                digest=digest,
            )
            write_atomic(self.report_path, self.report(result))
            unseen = [c for c, n in per_class.items() if sum(n.values()) and not n["val"]]
            if unseen:
                shown = ", ".join(f"{c} ({sum(per_class[c].values())} images)" for c in unseen[:5])
                more = f" and {len(unseen) - 5} more" if len(unseen) > 5 else ""
                warn_once(
                    f"{self.name}: {len(unseen)} class(es) get no validation images under "
                    f"split={self.split_name()}: {shown}{more}; validation accuracy says nothing about them"
                )
            if not usable:
                raise UserError(
                    f"{self.name}: no readable images under {self.root} ({len(excluded)} files failed "
                    f"verification); see {self.report_path}"
                )
            lost = [c for c, n in per_class.items() if not sum(n.values())]
            if lost:
                raise UserError(
                    f"{self.name}: every image of class {', '.join(lost)} failed verification (see "
                    f"{self.report_path}); fix those files or leave the class out with dataset.classes"
                )
            write_json(
                self.index_path,
                {
                    "version": INDEX_VERSION,
                    "dataset": self.name,
                    "root": str(self.root.resolve()),
                    "settings": self.settings(),
                    "classes": self.selected_classes,
                    "digest": digest,
                    "samples": samples,
                    "excluded": excluded,
                },
            )
        return result

    def report(self, r: Prepared) -> str:
        """The human-readable account of one preparation: counts, per-class splits, what was left out."""
        width = max([len(c) for c in r.classes] + [5])
        lines = [
            f"translearn data report — {self.name}",
            f"root      {self.root.resolve()}",
            f"index     {r.index_path}",
            f"prepared  {time.strftime('%Y-%m-%d %H:%M:%S')}",
            f"files     {r.usable + len(r.excluded)} images found, {r.usable} usable, {len(r.excluded)} "
            f"excluded (failed verification), {len(r.ignored)} entr{'y' if len(r.ignored) == 1 else 'ies'} "
            "ignored (see below)",
            f"split     {self.split_name()}: "
            + " / ".join(f"{s} {r.counts[s]}" for s in SPLITS if r.counts[s]),
            f"classes   {len(r.classes)}",
            "",
            f"{'class':<{width}}  {'train':>6} {'val':>6} {'test':>6}",
        ]
        lines += [
            f"{c:<{width}}  {n['train']:>6} {n['val']:>6} {n['test']:>6}" for c, n in r.per_class.items()
        ]
        lines += ["", f"excluded files ({len(r.excluded)}; left on disk untouched, never used for training):"]
        lines += [f"  {rel}\t{why}" for rel, why in r.excluded] or ["  none"]
        lines += ["", f"ignored entries ({len(r.ignored)}):"]
        lines += [f"  {rel}\t{why}" for rel, why in r.ignored] or ["  none"]
        return "\n".join(lines) + "\n"

    def summary(self, r: Prepared) -> str:
        split = " / ".join(f"{s} {r.counts[s]}" for s in SPLITS if r.counts[s])
        return (
            f"prepared {self.name}: {len(r.classes)} classes, {split} ({self.split_name()}); "
            f"{r.usable} images usable, {len(r.excluded)} excluded, {len(r.ignored)} ignored, "
            f"{r.checked} verified now; "
            f"report {r.report_path}"
        )

    # --- Lightning hooks ----------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Lightning runs this once per node (local rank 0) before ``setup`` on every rank."""
        if self._index is None:  # fit prepares; the test after it reuses the same index
            log.info(self.summary(self.prepare()))

    @property
    def index_digest(self) -> str | None:
        self.index  # noqa: B018 (loading the index reads its digest)
        return self.digest or None

    def load_index(self) -> DatasetIndex | None:
        path = self.index_path
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("version") != INDEX_VERSION or data.get("classes") != self.selected_classes:
            return None
        self.digest = data.get("digest", "")
        samples = {
            s: [(str(self.root / rel), int(label)) for rel, label in data["samples"].get(s, [])]
            for s in SPLITS
        }
        return DatasetIndex(list(data["classes"]), samples)

    def build_index(self) -> DatasetIndex:
        index = self.load_index()
        if index is None:  # used without a Trainer, or the index was removed: prepare now
            self.prepare()
            index = self.load_index()
        if index is None:
            raise UserError(f"{self.name}: could not read the index {self.index_path}; rerun prepare")
        return index

    def setup(self, stage: str | None = None) -> None:
        first = not self.datasets
        super().setup(stage)
        if first:
            counts = " / ".join(f"{s} {self.index.count(s)}" for s in SPLITS if self.index.count(s))
            world = self.trainer.world_size if self.trainer is not None else 1
            rank = f" rank {self.trainer.global_rank}/{world}" if world > 1 else ""
            classes = len(self.index.classes)
            log.info(f"{self.name}{rank}: {classes} classes, {counts} (index {self.digest})")


# python -m translearn.data.prepare ... did nothing: it runs translearn.data's prepare command.
if __name__ == "__main__":
    import sys

    from translearn.data.__main__ import main

    sys.exit(main(["prepare", *sys.argv[1:]]))
