import os

import pytest

from core import sort_classes
from core.data import load_dataset
from core.errors import DataError
from tests.conftest import write_image_folder
from tests.mounts import needs_root, read_only


def _flat(folder, names):
    """Real pictures under the given names, in one folder."""
    write_image_folder(folder / ".made", per_class=len(names), classes=("x",))
    folder.mkdir(exist_ok=True)
    for png, name in zip(sorted((folder / ".made" / "x").iterdir()), names, strict=True):
        png.rename(folder / name)
    (folder / ".made" / "x").rmdir()
    (folder / ".made").rmdir()
    return folder


@pytest.mark.parametrize(
    "names, classes",
    [
        (["cat.0.jpg", "cat.1.jpg", "dog.0.jpg", "dog.10.jpg"], {"cat": 2, "dog": 2}),
        (["dog_12.png", "dog_3.png", "fox-1.png", "fox-2.png"], {"dog": 2, "fox": 2}),
        (
            ["Golden Retriever 3.JPG", "Golden Retriever 4.JPG", "pug 1.jpg", "pug 2.jpg"],
            {"Golden Retriever": 2, "pug": 2},
        ),
        # One camera's names make one "class"; one picture a class is no pattern.
        (["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg"], None),
        # Two cameras' names are not two classes, nor are a phone's photos and screenshots.
        (["IMG_0001.jpg", "IMG_0002.jpg", "DSC_0001.JPG", "DSC_0002.JPG"], None),
        (["DSCN0001.jpg", "DSCN0002.jpg", "GOPR0001.JPG", "GOPR0002.JPG"], None),
        (["IMG_7.heic", "IMG_8.heic", "Screenshot 1.png", "Screenshot 2.png"], None),
        (["cat.0.jpg", "dog.0.jpg"], None),
        # A picture without a number in its name: not every name carries a class.
        (["cat.0.jpg", "cat.1.jpg", "dog.0.jpg", "dog.1.jpg", "holiday.jpg"], None),
    ],
)
def test_classes_are_read_from_names_that_are_a_class_and_a_number(tmp_path, names, classes):
    for name in names:
        (tmp_path / name).write_bytes(b"")  # the names are what is read
    (tmp_path / "notes.txt").write_text("not a picture, left out")
    found = (labels := sort_classes.labels_of(tmp_path)) and labels.classes
    assert (found and {c: len(f) for c, f in found.items()}) == classes


def test_a_folder_is_sorted_beside_itself_into_one_the_loader_takes(tmp_path, capsys):
    names = [f"{c}.{i}.png" for c in ("cat", "dog") for i in range(6)]
    flat = _flat(tmp_path / "train", names)
    assert sort_classes.main([str(flat), "--quiet"]) == 0
    out = capsys.readouterr().out
    target = tmp_path / "train-by-class"
    assert out == f"{target}\n12 pictures in 2 class folders (cat: 6, dog: 6).\n"
    assert sorted(os.listdir(target / "dog")) == sorted(n for n in names if n.startswith("dog"))
    assert (target / "cat" / "cat.0.png").samefile(flat / "cat.0.png")  # a link, not a copy
    assert sorted(os.listdir(flat)) == sorted(names)  # the folder as it was
    assert load_dataset(target, val_fraction=0).class_names == ["cat", "dog"]
    # Again: the sorted folder is there already, and nothing is written over it.
    assert sort_classes.main([str(flat), "--quiet"]) == 1
    assert "train-by-class exists already: give it as the dataset" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_names_without_classes_are_refused_and_links_fall_back_to_copies(tmp_path, monkeypatch):
    flat = _flat(tmp_path / "photos", ["IMG_1.png", "IMG_2.png"])
    with pytest.raises(DataError, match="are not named after their classes"):
        sort_classes.sort_into_classes(flat)

    def no_links(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    flat = _flat(tmp_path / "pets", ["a.1.png", "a.2.png", "b.1.png", "b.2.png"])
    target = sort_classes.sort_into_classes(flat)
    copy = target / "b" / "b.2.png"
    assert copy.read_bytes() == (flat / "b.2.png").read_bytes() and not copy.samefile(
        flat / "b.2.png"
    )


def test_a_sort_that_cannot_be_written_leaves_nothing_behind(tmp_path, monkeypatch):
    flat = _flat(tmp_path / "pets", ["a.1.png", "a.2.png", "b.1.png", "b.2.png"])
    calls = []

    def fails_on_the_third(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        os.link(source, target)

    monkeypatch.setattr(sort_classes, "_link_or_copy", fails_on_the_third)
    with pytest.raises(DataError) as err:
        sort_classes.sort_into_classes(flat)
    assert str(err.value) == (
        f"The sorted folder could not be written in {tmp_path} (No space left on device)."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pets"]


def test_the_loader_refusing_such_a_folder_names_the_command_that_sorts_it(tmp_path):
    flat = _flat(tmp_path / "train", ["cat.1.png", "cat.2.png", "dog.1.png", "dog.2.png"])
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path)
    assert str(err.value).endswith(
        f"Its 4 pictures are named after 2 classes (cat, dog: cat.1.png, dog.1.png): `python -m "
        f'core.sort_classes {flat}` (or the Dataset page\'s "Sort them into class folders") puts '
        f"them in a folder per class in {tmp_path / 'train-by-class'}, the folder to give then."
    )


def _labelled(root, rows, header="id,label", name="train_labels.csv"):
    """train/ of pictures named by id (as Kaggle's competitions), and a CSV beside it."""
    ids = [row.split(",")[0] for row in rows]
    _flat(root / "train", [f"{i}.png" for i in ids] + ["f00.png"])  # f00: in no row
    (root / name).write_text("\n".join([header, *rows]) + "\n")
    return root / "train"


def test_classes_are_read_from_a_csv_beside_the_folder(tmp_path, capsys):
    rows = [f"{i:03x},{'yes' if i % 3 else 'no'}" for i in range(12)]
    flat = _labelled(tmp_path, rows)
    (tmp_path / "sample_submission.csv").write_text("id,label\nzz1,0\nzz2,0\nzz3,1\n")
    labels = sort_classes.labels_of(flat)
    assert labels.csv == tmp_path / "train_labels.csv" and labels.column == "label"
    assert {c: len(n) for c, n in labels.classes.items()} == {"no": 4, "yes": 8}
    assert labels.unlabelled == 1 and labels.classes["no"][:2] == ["000.png", "003.png"]
    assert sort_classes.hint(flat).startswith(
        f" Its 13 pictures are labelled in {tmp_path / 'train_labels.csv'} (its column label "
        "gives 2 classes: no, yes), 1 of them not: `python -m core.sort_classes"
    )
    assert sort_classes.main([str(flat), "--quiet"]) == 0
    assert capsys.readouterr().out.endswith(
        "12 pictures in 2 class folders (no: 4, yes: 8); 1 picture without a class left out.\n"
    )
    assert load_dataset(sort_classes.sorted_folder(flat), val_fraction=0).class_names == [
        "no",
        "yes",
    ]


@pytest.mark.parametrize(
    "header, rows, column",
    [
        # A fold column could be classes too: the label's name decides.
        (
            "image,fold,breed",
            [f"p{i},{i % 3},{'pug' if i < 6 else 'husky'}" for i in range(12)],
            "breed",
        ),
        # Two columns of classes, neither named as labels are: which is meant is not known.
        ("id,colour,size", [f"p{i},{'red' if i < 6 else 'blue'},{i % 2}" for i in range(12)], None),
        # A picture in two rows with two classes: several labels a picture, not classes.
        ("id,label", [f"p{i},{'a' if i < 6 else 'b'}" for i in range(12)] + ["p0,b"], None),
        # A class a picture (free text): not classes.
        ("id,caption", [f"p{i},a photo of thing {i}" for i in range(12)], None),
    ],
)
def test_a_csv_label_column_is_taken_only_when_it_is_plain(tmp_path, header, rows, column):
    flat = _labelled(tmp_path, rows, header, name="labels.csv")
    labels = sort_classes.labels_of(flat)
    assert (labels and labels.column) == column


def test_a_csv_that_labels_few_of_the_pictures_is_not_theirs(tmp_path):
    rows = [f"p{i},{'a' if i < 5 else 'b'}" for i in range(10)]
    flat = _labelled(tmp_path, rows, name="labels.csv")  # 10 of 11 pictures: 91%
    assert sort_classes.labels_of(flat).unlabelled == 1
    _flat(tmp_path / "more", ["q1.png", "q2.png"])  # 10 of 13 now: 77%
    for png in (tmp_path / "more").iterdir():
        png.rename(flat / png.name)
    assert sort_classes.labels_of(flat) is None


@needs_root
def test_a_folder_on_a_read_only_disk_is_refused_with_the_reason(tmp_path):
    flat = _flat(tmp_path / "disk" / "train", ["a.1.png", "a.2.png", "b.1.png", "b.2.png"])
    with read_only(tmp_path / "disk"):
        with pytest.raises(DataError) as err:
            sort_classes.sort_into_classes(flat)
        assert str(err.value) == (
            f"The sorted folder could not be written in {tmp_path / 'disk'} "
            "(Read-only file system)."
        )
        assert sorted(os.listdir(tmp_path / "disk")) == ["train"]
