"""Counts as people write them."""

import pytest

from core.words import counted


@pytest.mark.parametrize(
    "n, noun, plural, said",
    [
        (1, "image", None, "1 image"),
        (0, "image", None, "0 images"),
        (12000, "image", None, "12,000 images"),
        (1, "class folder", None, "1 class folder"),
        (3, "copy", "copies", "3 copies"),
        (1, "copy", "copies", "1 copy"),
    ],
)
def test_a_count_takes_the_plural_unless_it_is_one(n, noun, plural, said):
    assert counted(n, noun, plural) == said
