"""Near-duplicate images: the same picture twice, perhaps resized, recompressed, brightened
or shifted by a pixel, which the folder check's comparison of file bytes does not see.

    found = near_duplicates(dataset)            # each image's most similar image in each split
    pairs(found)                                # the pairs above SIMILAR, most similar first
    groups(pairs(found), dataset)               # the same picture saved 2, 3 ... times
    in_split(found, "val", "train")             # val images with a near-duplicate in train
    without_copies(dataset)                     # train less the copies of val and test images

A validation image whose near-duplicate is in the training split measures memory rather
than generalisation (Barz and Denzler 2020, "Do we train on test data?", found one for
3.3% of CIFAR-10's test images); a pair filed under two classes is a labelling mistake in
one of them.

Each image becomes a fingerprint of two parts, each centred and of length 1: its mean
colours on an 8x8 grid (the layout), and its grey levels on a 16x16 grid less their means
on a 4x4 grid (the details: small objects on a plain sky share the layout but not these).
Two images' similarity is the product of their fingerprints: the mean of the two parts'
correlations, 1 for the same picture, unchanged by a change of brightness or contrast.
Every image is compared with every other, as matrix products in blocks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

# The Evaluate page's store of kept answers: written atomically, the newest few kept.
from core.evaluate import _keep, _read_arrays, _read_kept, progress_verbose

SIMILAR = 0.93  # this alike: the same picture (docs/BENCHMARKS.md, session 30)
BLOCK = 1024  # images compared with all others at once, at most
BLOCK_FLOATS = 2**26  # and at most this many similarities at once (256 MB)


def fingerprints(images: np.ndarray) -> np.ndarray:
    """Each image's layout (mean colours on an 8x8 grid) and details (16x16 grey levels
    less their 4x4 means), each centred and of length 1, side by side, over sqrt(2).

    Args:
        images: uint8 `(N, S, S, 3)`; below 16 pixels, enlarged to 16 or more first.

    Returns:
        float32 `(N, 448)`. A part with no pattern (an image of one colour, or without
        details) is zeros: it makes the image like no other.
    """
    images = np.asarray(images)
    if (factor := -(-16 // images.shape[1])) > 1:
        images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    fine = _grid_means(images, 16)
    if images.shape[1] % 16 == 0:  # the 8x8 grid's cells are 2x2 of the 16x16 grid's
        layout = fine.reshape(len(images), 8, 2, 8, 2, 3).mean(axis=(2, 4))
    else:
        layout = _grid_means(images, 8)
    layout = layout.reshape(len(images), -1)
    grey = fine.mean(axis=-1).reshape(len(images), 4, 4, 4, 4)
    details = (grey - grey.mean(axis=(2, 4), keepdims=True)).reshape(len(images), -1)
    return np.concatenate([_unit(layout), _unit(details)], axis=1) / np.float32(np.sqrt(2))


def _grid_means(images: np.ndarray, grid: int) -> np.ndarray:
    side = images.shape[1]
    if side % grid == 0 and (k := side // grid) <= 16:
        # Whole cells of k x k pixels: sums of strided slices in uint16 (k * k * 255 fits),
        # 3.6x faster than reduceat on CIFAR-10's 45,000 images (0.69 against 2.5 s).
        rows = sum(images[:, i::k].astype(np.uint16) for i in range(k))
        return sum(rows[:, :, j::k] for j in range(k)).astype(np.float32) / np.float32(k * k)
    edges = np.arange(grid) * side // grid
    cells = np.diff(np.append(edges, side)).astype(np.float32)
    sums = np.add.reduceat(np.add.reduceat(images, edges, axis=1, dtype=np.float32), edges, 2)
    return sums / cells[:, None, None] / cells[None, :, None]


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = rows - rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 1e-3)


def most_similar(
    queries: np.ndarray,
    pool: np.ndarray,
    same: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each query fingerprint, the most similar fingerprint of `pool`.

    Args:
        queries, pool: `fingerprints` `(N, D)` and `(M, D)`.
        same: `queries` is `pool`: an image is not its own match.
        progress: called with `(done, total)` after each block of products.

    Returns:
        `(index, similarity)`: int64 `(N,)` rows of `pool` and float32 `(N,)`
        (-1 and -inf when `pool` has nothing to offer). Of equally similar rows, the first.
    """
    return both_ways(queries, pool, same, progress)[:2]


def both_ways(
    a: np.ndarray,
    b: np.ndarray,
    same: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`most_similar` of `a` in `b` and of `b` in `a`, from one pass over the products of
    `a` and `b` (`same`, `a` is `b`: over the blocks on and above the diagonal only, half
    the products; an image's best is then the better of its row's and its column's).

    Returns:
        `(a_index, a_similarity, b_index, b_similarity)`.
    """
    a_best = np.full(len(a), -1, np.int64), np.full(len(a), -np.inf, np.float32)
    b_best = (
        a_best if same else (np.full(len(b), -1, np.int64), np.full(len(b), -np.inf, np.float32))
    )
    if not len(a) or not len(b):
        return *a_best, *b_best
    rows_at_once = max(1, min(BLOCK, BLOCK_FLOATS // len(b)))
    starts = range(0, len(a), rows_at_once)
    work = sum(len(b) - (start if same else 0) for start in starts)
    done = 0
    for start in starts:
        first = start if same else 0  # with `same`, earlier columns were earlier blocks' rows
        block = a[start : start + rows_at_once] @ b[first:].T
        if same:
            rows = np.arange(len(block))
            block[rows, start - first + rows] = -np.inf
        # The best of each row and column read at its argmax: a pass each over the block
        # instead of two (argmax, then max).
        row_best, column_best = block.argmax(1), _column_argmax(block)
        row_similarity = block[np.arange(len(block)), row_best]
        column_similarity = block[column_best, np.arange(block.shape[1])]
        _keep_best(a_best, slice(start, start + len(block)), first + row_best, row_similarity)
        _keep_best(b_best, slice(first, len(b)), start + column_best, column_similarity)
        done += block.shape[1]
        if progress:
            progress(done, work)
    return *a_best, *b_best


def _column_argmax(block: np.ndarray, width: int = 128) -> np.ndarray:
    """`block.argmax(0)`, `width` columns at a time: numpy copies the block transposed for
    it, which is cache-friendly in narrow strips (1024 x 45,000: 56 ms against 85 ms)."""
    index = np.empty(block.shape[1], np.int64)
    for at in range(0, block.shape[1], width):
        index[at : at + width] = block[:, at : at + width].argmax(0)
    return index


def _keep_best(best, at: slice, index: np.ndarray, similarity: np.ndarray) -> None:
    """Where `similarity` beats what `best` holds (or ties it with a lower index), it and
    `index` replace it."""
    old_index, old_similarity = best[0][at], best[1][at]
    better = (similarity > old_similarity) | (
        (similarity == old_similarity) & (index < old_index) & (index >= 0)
    )
    best[0][at] = np.where(better, index, old_index)
    best[1][at] = np.where(better, similarity, old_similarity)


def near_duplicates(dataset, progress: Callable[[int, int], None] | None = None) -> dict:
    """Each image's most similar image in every split of a `core.data.Dataset`.

    Args:
        dataset: its splits are compared with each other and with themselves.
        progress: called with `(done, total)` images' worth of comparisons.

    Returns:
        For splits `a` and `b`: `"a>b:index"` (int64, one per image of `a`: the most
        similar image of `b`, never itself) and `"a>b:similarity"` (float32).
    """
    prints = {name: fingerprints(x) for name, (x, _) in dataset.splits.items()}
    names = list(prints)
    images = sum(len(p) for p in prints.values())
    pairs_of_splits = [(a, b) for i, a in enumerate(names) for b in names[i:]]
    work = {
        (a, b): len(prints[a]) * len(prints[b]) / (2 if a == b else 1) for a, b in pairs_of_splits
    }
    found, done = {}, 0.0
    for a, b in pairs_of_splits:

        def step(n, total, base=done, share=work[a, b]):
            if progress:
                progress(round(images * (base + share * n / total) / sum(work.values())), images)

        a_index, a_similar, b_index, b_similar = both_ways(prints[a], prints[b], a == b, step)
        found[f"{a}>{b}:index"], found[f"{a}>{b}:similarity"] = a_index, a_similar
        found[f"{b}>{a}:index"], found[f"{b}>{a}:similarity"] = b_index, b_similar
        done += work[a, b]
    if progress:
        progress(images, images)
    return found


def in_split(found: dict, split: str, other: str, threshold: float = SIMILAR) -> np.ndarray:
    """bool `(N,)`: which images of `split` have a near-duplicate in `other`."""
    return found[f"{split}>{other}:similarity"] >= threshold


def without_copies(dataset, cache_dir=None, progress=None):
    """`dataset` less its training images that are near-duplicates of an image of another
    split, so that validation and test accuracy measure pictures the model never saw; the
    other splits are unchanged, so runs with and without compare on the same images.

    Args:
        dataset: a `core.data.Dataset`.
        cache_dir, progress: as for `kept_near_duplicates` (found once, then read).

    Returns:
        A `core.data.Dataset` whose `left_out` counts the training images it lacks.
    """
    if "train" not in dataset.splits:
        return dataset
    found = kept_near_duplicates(dataset, cache_dir, progress)
    copies = np.zeros(len(dataset.splits["train"][1]), bool)
    for split in dataset.splits:
        if split != "train":
            copies |= in_split(found, "train", split)
    keep = ~copies
    x, y = dataset.splits["train"]
    files, stored = dict(dataset.files), dict(dataset.stored)
    for per_file in (files, stored):
        if "train" in per_file:
            per_file["train"] = per_file["train"][keep]
    return replace(
        dataset,
        splits=dataset.splits | {"train": (x[keep], y[keep])},
        files=files,
        stored=stored,
        left_out=dataset.left_out + int(copies.sum()),
    )


@dataclass
class Pair:
    """Two images that are the same picture: `(split, index)` each, and how alike."""

    a: tuple[str, int]
    b: tuple[str, int]
    similarity: float

    def labels(self, dataset) -> tuple[int, int]:
        """The two images' labels in `dataset`."""
        return tuple(int(dataset.splits[split][1][i]) for split, i in (self.a, self.b))

    def names(self, dataset) -> tuple[str, str]:
        """The two images' files (an image folder), or `split #index`."""
        return tuple(
            str(dataset.files[split][i]) if split in dataset.files else f"{split} #{i}"
            for split, i in (self.a, self.b)
        )


def pairs(found: dict, threshold: float = SIMILAR) -> list[Pair]:
    """Every pair of images at least `threshold` alike where one is the other's most
    similar image in its split, once each, most similar first."""
    seen: dict[tuple, float] = {}
    for key in found:
        if not key.endswith(":index"):
            continue
        a, b = key.removesuffix(":index").split(">")
        index, similarity = found[key], found[f"{a}>{b}:similarity"]
        for i in np.flatnonzero(similarity >= threshold):
            ends = tuple(sorted([(a, int(i)), (b, int(index[i]))]))
            seen[ends] = float(similarity[i])
    return [Pair(a, b, s) for (a, b), s in sorted(seen.items(), key=lambda kv: -kv[1])]


def groups(pairs: list[Pair], dataset, threshold: float = SIMILAR) -> list[list[tuple[str, int]]]:
    """The pictures saved more than once: the images the pairs name, `(split, index)` each,
    joined wherever two of them are at least `threshold` alike, not only where one is the
    other's closest (CIFAR-10's white car, 37 images, came out as four groups of 11, 7, 6
    and 5 from closest pairs alone). An image with anything that alike has its closest that
    alike, so it is in a pair: comparing the pairs' images with each other finds every link.

    Args:
        pairs: `pairs(found, threshold)`, or some of them.
        dataset: the `core.data.Dataset` they index.

    Returns:
        Largest first, each in split and index order.
    """
    images = sorted({image for pair in pairs for image in (pair.a, pair.b)})
    if not images:
        return []
    at = {image: i for i, image in enumerate(images)}
    ends = np.array([(at[pair.a], at[pair.b]) for pair in pairs]).T
    prints = fingerprints(np.stack([dataset.splits[s][0][i] for s, i in images]))
    members: dict[int, list] = {}
    for image, label in zip(images, _joined(prints, threshold, *ends), strict=True):
        members.setdefault(int(label), []).append(image)
    return sorted(members.values(), key=lambda group: (-len(group), group[0]))


def _joined(prints: np.ndarray, threshold: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int64 `(N,)`: for each fingerprint, the first index of those it is joined to, through
    links `a[k]`-`b[k]` and any two at least `threshold` alike. Each pass gives every image
    the smallest label among its links' and then its label's label, until none changes
    (a few passes: no list of links, which a folder of 5,000 video frames would make huge).
    """
    n = len(prints)
    rows = max(1, min(BLOCK, BLOCK_FLOATS // n))
    blocks = range(0, n, rows)
    kept = [] if n * n <= BLOCK_FLOATS else None  # small enough: compared once, not per pass
    labels = np.arange(n)
    while True:
        new = labels.copy()
        np.minimum.at(new, a, labels[b])
        np.minimum.at(new, b, labels[a])
        for k, start in enumerate(blocks):
            if kept is not None and k < len(kept):
                alike = kept[k]
            else:
                alike = prints[start : start + rows] @ prints.T >= threshold
                if kept is not None:
                    kept.append(alike)
            linked = np.where(alike, labels, n)  # a row's links' labels; n where none
            new[start : start + rows] = np.minimum(new[start : start + rows], linked.min(1))
            across = np.where(alike, labels[start : start + rows, None], n).min(0)
            np.minimum(new, across, out=new)  # and each column's, if rounding made them differ
        new = new[new]
        if np.array_equal(new, labels):
            return labels
        labels = new


def groups_summary(groups: list[list[tuple[str, int]]]) -> str:
    """How many pictures `groups` are and how often each is saved, in a sentence."""
    twice = sum(len(group) == 2 for group in groups)
    more = len(groups) - twice
    often = [f"{twice:,} twice"] * bool(twice) + [
        f"{more:,} three times or more (up to {len(groups[0])})"
    ] * bool(more)
    return (
        f"The pairs join into {len(groups):,} picture{'s' * (len(groups) != 1)} saved more "
        f"than once: {', '.join(often) or 'none'}."
    )


def pairs_csv(pairs: list[Pair], dataset, found_groups: list[list[tuple[str, int]]]) -> str:
    """The pairs as CSV, a row each: the number of its group (in `found_groups`, `groups` of
    these pairs or of all of them: the rows of one picture saved several times share it),
    similarity, then each image's split, index, file (for an image folder, relative to it;
    empty otherwise) and class."""
    group_of = {image: n for n, group in enumerate(found_groups, 1) for image in group}
    out = io.StringIO()
    rows = csv.writer(out)
    ends = [f"{column}_{end}" for end in "ab" for column in ("split", "index", "file", "class")]
    rows.writerow(["group", "similarity", *ends])
    for pair in pairs:
        row = [group_of[pair.a], f"{pair.similarity:.4f}"]
        for (split, i), label in zip((pair.a, pair.b), pair.labels(dataset), strict=True):
            file = dataset.files[split][i] if split in dataset.files else ""
            row += [split, i, file, dataset.class_names[label]]
        rows.writerow(row)
    return out.getvalue()


def redundant_files(groups: list[list[tuple[str, int]]], dataset) -> tuple[list[tuple], int]:
    """What to delete to clean an image folder of its copies: of each picture saved more
    than once under one class, every file but the first in path order.

    Args:
        groups: `groups(...)` of `dataset`, which must be an image folder (it has `files`).

    Returns:
        `(rows, mixed)`: rows of `(file, class, file kept)`, in path order, and how many
        pictures are filed under two classes or more; those are left out, for a person to
        decide which label is right.
    """
    rows, mixed = [], 0
    for group in groups:
        files = sorted(
            (str(dataset.files[split][i]), int(dataset.splits[split][1][i])) for split, i in group
        )
        if len({label for _, label in files}) > 1:
            mixed += 1
            continue
        rows += [(file, dataset.class_names[label], files[0][0]) for file, label in files[1:]]
    return sorted(rows), mixed


def redundant_csv(rows: list[tuple]) -> str:
    """`redundant_files`' rows as CSV: `file,class,same_picture_as`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "class", "same_picture_as"])
    writer.writerows(rows)
    return out.getvalue()


def redundant_summary(rows: list[tuple], mixed: int) -> str:
    """`redundant_files` in a sentence."""
    sentence = (
        f"{len(rows):,} file{'s' * (len(rows) != 1)} repeat{'s' * (len(rows) == 1)} a "
        "picture that another file of its class holds (the first in path order is kept)"
    )
    if mixed:
        sentence += (
            f"; {mixed:,} picture{'s are' if mixed != 1 else ' is'} filed under two classes "
            "and left out, for you to decide which label is right"
        )
    return sentence + "."


def kept_near_duplicates(dataset, cache_dir=None, progress=None) -> dict:
    """`near_duplicates`, kept on disk under a hash of the images' bytes (CIFAR-10's 50,000
    images: 12 s here to compare, 1 MB kept), as the Evaluate page keeps predictions.

    Args:
        dataset, progress: as for `near_duplicates` (`progress` is not called when the
            answer is read from disk).
        cache_dir: default `core.data.default_cache_dir()`.
    """
    path = _kept_path(dataset, cache_dir)
    found = _read_kept(path, _read_arrays)
    if found is not None and _fits(found, dataset):
        return found
    found = near_duplicates(dataset, progress)
    _keep(path, found)
    return found


def near_duplicates_if_kept(dataset, cache_dir=None) -> dict | None:
    """What `kept_near_duplicates` would read from disk, or None when it would compare."""
    found = _read_kept(_kept_path(dataset, cache_dir), _read_arrays)
    return found if found is not None and _fits(found, dataset) else None


def _fits(found: dict, dataset) -> bool:
    sizes = {name: len(y) for name, (_, y) in dataset.splits.items()}
    return all(len(found.get(f"{a}>{b}:index", ())) == sizes[a] for a in sizes for b in sizes)


def _kept_path(dataset, cache_dir) -> Path:
    from core.data import default_cache_dir

    digest = hashlib.blake2b(b"near|v1", digest_size=12)  # v1: the fingerprint above
    for name, (x, _) in dataset.splits.items():
        digest.update(f"|{name}|{x.shape}".encode())
        digest.update(np.ascontiguousarray(x).data)
    return Path(cache_dir or default_cache_dir()) / f"near-{digest.hexdigest()}.npz"


def accuracy_by_duplicate(correct: np.ndarray, duplicated: np.ndarray) -> tuple[float, float]:
    """Accuracy on the images with a near-duplicate (`duplicated`) and on the others (nan
    where there are none), from bool `(N,)` arrays of right answers and `in_split`."""
    correct, duplicated = np.asarray(correct, bool), np.asarray(duplicated, bool)
    on = float(correct[duplicated].mean()) if duplicated.any() else float("nan")
    off = float(correct[~duplicated].mean()) if (~duplicated).any() else float("nan")
    return on, off


def format_summary(found: dict, dataset, threshold: float = SIMILAR, found_groups=None) -> str:
    """What the CLI prints: the pairs, those across splits and under two classes, the
    pictures they are (`found_groups`, when the caller has them), and for each split but
    train, its images with a near-duplicate in train."""
    found_pairs = pairs(found, threshold)
    across = sum(p.a[0] != p.b[0] for p in found_pairs)
    conflicts = sum(len(set(p.labels(dataset))) == 2 for p in found_pairs)
    total = sum(len(y) for _, y in dataset.splits.values())
    lines = [
        f"{len(found_pairs):,} pair{'s' * (len(found_pairs) != 1)} of near-duplicates "
        f"(similarity {threshold:.2f} or more) "
        f"among {total:,} images: {across:,} across splits, {conflicts:,} under two classes."
    ]
    if found_pairs:
        if found_groups is None:
            found_groups = groups(found_pairs, dataset, threshold)
        lines.append(groups_summary(found_groups))
    for split in dataset.splits:
        if split != "train" and "train" in dataset.splits:
            shared = in_split(found, split, "train", threshold)
            lines.append(
                f"{int(shared.sum()):,} of the {len(shared):,} {split} images have one in train."
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse

    from core.data import load_dataset
    from core.errors import CnnError

    p = argparse.ArgumentParser(
        prog="python -m core.near_duplicates",
        description="Find near-duplicate images in a dataset (kept in the cache folder, as "
        "the dashboard keeps them).",
    )
    p.add_argument("data", help="cifar10, an image folder, or a CIFAR-10 archive")
    p.add_argument("--threshold", type=float, default=SIMILAR, help="default %(default)s")
    p.add_argument("--val-fraction", type=float, default=0.1, help="default %(default)s")
    p.add_argument("--seed", type=int, default=0, help="split seed; default %(default)s")
    p.add_argument("--image-size", type=int, default=32, help="default %(default)s")
    p.add_argument("--csv", type=Path, help="write the pairs, with their files, to this file")
    p.add_argument(
        "--redundant",
        type=Path,
        help="an image folder: write the files that repeat a picture of their class (all "
        "but one of each) to this CSV, to delete",
    )
    args = p.parse_args(argv)
    verbose = progress_verbose()
    try:
        dataset = load_dataset(
            args.data,
            image_size=args.image_size,
            val_fraction=args.val_fraction,
            seed=args.seed,
            progress=progress_bar("Decoding the folder", verbose),
        )
        comparing = progress_bar("Comparing the images", verbose)
        found = kept_near_duplicates(dataset, progress=comparing)
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    found_pairs = pairs(found, args.threshold)
    found_groups = groups(found_pairs, dataset, args.threshold)
    written = {}
    if args.csv:
        written[args.csv] = pairs_csv(found_pairs, dataset, found_groups)
    if args.redundant:
        if not dataset.files:
            print("error: --redundant needs an image folder (files to list).", file=sys.stderr)
            return 1
        rows, mixed = redundant_files(found_groups, dataset)
        written[args.redundant] = redundant_csv(rows)
    for path, text in written.items():
        try:
            path.write_text(text)
        except OSError as err:
            print(f"error: {path} could not be written ({err.strerror or err}).", file=sys.stderr)
            return 1
    print(format_summary(found, dataset, args.threshold, found_groups))
    if args.redundant:
        print(f"{redundant_summary(rows, mixed)} Listed in {args.redundant}.")
    return 0


def progress_bar(doing: str, verbose: int = 1, unit: str = "image") -> Callable[[int, int], None]:
    """A Keras progress bar of `unit`s under a line saying what is done, made at the first
    report (the total comes with it, and may grow later; work that is kept on disk draws
    none). `verbose` 2: the line and the total only, for output to a file."""
    bars = []

    def progress(done: int, total: int) -> None:
        import keras

        if not bars:
            print(doing, file=sys.stderr)
            bars.append(keras.utils.Progbar(total, verbose=verbose, unit_name=unit))
        bars[0].target = total
        bars[0].update(done)

    return progress


if __name__ == "__main__":
    raise SystemExit(main())
