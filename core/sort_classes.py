"""Pictures whose classes are in their file names (cat.0.jpg, dog_12.png) or in a CSV file
beside them (id,label), sorted into class folders: the layout every reader here takes.

Kaggle's Dogs vs. Cats is the best known folder of the first kind: 25,000 pictures named
cat.0.jpg to dog.12499.jpg in one train/ folder; its competitions are the second (train/ of
pictures named by an id, and train.csv or labels.csv giving each id its class). The loader
reads classes from folders only, so it refuses such a folder; `labels_of` reads the classes
(the refusal's sentence names them) and `sort_into_classes` makes the folder the loader takes,
beside the original, without copying a byte where it can (hard links):

    python -m core.sort_classes ~/data/dogs-vs-cats/train     # writes .../train-by-class/
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.data import IMAGE_SUFFIXES, is_entry, shown
from core.errors import DataError
from core.fileio import fsync_dir
from core.words import counted

# A class, then a number: "cat.0.jpg", "dog_12.png", "Golden Retriever 3.JPG". The class
# ends in a character that is not a digit or a separator; the number closes the stem.
_NAMED = re.compile(r"(?P<label>.*?[^\d._ -])[._ -]*\d+")
SUFFIX = "-by-class"  # the sorted folder: beside the original, its name and this
# What cameras, phones and tools name pictures before a number (IMG_0001.jpg, DSC_0001.JPG,
# DSCN0001, GOPR0001, "Screenshot 3", "image (2)"...): two phones' photos are not two classes.
CAMERA_NAMES = {
    *("img", "image", "images", "dsc", "dscn", "dscf", "dji", "gopr", "pxl", "mvimg", "img_e"),
    *("photo", "photos", "pic", "picture", "pictures", "screenshot", "screen shot", "snapshot"),
    *("scan", "frame", "file", "untitled", "unnamed", "download", "capture", "vid", "camera"),
}
# A CSV of labels: the files looked at (in the folder and the one above it), their largest
# size, the most classes, and the share of the pictures its rows must label.
CSV_FILES, CSV_BYTES, MOST_CLASSES, LABELLED = 20, 100 * 2**20, 1000, 0.9
# Column names a label column goes by, where a CSV has more than one that could be.
_LABEL_COLUMNS = {"label", "labels", "class", "category", "breed", "species", "target", "y"}


@dataclass
class Labels:
    """Where a folder's pictures got their classes (`labels_of`).

    Attributes:
        classes: `{class: [file name, ...]}`, classes and names sorted.
        csv: the CSV file that labels them, or None when their names do.
        column: the CSV's label column.
        unlabelled: pictures the CSV gives no class (left out of the sort).
    """

    classes: dict[str, list[str]]
    csv: Path | None = None
    column: str = ""
    unlabelled: int = 0

    @property
    def pictures(self) -> int:
        return sum(map(len, self.classes.values()))


def labels_of(folder: str | os.PathLike) -> Labels | None:
    """The classes of a folder's pictures, from their names (`classes_in_names`) or else
    from a CSV in the folder or the one above it (`csv_classes`); None when neither gives
    them. Files that are not pictures (by suffix) are left out."""
    pictures = _pictures(folder)  # listed once for both (50,000 names: 0.1 s)
    if (classes := classes_in_names(pictures)) is not None:
        return Labels(classes)
    return csv_classes(folder, pictures)


def classes_in_names(names: list[str]) -> dict[str, list[str]] | None:
    """`{class: [name, ...]}` (classes sorted, names in their order) when every name is a
    class and a number (`cat.0.jpg`, `dog_12.png`, `cat1.jpg`), there are two classes or
    more and each has two names or more; None otherwise (one camera's IMG_0001.jpg,
    IMG_0002.jpg ... is one "class", so None), and None where a "class" is what a camera or a
    tool names pictures (`CAMERA_NAMES`: two phones' IMG_0001.jpg and DSC_0001.jpg)."""
    found = [_NAMED.fullmatch(os.path.splitext(name)[0]) for name in names]
    if not names or not all(found):
        return None
    classes: dict[str, list[str]] = {}
    for name, match in zip(names, found, strict=True):
        classes.setdefault(match["label"], []).append(name)
    if len(classes) < 2 or min(map(len, classes.values())) < 2:
        return None
    if any(label.strip(" ._-").lower() in CAMERA_NAMES for label in classes):
        return None
    return dict(sorted(classes.items()))


def csv_classes(folder: str | os.PathLike, pictures: list[str] | None = None) -> Labels | None:
    """The classes a CSV file gives a folder's pictures, as Kaggle's competitions give them
    (train.csv: `id,label`), or None.

    Looks at the CSV files in the folder and in the one above it (`CSV_FILES` at most, none
    over `CSV_BYTES`). One labels the pictures when a column names them (by file name, or
    by name without its suffix, as ids are) for `LABELLED` of them or more, and another
    column gives those from 2 to `MOST_CLASSES` classes, at most one per two pictures: the
    only such column, or the one with a label's name (`label`, `class`, `breed`...). A
    picture given two classes (a CSV of several labels a picture) makes it no such CSV.
    """
    folder = Path(folder).expanduser()
    pictures = _pictures(folder) if pictures is None else pictures
    if not pictures:
        return None
    found = []
    for parent in (folder, folder.parent):
        try:
            found += sorted(p for p in parent.glob("*.csv") if p.is_file())
        except OSError:
            continue
    for path in found[:CSV_FILES]:
        try:
            if path.stat().st_size > CSV_BYTES:
                continue
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
                rows = [row for row in csv.reader(f) if row]
        except (OSError, csv.Error):
            continue
        if (labels := rows_labels(rows, pictures, path)) is not None:
            return labels
    return None


def rows_labels(rows: list[list[str]], pictures: list[str], source: Path) -> Labels | None:
    """The classes a CSV's `rows` (its header first) give `pictures` (file names), by the
    rules of `csv_classes`, or None; `source`: the CSV, for `Labels.csv`. Also for a CSV
    inside a zip (`core.userdata`)."""
    if len(rows) < 3 or not pictures:
        return None
    by_id = {name: name for name in pictures}
    by_id |= {os.path.splitext(name)[0]: name for name in pictures}
    header, rows = rows[0], [row for row in rows[1:] if len(row) == len(rows[0])]
    named = [sum(row[i].strip() in by_id for row in rows) for i in range(len(header))]
    key = max(range(len(header)), key=named.__getitem__)
    labelled = {by_id[row[key].strip()]: row for row in rows if row[key].strip() in by_id}
    if len(labelled) < LABELLED * len(pictures):
        return None
    columns = [i for i in range(len(header)) if i != key and _classes(labelled, i, len(pictures))]
    if len(columns) > 1:
        columns = [i for i in columns if header[i].strip().lower() in _LABEL_COLUMNS]
    if len(columns) != 1:
        return None
    column, given = columns[0], {}
    for row in rows:
        name = by_id.get(row[key].strip())
        if name is not None and given.setdefault(name, row[column].strip()) != row[column].strip():
            return None  # two classes for one picture
    classes: dict[str, list[str]] = {}
    for name, label in sorted(given.items()):
        classes.setdefault(_folder_name(label), []).append(name)
    classes.pop("", None)
    if len(classes) < 2:
        return None
    left = len(pictures) - sum(map(len, classes.values()))
    return Labels(dict(sorted(classes.items())), source, header[column].strip(), left)


def _classes(labelled: dict[str, list[str]], column: int, pictures: int) -> bool:
    """Whether a CSV column gives its pictures classes: 2 to `MOST_CLASSES` of them, at most
    one per two pictures (ids, sizes and free text give one a picture)."""
    count = len({row[column].strip() for row in labelled.values()} - {""})
    return 2 <= count <= min(MOST_CLASSES, pictures // 2)


def _folder_name(label: str) -> str:
    """A class as a folder's name: its slashes replaced, "" for what cannot be one."""
    name = label.replace("/", "_").replace("\\", "_").strip()
    return "" if name in ("", ".", "..") else name


def _pictures(folder) -> list[str]:
    """The names of a folder's pictures (by suffix), sorted; none when it cannot be read."""
    try:
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if is_entry(e, "file"))
    except OSError:
        return []
    return [name for name in names if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES]


def sorted_folder(folder: str | os.PathLike) -> Path:
    """Where `sort_into_classes` puts `folder`'s pictures: beside it, `<name>-by-class`."""
    folder = Path(folder).expanduser().resolve()
    return folder.with_name(folder.name + SUFFIX)


def hint(folder: str | os.PathLike) -> str:
    """A sentence for a folder without class folders whose pictures' classes are in their
    names or a CSV (`labels_of`): which classes, and the command that sorts them; or ""."""
    labels = labels_of(folder)
    if labels is None:
        return ""
    classes = labels.classes
    listed = ", ".join(shown(c) for c in list(classes)[:3]) + (", …" if len(classes) > 3 else "")
    if labels.csv is None:
        examples = ", ".join(shown(files[0]) for files in list(classes.values())[:2])
        said = f"are named after {len(classes)} classes ({listed}: {examples})"
    else:
        said = (
            f"are labelled in {shown(str(labels.csv))} (its column {shown(labels.column)} "
            f"gives {len(classes)} classes: {listed})"
        )
        if labels.unlabelled:
            said += f", {labels.unlabelled:,} of them not"
    return (
        f" Its {counted(labels.pictures + labels.unlabelled, 'picture')} {said}: `python -m "
        f"core.sort_classes {shown(str(folder))}` (or the Dataset page's \"Sort them into class "
        f'folders") puts them in a folder per class in {shown(str(sorted_folder(folder)))}, '
        "the folder to give then."
    )


def sort_into_classes(
    folder: str | os.PathLike, progress=None, labels: Labels | None = None
) -> Path:
    """Makes `sorted_folder(folder)`: a folder per class (`labels_of`: from the pictures'
    names or a CSV) holding that class's pictures, as hard links (no space taken; copies
    where links cannot be made, as across drives). Pictures a CSV gives no class are left
    out.

    Written into a hidden folder beside it and renamed into place when complete, so an
    interrupted sort leaves no half-sorted folder.

    Args:
        folder: the folder of pictures labelled by their names or a CSV.
        progress: called as `progress(done, total)` every 1,000 pictures and at the end.
        labels: `labels_of(folder)` made moments before, so it is not read again (a CSV of
            50,000 rows: about 0.3 s).

    Returns:
        The sorted folder.

    Raises:
        DataError: neither the names nor a CSV give classes, the sorted folder exists
            already, or it cannot be written (a sentence with the reason).
    """
    folder = Path(folder).expanduser().resolve()
    labels = labels or labels_of(folder)
    if labels is None:
        raise DataError(
            f"The pictures in {shown(str(folder))} are not named after their classes (such as "
            "cat.0.jpg and dog.0.jpg), and no CSV file in it or above it gives them classes "
            "(a column of their names or ids and one of classes), so they cannot be sorted."
        )
    classes = labels.classes
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
        prog="python -m core.sort_classes",
        description="Sort a folder of pictures named after their classes (cat.0.jpg, "
        "dog.0.jpg), or labelled by a CSV file in it or above it (id,label), into a folder "
        "per class, beside it as <folder>-by-class.",
    )
    p.add_argument("folder", help="the folder of pictures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    from core.near_duplicates import progress_bar

    bar = None if args.quiet else progress_bar("Sorting the pictures by class", unit="file")
    labels = labels_of(args.folder)
    try:
        final = sort_into_classes(args.folder, bar, labels)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    each = ", ".join(f"{shown(c)}: {len(names):,}" for c, names in labels.classes.items())
    left = labels.unlabelled
    print(
        f"{final}\n{counted(labels.pictures, 'picture')} in {len(labels.classes)} class folders "
        f"({each})" + (f"; {counted(left, 'picture')} without a class left out." if left else ".")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
