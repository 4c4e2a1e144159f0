"""Your own images: a zip of class folders unpacked safely, and a check of any image folder.

`extract_zip` reads every entry's header and refuses the archive before writing a byte
when an entry could escape its folder, is not a plain file, or would expand past the
limits; it then unpacks into a temporary folder that is renamed into place only when
complete. `check_folder` says what a folder would give the classifier: its classes,
images per class, unreadable files, duplicates and imbalance.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import urllib.parse
import zipfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from core.data import (
    IMAGE_SUFFIXES,
    OTHER_PICTURES,
    PARTS,
    VAL_FOLDERS,
    FolderListing,
    _is_cifar_batches_dir,
    class_files,
    classes_differ,
    classes_inside,
    decode_files,
    default_cache_dir,
    folder_contents,
    held_out_folders,
    holds_folders,
    is_entry,
    is_split_name,
    no_readable_image,
    shown,
    splits_as_classes,
)
from core.datastats import without_images
from core.errors import CnnError, DataError
from core.fileio import atomic_write_bytes, remove_stale_entries
from core.sort_classes import CSV_BYTES, CSV_FILES, classes_in_names, hint, rows_labels
from core.words import counted

# 60,000 CIFAR-sized JPEGs unpack to about 150 MB; 1 GiB leaves room for larger photos
# while one upload cannot fill the disk.
MAX_TOTAL_BYTES = 1024**3
# Each entry costs an inode and a decode: 100,000 holds all of CIFAR-10 with room to spare.
MAX_FILES = 100_000
# Photos are compressed already (JPEG, PNG, WebP deflate to ~1:1) and even raw BMPs stay
# far below 100:1, so a higher ratio is a crafted entry: a zip bomb.
MAX_RATIO = 100
# Below this size an entry cannot hurt whatever its ratio (the total limit still counts
# it), and a tiny flat-colour BMP can legitimately deflate more than 100:1.
RATIO_MIN_BYTES = 1024 * 1024
# The zip uploader's limit in MB. Streamlit's server refuses any upload above
# `server.maxUploadSize` in .streamlit/config.toml, which is therefore set to this value.
MAX_ZIP_MB = 200
# Fewer images than this per class rarely trains anything; more than this ratio between
# the largest and smallest class makes the model favour the large ones.
MIN_IMAGES_PER_CLASS = 10
MAX_IMBALANCE = 5
# A folder the loader cannot list is checked at half this size (see `_read_all`).
CHECK_SIDE = 64

LAYOUT = (
    "Expected layout: one folder per class holding its images, e.g. cats/001.jpg and "
    "dogs/002.jpg, optionally inside one top folder, or train/<class>/… with test/<class>/… "
    "(and val/<class>/… for validation images of your own); or, in a zip, pictures named after "
    "their classes (cat1.jpg, dog1.jpg), or in one folder with a CSV of their classes in it or "
    "beside it (a Kaggle competition's train/ and train.csv)."
)
_IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_DRIVE = re.compile(r"^[A-Za-z]:")
# A central-directory record is 46 bytes plus its name and extras; 1 KB each on average
# is generous, and bounds what ZipFile parses into memory before any count is known.
_DIR_BYTES_PER_ENTRY = 1024
_CHUNK = 1024 * 1024
_STALE_SECONDS = 24 * 3600
_MIB = 1024 * 1024


def default_uploads_dir() -> Path:
    """Returns `$CNN_UPLOADS_DIR`, or `uploads/` in the repository."""
    return Path(
        os.environ.get("CNN_UPLOADS_DIR") or Path(__file__).resolve().parents[1] / "uploads"
    )


def extract_zip(
    source,
    dest_root: str | os.PathLike | None = None,
    *,
    name: str | None = None,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
    max_ratio: float = MAX_RATIO,
) -> Path:
    """Unpacks a zip of class folders into a folder `core.data.load_dataset` can read.

    Every entry is inspected before anything is written. The result lands in
    `dest_root/<zip name>-<content hash>`, renamed into place only when complete, so
    the same zip uploaded twice reuses the folder and a refusal leaves nothing behind.
    `__MACOSX/`, dotfiles, `Thumbs.db`, `desktop.ini` and files that are not images
    (by extension) are skipped; a single wrapping top folder is removed. Pictures of
    formats not supported (`core.data.OTHER_PICTURES`: a phone's HEIC) in a class folder
    are unpacked, so the folder check names them rather than leaving them out unsaid.

    Args:
        source: the archive as a path, bytes, or a seekable binary file object (such as
            Streamlit's `UploadedFile`).
        dest_root: where extracted folders live; default `default_uploads_dir()`.
        name: the archive's file name, used for the folder name; default the path's
            name, or "images".
        max_total_bytes: largest total size of the unpacked files, declared or real.
        max_files: largest number of entries in the archive.
        max_ratio: largest uncompressed/compressed ratio of an entry over 1 MiB.

    Returns:
        The extracted folder: `<class>/<image>`, or `train/<class>/…` (+ `test/<class>/…`,
        + a validation folder's, `core.data.VAL_FOLDERS`).

    Raises:
        DataError: a sentence naming the problem: not a zip or damaged, too large, too
            many entries, an entry that escapes the folder (absolute, `..`, drive letter,
            backslashes), a link or other special entry, an encrypted entry, a zip bomb,
            no images, or a layout other than class folders.
    """
    dest_root = Path(dest_root or default_uploads_dir())
    with _opened(source) as fileobj:
        digest, size = _digest(fileobj)
        if size > max_total_bytes:
            raise DataError(f"The zip is {_human(size)}; the limit is {_human(max_total_bytes)}.")
        _check_directory_size(fileobj, max_files)
        with _open_zip(fileobj) as archive:
            plan = _plan(archive, max_total_bytes, max_files, max_ratio)
            final = dest_root / f"{_safe_stem(name or _path_name(source))}-{digest[:12]}"
            if final.is_dir():  # the rename below is atomic: a folder there is complete
                return final
            try:
                dest_root.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(dir=dest_root, prefix=f".partial-{final.name}-"))
            except OSError as err:
                raise _unwritable(dest_root, err) from err
            _remove_stale_partials(dest_root)
            return _extract(archive, plan, tmp, final, max_total_bytes)


def _opened(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(source, "rb")  # noqa: SIM115 (the caller's `with` closes it)
        except OSError as err:
            raise DataError(f"The zip {source} cannot be opened ({err.strerror}).") from err
    if not (hasattr(source, "read") and hasattr(source, "seek")):
        raise DataError(f"Expected a zip file, got {type(source).__name__}.")
    return _Borrowed(source)


class _Borrowed:
    """A caller's file object: used in a `with` block, but left open for its owner."""

    def __init__(self, fileobj):
        self.fileobj = fileobj

    def __enter__(self):
        return self.fileobj

    def __exit__(self, *exc):
        return False


def _path_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return getattr(source, "name", None) or "images"


def _safe_stem(name: str) -> str:
    stem = re.sub(r"\.zip$", "", Path(str(name)).name, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip(".-")[:40] or "images"


def _digest(fileobj) -> tuple[str, int]:
    fileobj.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := fileobj.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    fileobj.seek(0)
    return digest.hexdigest(), size


def _check_directory_size(fileobj, max_files):
    # ZipFile parses the whole central directory into memory when it opens; its end
    # record says how large that directory is, so a crafted one is refused unparsed.
    # `_EndRecData` is zipfile's own reader of that record.
    try:
        end = zipfile._EndRecData(fileobj)
    except (OSError, AttributeError):
        return  # ZipFile itself will explain, or the check is not available
    finally:
        fileobj.seek(0)
    if end and (
        end[zipfile._ECD_ENTRIES_TOTAL] > max_files
        or end[zipfile._ECD_SIZE] > max_files * _DIR_BYTES_PER_ENTRY
    ):
        raise _too_many(max(end[zipfile._ECD_ENTRIES_TOTAL], max_files + 1), max_files)


def _too_many(count, max_files):
    return DataError(f"The zip holds {count:,} entries; the limit is {max_files:,} files.")


def _open_zip(fileobj) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as err:
        raise DataError(
            f"This file is not a zip archive, or it is damaged ({err}). Upload a .zip "
            "made by your system's 'compress' command."
        ) from err


def _plan(archive, max_total_bytes, max_files, max_ratio):
    """Checks every entry and maps each image to its place in the extracted folder."""
    infos = archive.infolist()
    if len(infos) > max_files:
        raise _too_many(len(infos), max_files)
    if not infos:
        raise DataError(f"The zip is empty. {LAYOUT}")
    seen, images, others, tables, total = set(), [], [], [], 0
    for info in infos:
        path = _entry_path(info, seen)
        total += info.file_size
        if total > max_total_bytes:
            raise DataError(
                f"The zip's files add up to more than {_human(max_total_bytes)} once "
                "unpacked, the limit for one dataset."
            )
        _check_ratio(info, max_ratio)
        if not info.is_dir() and not _ignored(path):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images.append((info, path))
            elif path.suffix.lower() in OTHER_PICTURES:
                others.append((info, path))
            elif path.suffix.lower() == ".csv":
                tables.append((info, path))
    if not images:
        kinds = Counter(OTHER_PICTURES[path.suffix.lower()] for _, path in others)
        named = ", ".join(f"{count:,} {kind}" for kind, count in kinds.most_common())
        raise DataError(
            f"The zip holds no images: none of its {len(infos):,} entries ends in "
            f"{', '.join(sorted(IMAGE_SUFFIXES))}."
            + (f" Its {named} pictures are not supported: convert them to JPEG." if kinds else "")
            + f" {LAYOUT}"
        )
    try:
        return _layout(images, others)
    except DataError:  # pictures outside class folders: labelled by a CSV beside them?
        if (labelled := _csv_layout(images, _tables(archive, tables))) is None:
            raise
        return labelled


def _tables(archive, tables) -> list[tuple[tuple, Path, list[list[str]]]]:
    """The zip's CSV files (`CSV_FILES` at most, none over `CSV_BYTES`) as `(folder's
    parts, path, rows)`; one that cannot be read is left out."""
    read = []
    for info, path in tables[:CSV_FILES]:
        if info.file_size > CSV_BYTES:
            continue
        try:
            text = archive.read(info).decode("utf-8-sig", errors="replace")
            rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
        except (zipfile.BadZipFile, OSError, csv.Error, EOFError):
            continue
        read.append((path.parts[:-1], Path(*path.parts), rows))
    return read


def _csv_layout(images, tables):
    """Pictures in one folder of the zip, labelled by a CSV in it or in the folder above
    (`core.sort_classes.rows_labels`: a Kaggle competition's train/ and train.csv), mapped
    as `train/<class>/<name>`; its pictures the CSV does not label to `unlabelled/<name>`,
    other folders of pictures beside it (the competition's test/) kept as they are, so the
    folder check names both as not read. None when no CSV labels a folder's pictures."""
    parts = [path.parts for _, path in images]
    folders = Counter(p[:-1] for p in parts)
    for folder, _ in folders.most_common():
        names = sorted(p[-1] for p in parts if p[:-1] == folder)
        for where, path, rows in tables:
            if where in (folder, folder[:-1]) and (labels := rows_labels(rows, names, path)):
                break
        else:
            continue
        label = {name: c for c, pictures in labels.classes.items() for name in pictures}
        above = len(folder) - 1  # beside it: what lies in the folder above, as it lies there
        mapped = []
        for (info, _), p in zip(images, parts, strict=True):
            beside = folder and p[:above] == folder[:above] and len(p) - above > 1
            if p[:-1] == folder:
                into = ("train", label[p[-1]]) if p[-1] in label else ("unlabelled",)
                mapped.append((info, PurePosixPath(*into, p[-1])))
            elif beside and p[above] not in ("train", "unlabelled"):  # not the two made here
                mapped.append((info, PurePosixPath(*p[above:])))
        return mapped
    return None


def _entry_path(info, seen) -> PurePosixPath:
    """Returns the entry's relative path, or refuses an entry that is not a plain file."""
    name = info.filename
    shown = name[:120]
    if "\\" in name:
        raise _unsafe(shown, "uses backslashes (\\) in its path, which can hide a '..'")
    if name.startswith("/") or _DRIVE.match(name):
        raise _unsafe(shown, "has an absolute path")
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        raise _unsafe(shown, "points outside the archive's folder with '..'")
    if any(p in ("", ".") for p in parts) or any(ord(c) < 32 for c in name):
        raise _unsafe(shown, "has an empty, '.' or control-character part in its path")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise _unsafe(shown, "is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _unsafe(shown, "is a device, pipe or other special file, not a plain file")
    if info.flag_bits & 0x1:
        raise DataError(
            f"The zip entry '{shown}' is encrypted; upload a zip made without a password."
        )
    if info.compress_type not in _ZIP_METHODS:
        raise DataError(
            f"The zip entry '{shown}' uses a compression method this server cannot read "
            f"(number {info.compress_type}); re-create the zip with ordinary (deflate) "
            "compression."
        )
    key = name.rstrip("/")
    if key in seen:
        raise _unsafe(shown, "appears twice")
    seen.add(key)
    return PurePosixPath(*parts)


def _unsafe(name, reason):
    return DataError(f"The zip entry '{name}' {reason}, so the zip was refused.")


def _check_ratio(info, max_ratio):
    if info.file_size < RATIO_MIN_BYTES:
        return
    ratio = info.file_size / max(info.compress_size, 1)
    if ratio > max_ratio:
        raise DataError(
            f"The zip entry '{info.filename[:120]}' expands {ratio:,.0f} times "
            f"({_human(info.compress_size)} to {_human(info.file_size)}), more than the "
            f"{max_ratio:g} times any real image needs: refused as a possible zip bomb."
        )


def _ignored(path: PurePosixPath) -> bool:
    return any(p in _IGNORED_NAMES or p.startswith(".") for p in path.parts)


def _layout(images, others=()):
    """Maps image entries to `<class>/...` or `train|test|val/<class>/...` (any of
    `core.data.VAL_FOLDERS` for val), or refuses; and
    those of `others` (pictures this cannot read) that lie in one of those class folders.
    Wrapping folders (a zipped folder's own, and those above it) are left out; folders
    inside a class folder are kept, as a folder's images in them belong to its class."""
    parts = [path.parts for _, path in images]
    if (named := _named_layout(parts)) is not None:
        return [(info, PurePosixPath(*p)) for (info, _), p in zip(images, named, strict=True)]
    tops = {p[0] for p in parts}
    wrapper = ()
    # One wrapping folder, as "compress folder" makes, or several (a zip of a deep path).
    while len(tops) == 1 and tops != {"train"} and all(len(p) >= 3 for p in parts):
        wrapper += (parts[0][0],)
        parts = [p[1:] for p in parts]
        tops = {p[0] for p in parts}
    split = "train" in tops and tops <= {"train", "test", *VAL_FOLDERS}
    depth = 3 if split else 2  # a class folder's files; deeper ones are in its folders
    for (info, _), p in zip(images, parts, strict=True):
        if len(p) < depth:
            where = "at the top of the zip" if len(p) == 1 else f"directly in {p[0]}/"
            raise DataError(
                f"The image '{info.filename[:120]}' lies {where}, outside any class "
                f"folder. {LAYOUT}"
            )
        if len(p) > depth and is_split_name(p[depth - 2]):  # train/cat/ beside cat/, dog/
            raise DataError(
                f"The image '{info.filename[:120]}' is nested deeper than a class folder. {LAYOUT}"
            )
    _check_zip_classes([p[: depth - 1] for p in parts], split)
    mapped = [(info, p) for (info, _), p in zip(images, parts, strict=True)]
    mapped += [
        (info, path.parts[len(wrapper) :])
        for info, path in others
        if path.parts[: len(wrapper)] == wrapper
    ]
    folders = {p[: depth - 1] for p in parts}
    return [(info, PurePosixPath(*p)) for info, p in mapped if p[: depth - 1] in folders]


def _named_layout(parts):
    """Pictures all in one folder of the zip (its top, or a folder inside) named after their
    classes (`core.sort_classes.classes_in_names`: cat1.jpg, cat2.jpg, dog1.jpg ...): each as
    `(class, name)`, in class folders; None for any other zip."""
    if len({p[:-1] for p in parts}) != 1:
        return None
    classes = classes_in_names([p[-1] for p in parts])
    if classes is None:
        return None
    label = {name: c for c, names in classes.items() for name in names}
    return [(label[p[-1]], p[-1]) for p in parts]


def _check_zip_classes(folders, split):
    """`folders`: each image's class folder, as `(class,)` or `(split, class)`."""
    train = sorted({p[-1] for p in folders if not split or p[0] == "train"})
    if len(train) < 2:
        raise DataError(
            f"The zip has a single class folder ({train[0]}); a classifier needs at least "
            f"two. {LAYOUT}"
        )
    for held_out in sorted({p[0] for p in folders if split and p[0] != "train"}):
        names = sorted({p[1] for p in folders if p[0] == held_out})
        if differ := classes_differ(held_out, names, train):
            raise DataError(f"In the zip: {differ}")


def _remove_stale_partials(dest_root: Path) -> None:
    # A server killed mid-extraction leaves its temporary folder; nobody else will.
    for partial in dest_root.glob(".partial-*"):
        try:
            if time.time() - partial.stat().st_mtime > _STALE_SECONDS:
                shutil.rmtree(partial, ignore_errors=True)
        except OSError:
            pass


def _unwritable(folder, err):
    return DataError(f"The zip could not be unpacked into {folder} ({err.strerror or err}).")


def _extract(archive, plan, tmp: Path, final: Path, max_total_bytes) -> Path:
    try:
        written = 0
        for info, rel in plan:
            target = tmp / rel
            # Every part was checked already; a second guard costs nothing.
            if not Path(os.path.normpath(target)).is_relative_to(tmp):
                raise _unsafe(info.filename[:120], "points outside the archive's folder")
            written = _extract_entry(archive, info, target, written, max_total_bytes)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # else another session unpacked the same zip first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        return final
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, CnnError) or not isinstance(err, Exception):
            raise
        if isinstance(err, OSError) and err.errno is not None:  # disk full, permissions
            raise _unwritable(final.parent, err) from err
        # zlib, bz2, lzma and CRC errors all mean a damaged archive; the broad catch
        # only wraps reading the archive and writing its files.
        raise DataError(f"The zip could not be unpacked: it is damaged ({err}).") from err


def _extract_entry(archive, info, target: Path, written: int, max_total_bytes: int) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as src, open(target, "xb") as dst:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            # Declared sizes were checked, but headers can lie: count what really arrives.
            if written > max_total_bytes:
                raise DataError(
                    f"The zip unpacks to more than {_human(max_total_bytes)}, more than its "
                    "headers declare: refused as a possible zip bomb."
                )
            dst.write(chunk)
    return written


def _human(count: int) -> str:
    if count >= 1024**3:
        return f"{count / 1024**3:,.1f} GB".replace(".0 ", " ")
    if count >= _MIB:
        return f"{count / _MIB:,.1f} MB".replace(".0 ", " ")
    return f"{count / 1024:,.1f} KB".replace(".0 ", " ")


# --- checking a folder ------------------------------------------------------------------


@dataclass
class FolderReport:
    """What `check_folder` found in an image folder.

    Attributes:
        root: the folder checked.
        class_names: class folder names in label order (sorted, as `core.data` uses).
        counts: readable images per class (a list in `class_names` order) for each part:
            `{"images": [...]}` for a flat folder, `{"train": [...], "test": [...]}` for
            one split into `train/` and `test/`, with "val" between them for one with a
            validation folder of its own (`core.data.VAL_FOLDERS`).
        unreadable: `(path relative to root, sentence)` for every file the decoder refused.
        duplicates: files whose bytes repeat an earlier readable file.
        cross_class_duplicates: of those, copies in a group spread over several classes.
        in_train: validation ("val") and test images whose bytes also appear in train.
        problems: reasons the folder cannot be used at all.
        warnings: reasons it can be used, but with care.
    """

    root: str
    class_names: list[str]
    counts: dict[str, list[int]]
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0
    cross_class_duplicates: int = 0
    # (Was `test_in_train`: a report saved before the folder's val/ was read is not loaded.)
    in_train: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def per_class(self) -> list[int]:
        """Readable images per class, all parts together."""
        return [sum(c) for c in zip(*self.counts.values(), strict=True)] if self.counts else []

    @property
    def images(self) -> int:
        return sum(self.per_class)

    def class_table(self) -> list[dict]:
        """One row per class: its name and readable images in each part."""
        return [
            {"class": name, **{part: counts[i] for part, counts in self.counts.items()}}
            for i, name in enumerate(self.class_names)
        ]

    def summary(self) -> str:
        """One line: classes, images, unreadable files and duplicates."""
        text = (
            f"{len(self.class_names)} classes, {self.images:,} images, "
            f"{len(self.unreadable):,} unreadable, {self.duplicates:,} duplicates"
        )
        if self.cross_class_duplicates:
            text += f" ({self.cross_class_duplicates:,} across classes)"
        return text


def is_image_folder(spec: str | os.PathLike) -> bool:
    """Whether `spec` names a folder that `core.data` reads as class folders."""
    path = Path(spec).expanduser()
    return bool(str(spec)) and path.is_dir() and not _is_cifar_batches_dir(path)


def check_folder(
    root: str | os.PathLike, progress=None, listing: FolderListing | None = None
) -> FolderReport:
    """Checks an image folder before it is used: classes, counts, unreadable files, duplicates.

    Reads every file once, decodes it with `core.images.open_image` (the decoder the
    dataset loader uses, so the same files are refused) and hashes its bytes. Given the
    folder's listing, it reads the dataset loader's decode instead, decoding the folder
    into the loader's cache first when it is not there: a check followed by a load then
    reads every file once, not twice.

    Args:
        root: `root/<class>/*` or `root/train/<class>/*` (+ `root/test/<class>/*`, + a
            validation folder's, `core.data.VAL_FOLDERS`).
        progress: called as `progress(done, total)` every `core.data.PROGRESS_EVERY`
            files and at the end.
        listing: `core.data.folder_listing(root)`, or None to read the files here (the
            only way for a folder that cannot be listed, e.g. one with an empty class).

    Returns:
        A `FolderReport`. Its `problems` say why the folder cannot be used (fewer than two
        classes, a class without a readable image, test or validation classes unlike
        train's); its `warnings` name classes with fewer than `MIN_IMAGES_PER_CLASS`
        images, an imbalance over `MAX_IMBALANCE`, duplicates across classes or between
        test (or validation) and train, and files outside any class folder.

    Raises:
        DataError: `root` does not exist or is not a folder.
        ValueError: `listing` is of another folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"The path {root} is not a folder."
            if root.exists()
            else f"The path {root} does not exist."
        )
    parts, class_names, stray = _parts(root)
    shown_names = [shown(name) for name in class_names]  # the folders' own names open them
    report = FolderReport(str(root), shown_names, {p: [0] * len(class_names) for p in parts})
    _class_problems(report, parts, class_names)
    if not class_names:
        return report
    if listing is not None:
        groups = _read_decoded(listing, report, progress)
    else:
        files = [
            (path, label, part)
            for part, folder in parts.items()
            for label, name in enumerate(class_names)
            if (folder / name).is_dir()
            for path in map(Path, class_files(folder / name))
        ]
        groups = _read_all(root, files, report, progress)
    _count_duplicates(report, groups)
    _judge(report, stray)
    if warning := folders_not_read(root):
        report.warnings.append(warning)
    return report


def saved_check(root: str | os.PathLike, signature: str, cache_dir=None) -> FolderReport | None:
    """The report `save_check` kept for `root` as it was at `signature`, or None.

    A check reads every file (16 s for CIFAR-10's 50,000 JPEGs here); its report is a few
    kilobytes, so it is kept on disk and a restarted dashboard does not read them again.
    """
    path = _check_path(signature, cache_dir)
    try:
        saved = json.loads(path.read_text())
        if saved.get("root") != str(Path(root).expanduser()):  # as check_folder writes it
            return None
        saved["unreadable"] = [tuple(item) for item in saved["unreadable"]]
        return FolderReport(**saved)
    except (OSError, ValueError, TypeError, KeyError):
        return None  # never checked, or written by another version: check again


def save_check(report: FolderReport, signature: str, cache_dir=None) -> None:
    """Keeps `report` for `saved_check`, replacing the reports of older states of its folder.

    Reports of folders that no longer exist (a deleted upload) go too.
    """
    path = _check_path(signature, cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(asdict(report)).encode())
        remove_stale_entries(path, "check-*.json", _saved_root, (report.root, ""))
    except OSError:
        pass  # a report we cannot keep only costs a check next time


def _check_path(signature: str, cache_dir) -> Path:
    return Path(cache_dir or default_cache_dir()) / f"check-{signature}.json"


def _saved_root(path: Path) -> tuple[str, str]:
    return json.loads(path.read_text())["root"], ""


def typed_path(text: str) -> str:
    """A path as typed or pasted: without the quotes a file manager's "Copy as path" puts
    around it, or the `file://` of a copied location (its %20 and such decoded)."""
    path = text.strip()
    if len(path) > 1 and path[0] == path[-1] and path[0] in "\"'":
        path = path[1:-1].strip()
    if path.startswith("file://"):
        path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
    return path


def folder_signature(root: str | os.PathLike) -> str:
    """A short hash of every folder's path and every file's path, size and modification
    time under `root`.

    Args:
        root: an image folder, as for `check_folder`.

    Returns:
        24 hex digits that change whenever a file is added, removed or rewritten, and
        whenever a folder is added or removed: an empty class folder is a class.
    """
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        digest.update(os.fsencode(f"{dirpath}/\n"))
        for name in sorted(filenames):
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            digest.update(os.fsencode(f"{dirpath}/{name}|{st.st_size}|{st.st_mtime_ns}\n"))
    return digest.hexdigest()[:24]


def _parts(root: Path):
    """Returns `({part: folder}, class names, files outside class folders)`."""
    train_root = root / "train" if (root / "train").is_dir() else root
    parts = {"images": root} if train_root == root else {"train": train_root}
    parts |= held_out_folders(root)
    names = _subfolders(train_root)
    stray = [p for p in _files(train_root)]
    return parts, names, stray


def folders_not_read(root: str | os.PathLike) -> str | None:
    """The warning for the folders beside `root/train/` that are not read (all but test/
    and one validation folder: a second one, a folder by another name, or one of pictures
    without class folders, as a competition's unlabelled test/), or None."""
    root = Path(root).expanduser()
    if not (root / "train").is_dir():
        return None
    held = held_out_folders(root)
    read = {"train", *(folder.name for folder in held.values())}
    unread = [name for name in _subfolders(root) if name not in read]
    flat = [name for name in unread if not holds_folders(root / name)]
    pictures = [name for name in flat if any(map(_is_picture, _files(root / name)))]
    said = [_not_read(held, [name for name in unread if name not in flat])]  # flat: no loss
    if pictures:
        one = len(pictures) == 1
        said.append(
            f"{_listed(pictures)} beside train/ {'holds' if one else 'hold'} pictures without "
            f"class folders: with no labels to score a model on, {'it is' if one else 'they are'} "
            "not read. The Classify page (or `python -m core.classify`) answers for such "
            "pictures."
        )
    return " ".join(filter(None, said)) or None


def _not_read(held: dict[str, Path], names: list[str]) -> str:
    """The sentence for class-folder `names` beside train/ that are not read, or "";
    `held`: the folders read beside it (`core.data.held_out_folders`)."""
    if not names:
        return ""
    one = len(names) == 1
    if "test" in held:
        into = ", ".join(f"{name}/" for name in ("train", held.get("val", Path()).name) if name)
        do = f"To use {'its' if one else 'their'} images, move them into {into} or test/."
    else:
        do = (
            "To score models on a folder of held-out images, name it test/ (the Evaluate "
            "page's test split)."
        )
    return (
        f"Only train/, test/ and one validation folder ({', '.join(VAL_FOLDERS)}) are read: "
        f"the {'folder' if one else 'folders'} {_listed(names)} beside train/ "
        f"{'is' if one else 'are'} not. {do}"
    )


def _is_picture(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _listed(names: list[str]) -> str:
    return ", ".join(shown(name) + "/" for name in names)


def _subfolders(folder: Path) -> list[str]:
    return sorted(d.name for d in os.scandir(folder) if is_entry(d, "dir"))


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(Path(e.path) for e in os.scandir(folder) if is_entry(e, "file"))


def _class_problems(report: FolderReport, parts, folders: list[str]):
    """`folders`: the class folders' own names (`report.class_names` as shown)."""
    names = report.class_names
    train = next(iter(parts.values()))  # "images" or "train": where the classes are
    if not names:
        report.problems.append(f"{shown(str(train))} has no class folders. {LAYOUT}{hint(train)}")
    elif len(names) < 2:
        report.problems.append(
            f"{report.root} has a single class folder ({names[0]}); a classifier needs at "
            f"least two classes.{classes_inside(train / folders[0])}"
        )
    elif said := splits_as_classes(train, folders):
        report.problems.append(said)
    for part in ("val", "test"):
        if part in parts:
            held_out = [shown(name) for name in _subfolders(parts[part])]
            if differ := classes_differ(parts[part].name, held_out, names):
                report.problems.append(differ)


def _read_all(root: Path, files, report: FolderReport, progress=None):
    """Decodes and hashes every file as the dataset loader does (worker processes for a
    large folder), for a folder it cannot list; returns `{digest: [(label, part), ...]}`."""
    listing = [(path, label, _code(part)) for path, label, part in files]
    # JPEGs decode at the smallest libjpeg scale keeping CHECK_SIDE: a reduced scale still
    # decodes every byte, so refuses what a whole decode refuses, 9-11x faster for a
    # 12-megapixel photo (core.images.decode_image).
    arrays, skipped = decode_files(listing, CHECK_SIDE // 2, progress)
    return _tally(str(root), arrays["y"], arrays["part"], arrays["digests"], skipped, report)


def _read_decoded(listing: FolderListing, report: FolderReport, progress=None):
    """As `_read_all`, from the dataset loader's decode of the same files."""
    root = listing.source[0]
    if not listing.describes(report.root) or listing.class_names != report.class_names:
        raise ValueError(f"the listing given is of {root}, not of {report.root}")
    labels, parts, digests, skipped = folder_contents(listing, progress)
    return _tally(root, labels, parts, digests, skipped, report)


def _tally(root: str, labels, parts, digests, skipped, report: FolderReport):
    """Counts the decoded files into `report`, lists the others as unreadable; returns
    `{digest: [(label, part), ...]}`."""
    report.unreadable = [
        (shown(Path(path).relative_to(root).as_posix()), why) for path, why in skipped
    ]
    names = list(report.counts)[:1] + list(PARTS[1:])  # part 0 is "images" or "train"
    groups = defaultdict(list)
    rows = zip(map(bytes, digests), labels.tolist(), parts.tolist(), strict=True)
    for digest, label, part in rows:
        report.counts[names[part]][label] += 1
        groups[digest].append((label, names[part]))
    return groups


def _code(part: str) -> int:
    """A part's code in the decoded arrays (`core.data.PARTS`; a flat folder's "images"
    are its training images)."""
    return 0 if part == "images" else PARTS.index(part)


def _count_duplicates(report: FolderReport, groups) -> None:
    for members in groups.values():
        if len(members) < 2:
            continue
        report.duplicates += len(members) - 1
        if len({label for label, _ in members}) > 1:
            report.cross_class_duplicates += len(members) - 1
        parts = [part for _, part in members]
        if "train" in parts:
            for held_out in ("val", "test"):
                if count := parts.count(held_out):
                    report.in_train[held_out] = report.in_train.get(held_out, 0) + count


def _judge(report: FolderReport, stray) -> None:
    per_class = report.per_class
    names = report.class_names
    empty = [n for n, c in zip(names, per_class, strict=True) if c == 0]
    if empty:
        report.problems.append(no_readable_image(empty))
    few = [
        f"{n} ({c})" for n, c in zip(names, per_class, strict=True) if 0 < c < MIN_IMAGES_PER_CLASS
    ]
    if few:
        report.warnings.append(
            f"Very few images in {', '.join(few)}: with fewer than {MIN_IMAGES_PER_CLASS} "
            "images a class is barely learnt and its accuracy means little."
        )
    _warn_imbalance(report, per_class)
    _warn_lacking(report)
    if report.cross_class_duplicates:
        report.warnings.append(
            f"{counted(report.cross_class_duplicates, 'duplicate image')} "
            f"{'is' if report.cross_class_duplicates == 1 else 'are'} filed under more than "
            "one class: the same picture with two labels confuses training."
        )
    for part, count in sorted(report.in_train.items(), reverse=True):  # val's first
        which = "validation" if part == "val" else "test"
        report.warnings.append(
            f"{counted(count, which + ' image')} also {'appears' if count == 1 else 'appear'} "
            f"in train, so {which} accuracy will look better than it is."
        )
    if stray:
        report.warnings.append(
            f"1 file lies outside any class folder ({shown(stray[0].name)}) and is ignored."
            if len(stray) == 1
            else f"{len(stray):,} files lie outside any class folder (e.g. "
            f"{shown(stray[0].name)}) and are ignored."
        )


def _warn_lacking(report: FolderReport) -> None:
    """A validation or test folder without a readable picture of some class (one class
    folder fewer than train/, or an empty one) is read; its accuracy says nothing of them."""
    for part in ("val", "test"):
        counts = report.counts.get(part)
        if not counts or not any(counts):  # nothing to read there: nothing to warn of
            continue
        lacking = without_images(report.class_names, counts)
        if not lacking:
            continue
        which = "validation" if part == "val" else "test"
        one = len(lacking) == 1
        report.warnings.append(
            f"The {which} images hold no picture of {', '.join(lacking)}: {which} accuracy "
            f"says nothing of {'that class' if one else 'those classes'}, and "
            f"{'its' if one else 'their'} recall is left blank. Add a few pictures of "
            f"{'it' if one else 'each'} to the {which} folder for a score of every class."
        )


def _warn_imbalance(report: FolderReport, per_class) -> None:
    readable = [(c, n) for c, n in zip(per_class, report.class_names, strict=True) if c]
    if len(readable) < 2:
        return
    (small, small_name), (large, large_name) = min(readable), max(readable)
    if large > MAX_IMBALANCE * small:
        report.warnings.append(
            f"The classes are very unbalanced: {large_name} has {large:,} images, "
            f"{small_name} only {small:,} ({large / small:.0f}x). The model will favour "
            'the large classes: train with "Balance the classes" (--balance-classes), and '
            "look at the balanced accuracy and per-class recall, not accuracy alone."
        )
