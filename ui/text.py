"""Names from users (class folders, files, runs, paths) shown as the text they are.

Streamlit renders markdown in captions, messages and widget labels, and Plotly renders
HTML tags in its labels: a class folder named "[a](e.com)" became a link, "c*a*t" an
italic "a", ":cat:" an emoji and "<b>x" a bold "x" on the confusion matrix.
"""

from __future__ import annotations

import html
import re

# Marks that format wherever they stand; "(", "!", "." and the like only after one of them
# or at a line's start, so sentences keep their source readable (tests read it too).
_ALWAYS = re.compile(r"([\\`*_\[\]<>~$&|])")
# The colons of :cat: (an emoji), :red[...] (a colour) and :material/home: (an icon, which
# needs its slash escaped too).
_OPENING = re.compile(r":(?=[A-Za-z])")
# What GFM's parser turns into a link by itself: "https://...", "www." and "me@x.com". Inside
# such a link the escapes above showed as backslashes ("https://x.edu/\~kriz"). With its
# colon, dot or at sign escaped the parser reads it as text, escapes resolved; Streamlit then
# still links the address it shows, now the one written.
_AUTOLINK = re.compile(r"(?<=[A-Za-z]):(?=//)|(?<![A-Za-z0-9])(?i:www)\.|@(?=[\w\\-]+\.)")
_CLOSING = re.compile(r"(:[^\s:]+):")
_ICON = re.compile(r"(material)/", re.IGNORECASE)
_LINE_START = re.compile(r"^(\s*)([#>+=-]|\d+(?=[.)]))", re.MULTILINE)  # headings, lists
_CODE = re.compile(r"(`[^`\n]*`)")


def probability(p) -> str:
    """A probability in whole percent that never rounds to a certainty: "<1%" under 1% and
    ">99%" over 99% (a model's 99.7% is not "100%", nor its 0.3% "0%"), else "42%"."""
    p = float(p)
    return "<1%" if p < 0.01 else ">99%" if p > 0.99 else f"{p:.0%}"


def md(text) -> str:
    """`text` for markdown (`st.markdown`, `st.caption`, messages, labels), shown as written.

    The marks that format are escaped with a backslash, as CommonMark allows, and so are
    the colons of Streamlit's emoji, icons and colours (`$math$` stops at the escaped `$`).
    """
    text = _AUTOLINK.sub(_escape_autolink, _ALWAYS.sub(r"\\\1", str(text)))
    text = _CLOSING.sub(r"\1\\:", text)
    text = _ICON.sub(r"\1\\/", _OPENING.sub(r"\\:", text))
    return _LINE_START.sub(_escape_line_start, text)


def _escape_autolink(found: re.Match) -> str:
    mark = found.group()
    return mark[:3] + "\\." if len(mark) == 4 else "\\" + mark  # www's dot, else the mark


def _escape_line_start(found: re.Match) -> str:
    indent, mark = found.groups()
    # "1." is a list: the dot is escaped (a backslash before a digit would show).
    return f"{indent}{mark}\\" if mark[0].isdigit() else f"{indent}\\{mark}"


def md_sentence(text) -> str:
    """A sentence of the app's (an error, a summary) for markdown: escaped as `md`, except
    its `code` spans, which markdown shows as written already."""
    parts = _CODE.split(str(text))
    return "".join(part if i % 2 else md(part) for i, part in enumerate(parts))


def chart(text) -> str:
    """`text` for a Plotly label, title or hover text: its HTML tags shown, not applied."""
    return html.escape(str(text), quote=False)


def charted(names) -> list[str]:
    """`chart` of each name."""
    return [chart(name) for name in names]


def tick(name, most: int = 20) -> str:
    """A name for an axis's tick: `chart`ed, and cut in the middle when it is longer than
    `most` characters ("n01440764_tench_Tinca_tinca" -> "n01440764…inca_tinca"), where
    names of one dataset tend to differ: at the start (an id) or at the end (a number).
    80-character class names squeezed the confusion matrix to a 60 px strip."""
    name = str(name)
    if len(name) > most:
        head = (most - 1) // 2
        name = f"{name[:head]}…{name[-(most - 1 - head) :]}"
    return chart(name)
