"""Counts as people write them: "1 image", "2,500 images", never "image(s)"."""


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, plural when `n` is not 1 (`noun + "s"` unless `plural` is given).

    Args:
        n: the count, written with thousands separators.
        noun: the singular, e.g. "image" or "class folder".
        plural: the plural where it is not `noun + "s"`, e.g. "copies".

    Returns:
        E.g. "1 image", "0 images", "12,000 images".
    """
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
