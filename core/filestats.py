"""How an image folder's files stored their pictures, before they became squares of the
model's size: their sizes and shapes, greyscale (as stored, or by their pixels) and
transparency, and whether one class differs from the others in any of these (a difference
a model can learn instead of the subject).

Plain numpy on `core.data.Dataset.stored`: int32 `(N, 3)` rows of width, height and flags.
"""

from __future__ import annotations

import numpy as np

from core.images import GREYSCALE, TRANSPARENT

# A class whose share of a kind of file is this much above or below the other classes'
# share is named: at 0.5, e.g. 60% of one class greyscale against 10% of the rest.
APART = 0.5
# A class whose median file has this many times the pixels of the others' (or this many
# times fewer) is named: resized to one size, its pictures look sharper or blurrier.
AREA_APART = 4.0


KINDS = ("not square", "greyscale", "with transparency")  # the kinds of file counted


def _kinds(stored: np.ndarray) -> dict[str, np.ndarray]:
    """`{kind: bool (N,)}` for each of `KINDS`."""
    width, height, flags = stored[:, 0], stored[:, 1], stored[:, 2]
    found = (width != height, (flags & GREYSCALE) > 0, (flags & TRANSPARENT) > 0)
    return dict(zip(KINDS, found, strict=True))


def _share(count: int, total: int, verbs: str = "are/is") -> str:
    """ "3 (75%) are", "1 (25%) is" or "all 4 are": `verbs` plural/singular."""
    plural, singular = verbs.split("/")
    if count == total:
        return f"all {total:,} {plural}"
    return f"{count:,} ({count / total:.0%}) {singular if count == 1 else plural}"


def summary(
    stored: np.ndarray, image_size: int, sizes=(32, 64, 96), where="the Train page's Image size"
) -> list[str]:
    """What the files are like, in sentences, and what happens to them on the way in.

    Args:
        stored: int32 `(N, 3)`: width, height, flags of each file (N > 0).
        image_size: side of the squares the pages show and models train on.
        sizes: the image sizes a model can be trained at (the Train page's choices).
        where: where that size is chosen.

    Returns:
        Sentences: the sizes; how many files are not square (squashed), smaller than
        `image_size` (enlarged), greyscale or transparent; and, when half the files have
        more pixels on their shorter side than a larger choice of `sizes`, that choice.
    """
    n, (width, height) = len(stored), (stored[:, 0], stored[:, 1])
    side = f"{image_size} x {image_size}"
    if (width == width[0]).all() and (height == height[0]).all():
        same = f"{width[0]} x {height[0]}"
        sentences = [f"All {n:,} files are {same} pixels" + ("." if same == side else ",")]
    else:
        sentences = [
            f"The {n:,} files are {width.min():,}-{width.max():,} pixels wide and "
            f"{height.min():,}-{height.max():,} high (the median {np.median(width):g} x "
            f"{np.median(height):g}),"
        ]
    if not sentences[0].endswith("."):
        sentences[0] += f" shown and trained on at {side}."
    kinds = _kinds(stored)
    if count := int(kinds["not square"].sum()):
        sentences.append(
            f"{_share(count, n)} not square: each is squashed to the square, not cropped, "
            "so what they show looks narrower or flatter (a run can crop them to their centre "
            "square instead: the Train page's 'Pictures that are not square', or `--fit crop`)."
        )
    if count := int((np.minimum(width, height) < image_size).sum()):
        sentences.append(
            f"{_share(count, n, 'have/has')} a side shorter than {image_size} pixels and are "
            "enlarged, which blurs them."
        )
    if count := int(kinds["greyscale"].sum()):
        sentences.append(f"{_share(count, n)} greyscale: their grey fills all three colours.")
    if count := int(kinds["with transparency"].sum()):
        sentences.append(f"{_share(count, n, 'have/has')} transparency: white shows through.")
    if said := larger_size(stored, image_size, sizes, f" ({where})"):
        sentences.append(said)
    return sentences


def larger_size(stored, image_size: int, sizes=(32, 64, 96), where="", files="the files"):
    """The sentence that suggests the largest of `sizes` above `image_size` that half the
    files have on their shorter side (`where` it is chosen, after the size), or None when
    no larger size is that small: a model of it sees more of them."""
    shorter = float(np.median(np.minimum(stored[:, 0], stored[:, 1])))
    larger = [s for s in sizes if image_size < s <= shorter]
    if not larger:
        return None
    return (
        f"Half {files} have {shorter:g} pixels or more on their shorter side: a model of "
        f"{larger[-1]} x {larger[-1]} pixels{where} sees more of their detail, at about "
        f"{(larger[-1] / image_size) ** 2:.0f} times the time per epoch."
    )


def class_table(stored: np.ndarray, y: np.ndarray, class_names: list[str]) -> list[dict]:
    """One row per class with files: its median size and its shares of each kind of file.

    Args:
        stored: int32 `(N, 3)` as for `summary`.
        y: int `(N,)` labels of the files.
        class_names: names in label order.

    Returns:
        `[{"class", "files", "median size", "not square", "greyscale", "with
        transparency"}]`, the shares as percentages (floats).
    """
    kinds = _kinds(stored)
    rows = []
    for label, name in enumerate(class_names):
        mine = y == label
        if not mine.any():
            continue
        width, height = (np.median(stored[mine, k]) for k in (0, 1))
        rows.append(
            {"class": name, "files": int(mine.sum()), "median size": f"{width:g} x {height:g}"}
            | {kind: 100 * float(is_kind[mine].mean()) for kind, is_kind in kinds.items()}
        )
    return rows


def class_differences(stored: np.ndarray, y: np.ndarray, class_names: list[str]) -> list[str]:
    """Sentences naming classes whose files differ from the others' in a way a model can
    learn instead of what the pictures show: a share of a kind of file `APART` from the
    other classes', or a median file `AREA_APART` times larger or smaller.

    Args:
        stored, y, class_names: as for `class_table`.

    Returns:
        At most one sentence per kind of file and one for size: the class that differs most.
    """
    present = [label for label in range(len(class_names)) if (y == label).any()]
    if len(present) < 2:
        return []
    sentences = []
    for kind, is_kind in _kinds(stored).items():
        gaps = {c: is_kind[y == c].mean() - is_kind[y != c].mean() for c in present}
        label = max(gaps, key=lambda c: abs(gaps[c]))
        if abs(gaps[label]) >= APART:
            mine, others = is_kind[y == label].mean(), is_kind[y != label].mean()
            what = kind.replace("with ", "have ") if kind.startswith("with ") else f"are {kind}"
            sentences.append(
                f"{mine:.0%} of the files of {class_names[label]} {what}, "
                f"{others:.0%} of the other classes': a model can tell {class_names[label]} by "
                "that rather than by what the pictures show."
            )
    area = stored[:, 0].astype(np.float64) * stored[:, 1]
    ratios = {c: np.median(area[y == c]) / np.median(area[y != c]) for c in present}
    label = max(ratios, key=lambda c: abs(np.log(ratios[c])))
    if max(ratios[label], 1 / ratios[label]) >= AREA_APART:
        bigger = "larger" if ratios[label] > 1 else "smaller"
        sentences.append(
            f"The files of {class_names[label]} are much {bigger} than the other classes' "
            f"(a median of {np.median(area[y == label]):,.0f} pixels against "
            f"{np.median(area[y != label]):,.0f}): resized to one size they look "
            f"{'sharper' if bigger == 'larger' else 'blurrier'}, which a model can learn "
            "instead of what they show."
        )
    return sentences


def size_counts(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(widths, heights, counts)`: each distinct file size and how many files have it."""
    sizes, counts = np.unique(stored[:, :2], axis=0, return_counts=True)
    return sizes[:, 0], sizes[:, 1], counts


GREY_SPREAD = 4  # a picture whose channels differ by at most this in every pixel looks grey
_GREY_CHUNK = 2048  # images compared at once: at most 56 MB at 96 x 96


def looks_grey(x: np.ndarray, spread: int = GREY_SPREAD) -> np.ndarray:
    """Which pictures are grey whatever their files stored: a scan or a black-and-white
    photo saved as an RGB JPEG has three equal channels (a JPEG keeps grey exact).

    Args:
        x: uint8 `(N, H, W, 3)` images.
        spread: the most two channels of a grey picture's pixel may differ by.

    Returns:
        bool `(N,)`.
    """
    step = max(1, x.shape[1] // 8)
    grey = _within(x[:, ::step, ::step], spread)  # an 8 x 8 grid first: most colour fails it
    for start in range(0, len(grey), _GREY_CHUNK):
        rows = start + np.flatnonzero(grey[start : start + _GREY_CHUNK])
        grey[rows] = _within(x[rows], spread)
    return grey


def _within(x: np.ndarray, spread: int) -> np.ndarray:
    return ((x.max(axis=-1) - x.min(axis=-1)) <= spread).all(axis=(1, 2))


def dataset_files(dataset, grey_pixels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`(stored, y)` of every file of a `core.data.Dataset`, all splits together (empty
    arrays for a source without files); `grey_pixels` also counts as `GREYSCALE` the
    pictures that `looks_grey` (about 0.2 s for CIFAR-10's 50,000 here)."""
    splits = list(dataset.stored)
    if not splits:
        return np.zeros((0, 3), np.int32), np.zeros(0, np.int32)
    y = np.concatenate([dataset.splits[s][1] for s in splits])
    stored = np.concatenate([dataset.stored[s] for s in splits])  # a copy: changed below
    if grey_pixels:
        grey = np.concatenate([looks_grey(dataset.splits[s][0]) for s in splits])
        stored[:, 2] |= GREYSCALE * grey
    return stored, y


def format_table(rows: list[dict]) -> str:
    """`class_table`'s rows as aligned text, shares in whole percent."""
    from core.cli import text_table

    cells = [
        [str(r["class"]), f"{r['files']:,}", r["median size"], *(f"{r[k]:.0f}%" for k in KINDS)]
        for r in rows
    ]
    return text_table([["class", "files", "median size", *KINDS], *cells])


def main(argv=None) -> int:
    import argparse
    import sys

    from core.data import load_dataset
    from core.errors import CnnError
    from core.evaluate import progress_verbose
    from core.near_duplicates import progress_bar

    p = argparse.ArgumentParser(
        prog="python -m core.filestats",
        description="What an image folder's files are like before they become squares of the "
        "model's size (the Dataset page's Image files tab).",
    )
    p.add_argument("data", help="an image folder: root/<class>/* or root/train/<class>/*")
    p.add_argument("--image-size", type=int, default=32, help="default %(default)s")
    args = p.parse_args(argv)
    try:
        progress = progress_bar("Decoding the folder", progress_verbose())
        dataset = load_dataset(args.data, image_size=args.image_size, progress=progress)
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    stored, y = dataset_files(dataset, grey_pixels=True)
    if not len(stored):
        print(f"error: {args.data} is not an image folder: no files to describe.", file=sys.stderr)
        return 1
    print("\n".join(summary(stored, args.image_size, where="core.train's --image-size")))
    for sentence in class_differences(stored, y, dataset.class_names):
        print(f"Warning: {sentence}")
    print()
    print(format_table(class_table(stored, y, dataset.class_names)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
