"""Pictures whose file names carry their class (cat.0.jpg, dog_12.png), sorted into class
folders: the layout every reader here takes.

Kaggle's Dogs vs. Cats is the best known such folder: 25,000 pictures named cat.0.jpg to
dog.12499.jpg in one train/ folder. The loader reads classes from folders only, so it
refuses such a folder; `named_classes` reads the names' classes (its sentence says so) and
`sort_by_name` makes the folder the loader takes, beside the original, without copying a
byte where it can (hard links):

    python -m core.byname ~/data/dogs-vs-cats/train     # writes .../train-by-class/
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from core.data import IMAGE_SUFFIXES, is_entry, shown
from core.errors import DataError
from core.fileio import fsync_dir
from core.words import counted

# A class, then a number: "cat.0.jpg", "dog_12.png", "Golden Retriever 3.JPG". The class
# ends in a character that is not a digit or a separator; the number closes the stem.
_NAMED = re.compile(r"(?P<label>.*?[^\d._ -])[._ -]*\d+")
SUFFIX = "-by-class"  # the sorted folder: beside the original, its name and this


def named_classes(folder: str | os.PathLike) -> dict[str, list[str]] | None:
    """Each class's pictures in a folder of pictures named after their classes, or None.

    Args:
        folder: a folder of files without class folders.

    Returns:
        `{class: [file name, ...]}` in sorted order when every picture's name is a class
        and a number (`cat.0.jpg`), there are two classes or more and each has two
        pictures or more; None otherwise (one camera's IMG_0001.jpg, IMG_0002.jpg ... is
        one "class", so None). Files that are not pictures (by suffix) are left out.
    """
    try:
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if is_entry(e, "file"))
    except OSError:
        return None
    pictures = [name for name in names if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    found = [_NAMED.fullmatch(Path(name).stem) for name in pictures]
    if not pictures or not all(found):
        return None
    classes: dict[str, list[str]] = {}
    for name, match in zip(pictures, found, strict=True):
        classes.setdefault(match["label"], []).append(name)
    if len(classes) < 2 or min(map(len, classes.values())) < 2:
        return None
    return dict(sorted(classes.items()))


def sorted_folder(folder: str | os.PathLike) -> Path:
    """Where `sort_by_name` puts `folder`'s pictures: beside it, `<name>-by-class`."""
    folder = Path(folder).expanduser().resolve()
    return folder.with_name(folder.name + SUFFIX)


def hint(folder: str | os.PathLike) -> str:
    """A sentence for a folder without class folders whose pictures are named after their
    classes (`named_classes`): which classes, and the command that sorts them; or ""."""
    classes = named_classes(folder)
    if classes is None:
        return ""
    pictures = sum(map(len, classes.values()))
    listed = ", ".join(shown(c) for c in list(classes)[:3]) + (", …" if len(classes) > 3 else "")
    examples = ", ".join(shown(files[0]) for files in list(classes.values())[:2])
    return (
        f" Its {counted(pictures, 'picture')} are named after {len(classes)} classes ({listed}: "
        f"{examples}): `python -m core.byname {shown(str(folder))}` (or the Dataset page's "
        '"Sort them into class folders") puts them in a folder per class in '
        f"{shown(str(sorted_folder(folder)))}, the folder to give then."
    )


def sort_by_name(folder: str | os.PathLike, progress=None) -> Path:
    """Makes `sorted_folder(folder)`: a folder per class (`named_classes`) holding that
    class's pictures, as hard links (no space taken; copies where links cannot be made,
    as across drives).

    Written into a hidden folder beside it and renamed into place when complete, so an
    interrupted sort leaves no half-sorted folder.

    Args:
        folder: the folder of pictures named after their classes.
        progress: called as `progress(done, total)` every 1,000 pictures and at the end.

    Returns:
        The sorted folder.

    Raises:
        DataError: the names carry no classes, the sorted folder exists already, or it
            cannot be written (a sentence with the reason).
    """
    folder = Path(folder).expanduser().resolve()
    classes = named_classes(folder)
    if classes is None:
        raise DataError(
            f"The pictures in {shown(str(folder))} are not named after their classes (such as "
            "cat.0.jpg and dog.0.jpg), so they cannot be sorted by their names."
        )
    final = sorted_folder(folder)
    if final.exists():
        raise DataError(f"{shown(str(final))} exists already: give it as the dataset, or move it.")
    total, done = sum(map(len, classes.values())), 0
    try:
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-"))
        try:
            for label, names in classes.items():
                (staging / label).mkdir()
                for name in names:
                    _link_or_copy(folder / name, staging / label / name)
                    done += 1
                    if progress is not None and (done % 1000 == 0 or done == total):
                        progress(done, total)
            staging.chmod(0o755)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when renamed
        fsync_dir(final.parent)
    except OSError as err:
        raise DataError(
            f"The sorted folder could not be written in {shown(str(final.parent))} "
            f"({err.strerror or err})."
        ) from err
    return final


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another drive, or a file system without hard links
        shutil.copy2(source, target)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m core.byname",
        description="Sort a folder of pictures named after their classes (cat.0.jpg, "
        "dog.0.jpg) into a folder per class, beside it as <folder>-by-class.",
    )
    p.add_argument("folder", help="the folder of pictures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    from core.near_duplicates import progress_bar

    bar = None if args.quiet else progress_bar("Sorting the pictures by their names", unit="file")
    try:
        final = sort_by_name(args.folder, bar)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = Counter({label: len(os.listdir(final / label)) for label in os.listdir(final)})
    each = ", ".join(f"{shown(label)}: {n:,}" for label, n in sorted(counts.items()))
    print(f"{final}\n{counted(counts.total(), 'picture')} in {len(counts)} class folders ({each}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
