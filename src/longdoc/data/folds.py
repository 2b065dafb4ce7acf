"""Cross-validation folds: which documents each fold holds out, reproducible with a seed.

    fold_of = assign_folds(5, labels=[("a",), ("b",), ...], seed=42)   # fold index of every document
    train, dev = dev_split(train_indices, labels, share=0.2, seed=42)  # the inner dev split of a fold

How the documents are dealt out:

- single-label: stratified (scikit-learn's StratifiedKFold): every fold has the class proportions
  of the whole;
- multi-label: iterative stratification (Sechidis, Tsoumakas and Vlahavas, "On the stratification
  of multi-label data", ECML PKDD 2011): the rarest label is dealt first, each of its documents to
  the fold that still wants most of that label, so rare labels spread evenly where a random split
  leaves some folds without them;
- with groups (documents of one group never cross folds): StratifiedGroupKFold for single-label,
  GroupKFold otherwise;
- no labels (question answering, summarization): plain shuffled KFold (grouped when groups are given).

A fold trains on the others, so every class must be in every fold's held-out part and in the rest:
more folds than the smallest class (or its groups) allows is an error naming that class.
No torch here; scikit-learn is imported inside the functions that use it.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Sequence

LabelSets = Sequence[Sequence[str]]  # the labels of each document (one for single-label)


def fold_method(labels: LabelSets | None, groups: Sequence[str] | None) -> str:
    """How `assign_folds` deals these documents out (a name for reports)."""
    multi_label = labels is not None and any(len(document) != 1 for document in labels)
    if groups is not None:
        return "stratified-grouped" if labels is not None and not multi_label else "grouped"
    if labels is None:
        return "kfold"
    return "iterative-stratification" if multi_label else "stratified"


def check_folds(folds: int, labels: LabelSets | None = None, groups: Sequence[str] | None = None,
                group_column: str = "group") -> None:
    """A ValueError saying what to change when these documents cannot make `folds` folds."""
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"--folds {folds}: cross-validation needs at least 2 folds (5 or 10 are usual)")
    count = len(labels) if labels is not None else len(groups) if groups is not None else None
    if groups is not None:
        distinct = len(set(groups))
        if distinct < folds:
            raise ValueError(f"only {distinct} distinct values in the group column {group_column!r}, and documents "
                             f"of one group never cross folds: give --folds {distinct} or fewer")
    if labels is None:
        return
    if count is not None and count < folds:
        raise ValueError(f"{count} documents cannot make {folds} folds: give --folds {count} or fewer")
    if groups is None:
        holders = Counter(label for document in labels for label in set(document))
        noun, where = "document", ""
    else:  # a class can only be in as many folds as it has groups
        by_label = defaultdict(set)
        for document, group in zip(labels, groups):
            for label in document:
                by_label[label].add(group)
        holders = Counter({label: len(members) for label, members in by_label.items()})
        noun, where = "group", f" (column {group_column!r})"
    label, smallest = min(holders.items(), key=lambda item: (item[1], item[0]))
    if smallest < folds:
        plural = "s" if smallest != 1 else ""
        raise ValueError(f"class {label!r} has only {smallest} {noun}{plural}{where}: with {folds} folds some fold "
                         f"would hold none of it out, or train without it; give --folds {max(smallest, 2)} or fewer, "
                         f"or merge or drop that class")


def assign_folds(folds: int, count: int | None = None, labels: LabelSets | None = None,
                 groups: Sequence[str] | None = None, seed: int = 42, group_column: str = "group") -> list[int]:
    """The fold (0 .. folds-1) of each document, the same for the same inputs and seed.
    Give `labels` (one tuple per document) to stratify and `groups` to keep groups whole;
    `count` documents when there is neither."""
    check_folds(folds, labels, groups, group_column)
    count = len(labels) if labels is not None else len(groups) if groups is not None else count
    if count is None:
        raise ValueError("assign_folds needs the labels, the groups or the count of the documents")
    if count < folds:
        raise ValueError(f"{count} documents cannot make {folds} folds: give --folds {count} or fewer")
    method = fold_method(labels, groups)
    if method == "iterative-stratification":
        proportions = [1 / folds] * folds
        return iterative_stratification(labels, proportions, random.Random(seed))
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    single = [document[0] for document in labels] if labels is not None and method != "grouped" else None
    placeholder = [0] * count
    if method == "stratified":
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(placeholder, single)
    elif method == "stratified-grouped":
        splits = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(placeholder, single, groups)
    elif method == "grouped":
        splits = GroupKFold(folds, shuffle=True, random_state=seed).split(placeholder, groups=groups)
    else:
        splits = KFold(folds, shuffle=True, random_state=seed).split(placeholder)
    fold_of = [-1] * count
    for fold, (_, held_out) in enumerate(splits):
        for index in held_out:
            fold_of[index] = fold
    return fold_of


def iterative_stratification(labels: LabelSets, proportions: Sequence[float], rng: random.Random) -> list[int]:
    """Sechidis et al. (2011), Algorithm 1: the subset (index into `proportions`) of every document.
    The label with the fewest documents left is dealt first; each of its documents goes to the subset
    that still wants most of that label (ties: the one that wants most documents, then at random)."""
    order = list(range(len(labels)))
    rng.shuffle(order)  # the seed decides ties and who goes first
    wanted = [share * len(labels) for share in proportions]  # documents each subset still wants
    per_label = Counter(label for document in labels for label in set(document))
    wanted_label = {label: [share * total for share in proportions] for label, total in per_label.items()}
    remaining = {label: [] for label in per_label}
    for index in order:
        for label in set(labels[index]):
            remaining[label].append(index)
    subset_of = [-1] * len(labels)
    subsets = range(len(proportions))

    def place(index: int, wants: list[float]) -> None:
        best = max(wants[s] for s in subsets)
        tied = [s for s in subsets if wants[s] == best]
        most = max(wanted[s] for s in tied)
        chosen = rng.choice([s for s in tied if wanted[s] == most])
        subset_of[index] = chosen
        wanted[chosen] -= 1
        for label in set(labels[index]):
            wanted_label[label][chosen] -= 1

    while True:
        for label in remaining:
            remaining[label] = [i for i in remaining[label] if subset_of[i] < 0]
        left = {label: members for label, members in remaining.items() if members}
        if not left:
            break
        fewest = min(len(members) for members in left.values())
        label = rng.choice(sorted(name for name, members in left.items() if len(members) == fewest))
        for index in left[label]:
            place(index, wanted_label[label])
    for index in order:  # documents without any label: where most documents are still wanted
        if subset_of[index] < 0:
            place(index, wanted)
    return subset_of


def dev_split(indices: Sequence[int], labels: LabelSets | None = None, groups: Sequence[str] | None = None,
              share: float = 0.2, seed: int = 42) -> tuple[list[int], list[int]]:
    """(train, dev) of `indices` (positions into `labels` / `groups`, which cover all documents):
    about `share` of them for dev, stratified like the folds, groups kept whole; every label of a dev
    document is also in train (a document whose label would be dev-only stays in train)."""
    if not 0 < share < 1:
        raise ValueError(f"--dev-share {share}: give the share of each fold's training documents kept for model "
                         f"selection, between 0 and 1 (e.g. 0.2)")
    indices = list(indices)
    rng = random.Random(seed)
    if groups is not None:
        units = defaultdict(list)
        for index in indices:
            units[groups[index]].append(index)
        names = sorted(units)
        unit_labels = [tuple(sorted({l for i in units[n] for l in labels[i]})) for n in names] if labels else None
    else:
        names, units = indices, {index: [index] for index in indices}
        unit_labels = [tuple(labels[i]) for i in indices] if labels else None
    if unit_labels is not None:
        side = iterative_stratification(unit_labels, [share, 1 - share], rng)
    else:
        shuffled = list(names)
        rng.shuffle(shuffled)
        cut = round(share * len(shuffled))
        chosen = set(shuffled[:cut])
        side = [0 if name in chosen else 1 for name in names]
    dev = [index for name, s in zip(names, side) if s == 0 for index in units[name]]
    train = [index for name, s in zip(names, side) if s == 1 for index in units[name]]
    if labels is not None:
        train, dev = _labels_also_in_train(train, dev, labels, groups)
    if not dev or not train:
        raise ValueError(f"{len(indices)} training documents leave none for the dev split (share {share}): give more "
                         f"documents, fewer folds or another --dev-share")
    return sorted(train), sorted(dev)


def _labels_also_in_train(train: list[int], dev: list[int], labels: LabelSets,
                          groups: Sequence[str] | None) -> tuple[list[int], list[int]]:
    """Dev documents (their whole group) holding a label that no training document has go back to train:
    a model cannot be scored on a label it was never shown."""
    while True:
        known = {label for index in train for label in labels[index]}
        unknown = [index for index in dev if not set(labels[index]) <= known]
        if not unknown:
            return train, dev
        back = {groups[unknown[0]]} if groups is not None else None
        moved = [i for i in dev if (groups[i] in back if back else i == unknown[0])]
        train = train + moved
        dev = [i for i in dev if i not in set(moved)]


def label_proportions(labels: LabelSets, members: Sequence[int]) -> dict[str, float]:
    """Share of the documents `members` that hold each label (for checking a split)."""
    counts = Counter(label for index in members for label in set(labels[index]))
    return {label: counts[label] / max(len(members), 1) for label in sorted({l for d in labels for l in d})}
