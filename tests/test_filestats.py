import numpy as np

from core import filestats
from core.images import GREYSCALE, TRANSPARENT


def _stored(*rows, times=1):
    return np.array([row for row in rows for _ in range(times)], np.int32)


def test_files_all_of_the_model_size_say_so_in_one_sentence():
    assert filestats.summary(_stored((32, 32, 0), times=5), 32) == [
        "All 5 files are 32 x 32 pixels."
    ]


def test_the_summary_counts_what_is_squashed_enlarged_grey_and_transparent():
    stored = _stored((100, 75, 0), (100, 100, GREYSCALE), (20, 30, TRANSPARENT), (160, 90, 0))
    assert filestats.summary(stored, 32) == [
        "The 4 files are 20-160 pixels wide and 30-100 high (the median 100 x 82.5), shown and "
        "trained on at 32 x 32.",
        "3 (75%) are not square: each is squashed to the square, not cropped, so what they show "
        "looks narrower or flatter (a run can crop them to their centre square instead: the "
        "Train page's 'Pictures that are not square', or `--fit crop`).",
        "1 (25%) has a side shorter than 32 pixels and are enlarged, which blurs them.",
        "1 (25%) is greyscale: their grey fills all three colours.",
        "1 (25%) has transparency: white shows through.",
        # shorter sides 75, 100, 20, 90: the median 82.5 holds 64 but not 96
        "Half the files have 82.5 pixels or more on their shorter side: a model of 64 x 64 "
        "pixels (the Train page's Image size) sees more of their detail, at about 4 times the "
        "time per epoch.",
    ]
    # Already at 64: no larger size fits, nothing to suggest.
    assert not any("Half the files" in s for s in filestats.summary(stored, 64))


def test_the_table_gives_each_class_its_median_size_and_shares():
    stored = _stored((64, 48, GREYSCALE), (64, 64, 0), (32, 32, TRANSPARENT), (32, 32, 0))
    rows = filestats.class_table(stored, np.array([0, 0, 2, 2]), ["cat", "dog", "frog"])
    assert rows == [  # dog has no file: no row
        {"class": "cat", "files": 2, "median size": "64 x 56", "not square": 50.0,
         "greyscale": 50.0, "with transparency": 0.0},
        {"class": "frog", "files": 2, "median size": "32 x 32", "not square": 0.0,
         "greyscale": 0.0, "with transparency": 50.0},
    ]  # fmt: skip


def test_a_class_that_differs_from_the_others_is_named():
    y = np.repeat([0, 1, 2], 10)
    even = _stored((64, 64, 0), times=30)
    assert filestats.class_differences(even, y, ["cat", "dog", "frog"]) == []
    grey = even.copy()
    grey[y == 1, 2] = GREYSCALE
    grey[y == 2, :2] = 256
    assert filestats.class_differences(grey, y, ["cat", "dog", "frog"]) == [
        "100% of the files of dog are greyscale, 0% of the other classes': a model can tell "
        "dog by that rather than by what the pictures show.",
        "The files of frog are much larger than the other classes' (a median of 65,536 pixels "
        "against 4,096): resized to one size they look sharper, which a model can learn "
        "instead of what they show.",
    ]
    # A difference under APART (40 points here) is left alone.
    grey[y == 1, 2] = np.where(np.arange(10) < 4, GREYSCALE, 0)
    assert not any("greyscale" in s for s in filestats.class_differences(grey, y, ["a", "b", "c"]))


def test_size_counts_counts_each_distinct_size():
    stored = _stored((64, 48, 0), (64, 48, GREYSCALE), (32, 32, 0))
    widths, heights, counts = filestats.size_counts(stored)
    assert list(zip(widths, heights, counts, strict=True)) == [(32, 32, 1), (64, 48, 2)]


def test_the_command_line_describes_a_folder_and_refuses_what_has_no_files(tmp_path, capsys):
    from PIL import Image

    from tests.conftest import write_cifar_archive, write_image_folder

    write_image_folder(tmp_path / "d", per_class=4, size=40)
    for path in (tmp_path / "d" / "dog").iterdir():
        Image.open(path).convert("L").resize((96, 96)).save(path)
    assert filestats.main([str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out.splitlines()  # after the decode's progress bar
    assert (
        "The 12 files are 40-96 pixels wide and 40-96 high (the median 40 x 40), shown and "
        "trained on at 32 x 32."
    ) in out
    assert "4 (33%) are greyscale: their grey fills all three colours." in out
    assert out[-4:] == [
        "class  files  median size  not square  greyscale  with transparency",
        "cat    4      40 x 40      0%          0%         0%",
        "dog    4      96 x 96      0%          100%       0%",
        "frog   4      40 x 40      0%          0%         0%",
    ]
    assert any(line.startswith("Warning: 100% of the files of dog are greyscale") for line in out)
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=4)
    assert filestats.main([str(tmp_path / "cifar-10-python.tar.gz")]) == 1
    assert "is not an image folder: no files to describe." in capsys.readouterr().err
    assert filestats.main([str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err == f"error: The path {tmp_path / 'nothing'} does not exist.\n"


def test_looks_grey_finds_grey_pictures_whatever_their_files_stored():
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (3000, 32, 32, 3), np.uint8)
    grey = np.repeat(rng.integers(0, 256, (3000, 32, 32, 1), np.uint8), 3, axis=-1)
    x = np.concatenate([colour, grey])
    x[3000, 5, 7, 0] = np.clip(int(x[3000, 5, 7, 1]) + 4, 0, 255)  # JPEG-like noise: still grey
    x[3001, 9, 9] = [0, 0, 200]  # one blue pixel off the coarse grid: colour
    expected = np.r_[np.zeros(3000, bool), np.ones(3000, bool)]
    expected[3001] = False
    np.testing.assert_array_equal(filestats.looks_grey(x), expected)  # over two chunks


def test_dataset_files_counts_grey_pixels_only_when_asked(tiny_dataset):
    n = sum(len(y) for _, y in tiny_dataset.splits.values())
    tiny_dataset.stored = {
        s: np.full((len(y), 3), 32, np.int32) * [1, 1, 0]
        for s, (_, y) in tiny_dataset.splits.items()
    }
    x, y = tiny_dataset.splits["train"]
    x[:4] = x[:4].mean(axis=-1, keepdims=True).astype(np.uint8)  # 4 pictures made grey
    stored, labels = filestats.dataset_files(tiny_dataset)
    assert len(stored) == len(labels) == n and not stored[:, 2].any()
    stored, _ = filestats.dataset_files(tiny_dataset, grey_pixels=True)
    assert stored[:4, 2].tolist() == [GREYSCALE] * 4 and not stored[4:, 2].any()
    assert not any(s[:, 2].any() for s in tiny_dataset.stored.values())  # its own arrays kept
