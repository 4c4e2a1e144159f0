"""core.near_duplicates on generated photo-like images with planted copies: a copy that is
resized, recompressed or brightened is found, a different picture on the same background
is not, and the pairs, counts and accuracies are the planted ones."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from core import near_duplicates as nd
from core.data import Dataset, load_dataset
from tests.conftest import smooth_images


def jpeg(image: np.ndarray, quality: int = 60) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def resized(image: np.ndarray) -> np.ndarray:
    """Down to 24 pixels and back up: a copy saved at another size."""
    small = Image.fromarray(image).resize((24, 24), Image.BILINEAR)
    return np.asarray(small.resize((32, 32), Image.BILINEAR))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    prints = nd.fingerprints(np.stack([a, b]))
    return float(prints[0] @ prints[1])


def test_a_changed_copy_is_near_and_another_picture_is_not():
    image, other = smooth_images(2, seed=3)
    brighter = np.clip(image.astype(int) * 0.8 + 30, 0, 255).astype(np.uint8)
    assert similarity(image, image) == pytest.approx(1.0, abs=1e-5)
    for copy in (jpeg(image), resized(image), brighter):
        assert similarity(image, copy) >= nd.SIMILAR
    assert similarity(image, other) < 0.5


def test_a_small_object_on_the_same_sky_is_another_picture():
    # The layout part alone calls these the same (a plain gradient dominates its 8x8 means);
    # the details part sees that the object is not.
    rows = np.linspace(90, 200, 32)[:, None, None]
    sky = np.broadcast_to(rows * np.array([0.5, 0.7, 1.0]), (32, 32, 3)).astype(np.uint8)
    plane, bird = sky.copy(), sky.copy()
    plane[14:17, 6:20] = 40
    bird[8:12, 20:24] = 60
    prints = nd.fingerprints(np.stack([plane, bird]))
    layout = float(prints[0, :192] @ prints[1, :192]) * 2
    assert layout >= nd.SIMILAR
    assert similarity(plane, bird) < nd.SIMILAR


def test_small_images_are_enlarged_before_their_grid():
    images = smooth_images(3, seed=7)
    small = images[:, ::4, ::4]  # 8x8
    np.testing.assert_allclose(
        nd.fingerprints(small), nd.fingerprints(small.repeat(2, axis=1).repeat(2, axis=2))
    )
    # 11x11: both parts of length 1/sqrt(2) (a grid with a repeated edge lost the details)
    norms = np.linalg.norm(nd.fingerprints(images[:, ::3, ::3]), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_an_image_of_one_colour_is_near_nothing():
    flat = np.full((2, 32, 32, 3), 120, np.uint8)
    np.testing.assert_array_equal(nd.fingerprints(flat), 0)
    index, similar = nd.most_similar(nd.fingerprints(flat), nd.fingerprints(flat), same=True)
    assert (similar < nd.SIMILAR).all()


def planted() -> tuple[Dataset, dict]:
    """Train and val of distinct smooth pictures, with copies planted: val 1 is train 4
    recompressed, train 7 is train 2 resized (under another label), val 3 is val 0."""
    x = smooth_images(30, seed=0)
    train, val = x[:20].copy(), x[20:].copy()
    val[1] = jpeg(train[4])
    train[7] = resized(train[2])
    val[3] = val[0]
    y_train = np.arange(20) % 3
    y_val = np.arange(10) % 3
    y_val[1] = y_train[4]
    y_train[7] = (y_train[2] + 1) % 3
    y_val[3] = y_val[0]
    data = Dataset(["a", "b", "c"], "generated", {"train": (train, y_train), "val": (val, y_val)})
    return data, {("train", 2, "train", 7), ("train", 4, "val", 1), ("val", 0, "val", 3)}


def test_the_planted_copies_are_the_pairs_found():
    data, expected = planted()
    found = nd.near_duplicates(data)
    pairs = nd.pairs(found)
    assert {(*p.a, *p.b) for p in pairs} == expected
    assert all(p.similarity >= nd.SIMILAR for p in pairs)
    assert [p.similarity for p in pairs] == sorted((p.similarity for p in pairs), reverse=True)
    conflicts = [p for p in pairs if len(set(p.labels(data))) == 2]
    assert [(*p.a, *p.b) for p in conflicts] == [("train", 2, "train", 7)]
    np.testing.assert_array_equal(np.flatnonzero(nd.in_split(found, "val", "train")), [1])
    assert found["train>train:index"][2] == 7 and found["train>train:index"][7] == 2
    assert found["val>val:index"][0] == 3  # never itself


def test_the_pairs_as_csv_name_each_images_file_and_class():
    data, _ = planted()
    pairs = nd.pairs(nd.near_duplicates(data))
    rows = list(csv.DictReader(io.StringIO(nd.pairs_csv(pairs, data, nd.groups(pairs, data)))))
    assert [(r["split_a"], r["index_a"], r["file_a"], r["class_a"]) for r in rows][:1] == [
        (*map(str, pairs[0].a), "", data.class_names[pairs[0].labels(data)[0]])
    ]
    data.files = {
        name: np.array([f"{name}/{i}.png" for i in range(len(y))])
        for name, (_, y) in data.splits.items()
    }
    rows = list(csv.DictReader(io.StringIO(nd.pairs_csv(pairs, data, nd.groups(pairs, data)))))
    found = {(r["file_a"], r["class_a"], r["file_b"], r["class_b"]) for r in rows}
    assert found == {
        ("train/2.png", "c", "train/7.png", "a"),
        ("train/4.png", "b", "val/1.png", "b"),
        ("val/0.png", "a", "val/3.png", "a"),
    }
    assert [float(r["similarity"]) for r in rows] == pytest.approx(
        [p.similarity for p in pairs], abs=1e-4
    )


def test_a_picture_saved_three_times_is_one_group_of_three():
    data, _ = planted()
    x = data.splits["train"][0]
    x[12] = jpeg(data.splits["val"][0][5])  # val 5, saved twice more in train
    x[13] = np.clip(data.splits["val"][0][5].astype(int) + 12, 0, 255).astype(np.uint8)
    pairs = nd.pairs(nd.near_duplicates(data))
    assert nd.groups(pairs, data) == [
        [("train", 12), ("train", 13), ("val", 5)],
        [("train", 2), ("train", 7)],
        [("train", 4), ("val", 1)],
        [("val", 0), ("val", 3)],
    ]
    rows = list(csv.DictReader(io.StringIO(nd.pairs_csv(pairs, data, nd.groups(pairs, data)))))
    by_group = {}
    for r in rows:
        by_group.setdefault(r["group"], set()).update(
            {(r["split_a"], int(r["index_a"])), (r["split_b"], int(r["index_b"]))}
        )
    assert by_group == {
        "1": {("train", 12), ("train", 13), ("val", 5)},
        "2": {("train", 2), ("train", 7)},
        "3": {("train", 4), ("val", 1)},
        "4": {("val", 0), ("val", 3)},
    }
    assert nd.groups([], data) == []


def test_copies_whose_closest_images_are_their_twins_are_still_one_picture():
    # Two exact copies of a picture and two of it recompressed: each image's closest is its
    # twin, so closest pairs alone make two groups; the four are one picture saved 4 times.
    data, _ = planted()
    picture = smooth_images(1, seed=99)[0]
    alike = similarity(picture, jpeg(picture))
    assert nd.SIMILAR <= alike < 0.9999
    x = data.splits["train"][0]
    x[12] = x[13] = picture
    x[14] = x[15] = jpeg(picture)
    pairs = nd.pairs(nd.near_duplicates(data))
    twins = [{("train", 12), ("train", 13)}, {("train", 14), ("train", 15)}]
    assert [{p.a, p.b} for p in pairs if {p.a, p.b} & (twins[0] | twins[1])] == twins
    four = sorted(twins[0] | twins[1])
    assert four in nd.groups(pairs, data)
    assert sorted(map(sorted, twins)) == sorted(
        g for g in nd.groups(pairs, data, threshold=(alike + 1) / 2) if set(g) <= set(four)
    )
    rows = list(csv.DictReader(io.StringIO(nd.pairs_csv(pairs, data, nd.groups(pairs, data)))))
    assert len({r["group"] for r in rows if (r["split_a"], int(r["index_a"])) in four}) == 1


@pytest.mark.parametrize(
    "block, floats",
    [(7, 2**26), (1024, 150), (1024, 10)],  # rows at once: 7, 3 (150 // 50), 1 (at least one)
)
def test_most_similar_matches_a_brute_force_search(monkeypatch, block, floats):
    monkeypatch.setattr(nd, "BLOCK", block)
    monkeypatch.setattr(nd, "BLOCK_FLOATS", floats)
    prints = nd.fingerprints(smooth_images(50, seed=5))
    whole = prints @ prints.T
    np.fill_diagonal(whole, -np.inf)
    index, similar = nd.most_similar(prints, prints, same=True)
    np.testing.assert_array_equal(index, whole.argmax(axis=1))
    # float32 sums in another order (blocks): 1.2e-6 apart on an AVX-512 host's BLAS.
    np.testing.assert_allclose(similar, whole.max(axis=1), rtol=1e-5)
    others = nd.fingerprints(smooth_images(20, seed=6))
    index, similar, back, back_similar = nd.both_ways(others, prints)
    np.testing.assert_array_equal(index, (others @ prints.T).argmax(axis=1))
    np.testing.assert_array_equal(back, (prints @ others.T).argmax(axis=1))  # one pass, both
    np.testing.assert_allclose(back_similar, (prints @ others.T).max(axis=1), rtol=1e-5)


def test_kept_on_disk_and_read_back_without_comparing(tmp_path, monkeypatch):
    data, _ = planted()
    assert nd.near_duplicates_if_kept(data, tmp_path) is None
    calls = []
    first = nd.kept_near_duplicates(data, tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (30, 30)  # 30 images, each compared with both splits
    monkeypatch.setattr(nd, "near_duplicates", lambda *a: pytest.fail("compared again"))
    again = nd.kept_near_duplicates(data, tmp_path)
    assert again.keys() == first.keys()
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])
    assert nd.near_duplicates_if_kept(data, tmp_path) is not None
    data.splits["val"][0][5] = 255 - data.splits["val"][0][5]  # another image: not kept
    assert nd.near_duplicates_if_kept(data, tmp_path) is None


def test_accuracy_with_and_without_a_near_duplicate():
    correct = np.array([1, 1, 0, 1, 0, 0], bool)
    duplicated = np.array([1, 1, 0, 0, 0, 1], bool)
    assert nd.accuracy_by_duplicate(correct, duplicated) == (
        pytest.approx(2 / 3),
        pytest.approx(1 / 3),
    )
    on, off = nd.accuracy_by_duplicate(correct, np.zeros(6, bool))
    assert np.isnan(on) and off == pytest.approx(0.5)


def test_the_cli_prints_what_core_finds_and_writes_the_csv(tmp_path, capsys):
    from tests.conftest import write_cifar_archive, write_image_folder

    write_image_folder(tmp_path / "d", per_class=8, size=32)
    copy = tmp_path / "d" / "dog" / "copy.jpg"
    Image.open(tmp_path / "d" / "cat" / "000.png").save(copy, quality=90)  # a cat filed as dog
    assert nd.main([str(tmp_path / "d"), "--csv", str(tmp_path / "pairs.csv")]) == 0
    ds = load_dataset(tmp_path / "d", val_fraction=0.1, seed=0)
    found = nd.near_duplicates(ds)
    printed = capsys.readouterr().out  # Keras's progress bars, then the summary
    assert "\r" not in printed  # to a file: each bar's last line only
    assert printed.rstrip().endswith(nd.format_summary(found, ds))
    assert nd.format_summary(found, ds).startswith("1 pair of near-duplicates")
    assert "\nThe pairs join into 1 picture saved more than once: 1 twice.\n" in printed
    rows = list(csv.DictReader((tmp_path / "pairs.csv").open()))
    assert {(r["file_a"], r["class_a"]) for r in rows} | {
        (r["file_b"], r["class_b"]) for r in rows
    } == {
        ("cat/000.png", "cat"),
        ("dog/copy.jpg", "dog"),
    }
    assert nd.main([str(tmp_path / "d"), "--redundant", str(tmp_path / "delete.csv")]) == 0
    assert "\n0 files repeat a picture" in capsys.readouterr().out  # the two are a cat and a dog
    Image.open(tmp_path / "d" / "cat" / "001.png").save(tmp_path / "d" / "cat" / "c.png")
    assert nd.main([str(tmp_path / "d"), "--redundant", str(tmp_path / "delete.csv")]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"Listed in {tmp_path / 'delete.csv'}.")
    assert list(csv.reader((tmp_path / "delete.csv").open())) == [
        ["file", "class", "same_picture_as"],
        ["cat/c.png", "cat", "cat/001.png"],
    ]
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=4)
    archive = str(tmp_path / "cifar-10-python.tar.gz")
    assert nd.main([archive, "--redundant", str(tmp_path / "x.csv")]) == 1
    assert "--redundant needs an image folder" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert nd.main([str(tmp_path / "nothing")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert nd.main([str(tmp_path / "d"), "--csv", str(tmp_path / "no" / "such" / "dir.csv")]) == 1
    assert "could not be written (No such file or directory)" in capsys.readouterr().err


def test_without_copies_leaves_out_the_training_copies_of_held_out_images_only():
    data, _ = planted()
    x_test = smooth_images(4, seed=9)
    x_test[2] = jpeg(data.splits["train"][0][11])  # a test image whose copy is train 11
    data.splits["test"] = (x_test, np.arange(4) % 3)
    data.files = {
        s: np.array([f"{s}/{i}.png" for i in range(len(y))]) for s, (_, y) in data.splits.items()
    }
    data.stored = {s: np.arange(len(y) * 3).reshape(-1, 3) for s, (_, y) in data.splits.items()}
    kept = nd.without_copies(data)
    # Train 4 (val 1's original) and train 11 (test 2's) go; train 2 and 7 copy each other
    # within train and stay; val and test are as they were.
    expected = [i for i in range(20) if i not in (4, 11)]
    np.testing.assert_array_equal(kept.splits["train"][0], data.splits["train"][0][expected])
    np.testing.assert_array_equal(kept.splits["train"][1], data.splits["train"][1][expected])
    assert kept.files["train"].tolist() == [f"train/{i}.png" for i in expected]
    np.testing.assert_array_equal(kept.stored["train"], data.stored["train"][expected])
    for split in ("val", "test"):
        assert kept.splits[split][0] is data.splits[split][0]
        assert kept.files[split] is data.files[split]
        assert kept.stored[split] is data.stored[split]
    assert kept.left_out == 2 and data.left_out == 0
    assert kept.summary()["near_duplicates_left_out"] == 2
    assert "near_duplicates_left_out" not in data.summary()
    again = nd.near_duplicates(kept)
    assert not nd.in_split(again, "val", "train").any()
    assert not nd.in_split(again, "test", "train").any()
    # Nothing held out: nothing to leave out.
    train_only = Dataset(["a", "b", "c"], "generated", {"train": data.splits["train"]})
    assert nd.without_copies(train_only).splits["train"][0].shape == (20, 32, 32, 3)


@pytest.mark.parametrize("floats", [2**26, 50 * 7])  # all compared once; 7 rows per pass
def test_a_long_chain_of_alike_images_is_one_group_and_another_chain_another(monkeypatch, floats):
    # Points on two arcs in planes at right angles, neighbours alike and those two apart
    # not: every link is needed (video frames), and the arcs stay apart. Shuffled, so labels
    # travel both ways.
    monkeypatch.setattr(nd, "BLOCK_FLOATS", floats)
    step = 0.3  # cos 0.3 = 0.955 >= 0.93 > cos 0.6 = 0.825; 20 steps do not close a circle
    arcs = np.zeros((35, 4), np.float32)
    angles = np.arange(20) * step
    arcs[:20, 0], arcs[:20, 1] = np.cos(angles), np.sin(angles)
    angles = np.arange(15) * step
    arcs[20:, 2], arcs[20:, 3] = np.cos(angles), np.sin(angles)
    order = np.random.default_rng(0).permutation(len(arcs))
    prints = arcs[order]
    none = np.zeros(0, np.int64)
    labels = nd._joined(prints, nd.SIMILAR, none, none)
    arc = order < 20
    assert len(set(labels[arc])) == 1 and len(set(labels[~arc])) == 1
    assert labels[arc][0] != labels[~arc][0]
    assert labels[arc][0] == np.flatnonzero(arc)[0]  # the first index of each
    # a link given as a pair joins them, alike or not
    first, second = np.flatnonzero(arc)[0], np.flatnonzero(~arc)[0]
    joined = nd._joined(prints, nd.SIMILAR, np.array([second]), np.array([first]))
    assert (joined == min(first, second)).all()


def test_the_files_to_delete_keep_one_of_each_picture_and_leave_mixed_labels_alone():
    data, _ = planted()
    x = data.splits["train"][0]
    x[12] = x[13] = jpeg(data.splits["val"][0][5])  # val 5 twice more, labelled as val 5
    data.splits["train"][1][[12, 13]] = data.splits["val"][1][5]
    data.files = {
        s: np.array([f"{s}/{i:02d}.png" for i in range(len(y))])
        for s, (_, y) in data.splits.items()
    }
    found_groups = nd.groups(nd.pairs(nd.near_duplicates(data)), data)
    rows, mixed = nd.redundant_files(found_groups, data)
    name = data.class_names
    assert rows == [  # train 2 and 7 (two labels) are for a person
        ("train/13.png", name[data.splits["val"][1][5]], "train/12.png"),
        ("val/01.png", name[data.splits["train"][1][4]], "train/04.png"),
        ("val/03.png", name[data.splits["val"][1][0]], "val/00.png"),
        ("val/05.png", name[data.splits["val"][1][5]], "train/12.png"),
    ]
    assert mixed == 1
    assert list(csv.reader(io.StringIO(nd.redundant_csv(rows)))) == [
        ["file", "class", "same_picture_as"],
        *map(list, rows),
    ]
    assert nd.redundant_summary(rows, mixed) == (
        "4 files repeat a picture that another file of its class holds (the first in path "
        "order is kept); 1 picture is filed under two classes and left out, for you to "
        "decide which label is right."
    )
    assert nd.redundant_summary(rows[:1], 0) == (
        "1 file repeats a picture that another file of its class holds (the first in path "
        "order is kept)."
    )
