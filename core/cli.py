"""What the command lines print: text tables that line up."""

from __future__ import annotations


def text_table(lines: list, widest: int | None = None) -> str:
    """`lines` of cells (strings; the first line the header) as columns two spaces apart,
    each as wide as its widest cell, cut to `widest` characters when given."""
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    if widest is not None:
        widths = [min(widest, w) for w in widths]
    return "\n".join(
        "  ".join(cell[:w].ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
