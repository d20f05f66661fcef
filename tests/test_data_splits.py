"""Split rules: seed2017 reproduces the study's numbers; random is stratified, seeded and stable."""

from __future__ import annotations

import pytest

from translearn.data.splits import Entry, assign_splits, natural_key, seed2017_train_count
from translearn.errors import UserError

# Per-class image counts of the study's 20 Simpsons characters in the Kaggle archive (19548 in all).
SIMPSONS_20 = {
    "homer_simpson": 2246,
    "ned_flanders": 1454,
    "moe_szyslak": 1452,
    "lisa_simpson": 1354,
    "bart_simpson": 1342,
    "marge_simpson": 1291,
    "krusty_the_clown": 1206,
    "principal_skinner": 1194,
    "charles_montgomery_burns": 1193,
    "milhouse_van_houten": 1079,
    "chief_wiggum": 986,
    "abraham_grampa_simpson": 913,
    "sideshow_bob": 877,
    "apu_nahasapeemapetilon": 623,
    "kent_brockman": 498,
    "comic_book_guy": 469,
    "edna_krabappel": 457,
    "nelson_muntz": 358,
    "lenny_leonard": 310,
    "mayor_quimby": 246,
}


def entries(counts: dict[str, int], pattern: str = "{cls}/{i}.jpg") -> list[Entry]:
    return [Entry(pattern.format(cls=c, i=i), c) for c, n in counts.items() for i in range(n)]


def test_seed2017_matches_hand_computed_split() -> None:
    # Class a: 7 files, unpadded numbers, listed shuffled. round(0.8*7)=round(5.6)=6 to train, in
    # numeric order: 1 2 3 9 10 11 -> train, 20 -> val. Class b: 3 files, round(2.4)=2: x, y -> train.
    files = [f"a/{n}.jpg" for n in (20, 3, 1, 11, 9, 2, 10)] + ["b/z.jpg", "b/x.jpg", "b/y.jpg"]
    split = assign_splits([Entry(f, f.split("/")[0]) for f in files], "seed2017")
    assert [e.rel for e in split["train"]] == [
        "a/1.jpg",
        "a/2.jpg",
        "a/3.jpg",
        "a/9.jpg",
        "a/10.jpg",
        "a/11.jpg",
        "b/x.jpg",
        "b/y.jpg",
    ]
    assert [e.rel for e in split["val"]] == ["a/20.jpg", "b/z.jpg"]
    assert split["test"] == []


def test_seed2017_reproduces_the_studys_simpsons_numbers() -> None:
    assert sum(SIMPSONS_20.values()) == 19548
    split = assign_splits(entries(SIMPSONS_20), "seed2017")
    assert (len(split["train"]), len(split["val"])) == (15638, 3910)


def test_seed2017_gives_dogs_vs_cats_10000_and_2500_per_class() -> None:
    assert seed2017_train_count(12500) == 10000
    split = assign_splits(entries({"cat": 12500, "dog": 12500}, "train/{cls}.{i}.jpg"), "seed2017")
    assert len(split["train"]) == 20000 and len(split["val"]) == 5000
    # Numeric order: cat.0 .. cat.9999 train, cat.10000 .. cat.12499 val.
    assert {e.rel for e in split["val"] if e.cls == "cat"} == {
        f"train/cat.{i}.jpg" for i in range(10000, 12500)
    }


@pytest.mark.parametrize(("n", "train"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 4), (7, 6), (8, 6), (10, 8)])
def test_seed2017_rounds_each_class_to_the_nearest(n: int, train: int) -> None:
    assert seed2017_train_count(n) == train


def test_random_split_is_stratified_seeded_and_deterministic() -> None:
    data = entries({"a": 20, "b": 10, "c": 5})
    one = assign_splits(data, "random", val_fraction=0.2, test_fraction=0.1, seed=3)
    again = assign_splits(list(reversed(data)), "random", val_fraction=0.2, test_fraction=0.1, seed=3)
    other = assign_splits(data, "random", val_fraction=0.2, test_fraction=0.1, seed=4)
    assert one == again
    assert one["val"] != other["val"]
    per_class = {s: {c: sum(e.cls == c for e in one[s]) for c in "abc"} for s in one}
    assert per_class["val"] == {"a": 4, "b": 2, "c": 1}
    assert per_class["test"] == {"a": 2, "b": 1, "c": 0}  # round(0.5) == 0
    assert per_class["train"] == {"a": 14, "b": 7, "c": 4}


def test_random_split_of_one_class_ignores_the_others() -> None:
    alone = assign_splits(entries({"a": 20}), "random", seed=1)
    together = assign_splits(entries({"a": 20, "b": 9}), "random", seed=1)
    assert [e for e in together["val"] if e.cls == "a"] == alone["val"]


@pytest.mark.parametrize("change", ["add", "remove", "add to every class"])
def test_random_split_stays_put_when_a_file_is_added_or_removed(change: str) -> None:
    """One file added to a class of 500 moved 58 of them between train and val (the shuffle's permutation
    depends on n); eval of an earlier run then scored images it had trained on. Now at most the files at
    the split boundaries move, and no training image enters val unless val grows."""

    def where(data: list[Entry]) -> dict[str, str]:
        out = assign_splits(data, "random", val_fraction=0.2, test_fraction=0.1, seed=0)
        return {e.rel: split for split, members in out.items() for e in members}

    data = entries({"a": 500, "b": 300})
    before = where(data)
    if change == "add":
        after = where([*data, Entry("a/new_photo.jpg", "a")])
    elif change == "remove":
        after = where([e for e in data if e.rel != data[7].rel])
    else:
        after = where([*data, Entry("a/new.jpg", "a"), Entry("b/new.jpg", "b")])
    moved = [rel for rel in before if rel in after and before[rel] != after[rel]]
    assert len(moved) <= 2 * (2 if change == "add to every class" else 1), moved
    assert sum(before[r] == "train" and after[r] == "val" for r in moved) <= 1


def test_fixed_splits_are_kept_under_every_rule() -> None:
    data = [*entries({"a": 5, "b": 5}), Entry("test/a_1.jpg", "a", "test")]
    for rule in ("seed2017", "random"):
        assert [e.rel for e in assign_splits(data, rule)["test"]] == ["test/a_1.jpg"]


def test_folders_rule_needs_folders() -> None:
    with pytest.raises(UserError, match="train/ and val/ folders"):
        assign_splits(entries({"a": 3, "b": 3}), "folders")


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.1), (0.6, 0.5), (1.2, 0.0)])
def test_bad_fractions_are_user_errors(val: float, test: float) -> None:
    with pytest.raises(UserError, match="val_fraction"):
        assign_splits(entries({"a": 3, "b": 3}), "random", val_fraction=val, test_fraction=test)


def test_natural_key_compares_numbers_as_numbers() -> None:
    assert sorted(["cat.10.jpg", "cat.2.jpg", "cat.1.jpg"], key=natural_key) == [
        "cat.1.jpg",
        "cat.2.jpg",
        "cat.10.jpg",
    ]
