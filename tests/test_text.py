"""ui.text: names from users shown as written, in markdown and in Plotly labels."""

import pytest

from tests.conftest import as_read
from ui.text import chart, md, md_sentence, probability, tick


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("[a](e.com)", r"\[a\](e.com)"),  # a link
        ("c*a*t", r"c\*a\*t"),  # emphasis
        ("my_pet_", r"my\_pet\_"),
        (":cat:", r"\:cat\:"),  # an emoji
        (":red[hi]", r"\:red\[hi\]"),  # a colour
        (":material/home:", r"\:material\/home\:"),  # an icon: its slash too
        ("$5 and $6", r"\$5 and \$6"),  # LaTeX between the two
        ("~x~", r"\~x\~"),  # struck through
        ("<b>x", r"\<b\>x"),
        ("`code`", r"\`code\`"),
        ("a\\b", r"a\\b"),
        ("&amp;", r"\&amp;"),
        ("# cats", r"\# cats"),  # a heading
        ("- cats", r"\- cats"),  # a list
        ("1. cats", r"1\. cats"),  # a numbered list: the dot, not the digit
        ("failed: see /tmp/a-b (2).", "failed: see /tmp/a-b (2)."),  # nothing to escape
        # Addresses GFM would link with the escapes inside shown: they are text to it.
        ("https://x.edu/~kriz/a_b", r"https\://x.edu/\~kriz/a\_b"),
        ("see WWW.x.com/a_b", r"see WWW\.x.com/a\_b"),
        ("me@x_y.com", r"me\@x\_y.com"),
        ("awww.x and a:/b", "awww.x and a:/b"),  # not addresses
    ],
)
def test_md_escapes_what_markdown_would_format_and_reads_back_as_written(name, escaped):
    assert md(name) == escaped
    assert as_read(md(name)) == name


def test_md_sentence_keeps_code_spans_and_escapes_the_rest():
    sentence = "Run `python -m core.quantize <run>` on c*a*t_folder."
    assert md_sentence(sentence) == r"Run `python -m core.quantize <run>` on c\*a\*t\_folder."
    assert md_sentence(ValueError("a_b")) == r"a\_b"  # an exception: its message


def test_chart_shows_html_tags_as_text():
    assert chart("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    assert chart('say "hi"') == 'say "hi"'


def test_tick_cuts_a_long_name_in_the_middle_and_keeps_a_short_one():
    assert tick("n01440764_tench_Tinca_tinca") == "n01440764…inca_tinca"
    assert tick("x" * 20) == "x" * 20 and len(tick("y" * 21)) == 20
    assert tick("<b>" + "z" * 30) == "&lt;b&gt;zzzzzz…" + "z" * 10  # escaped after the cut


def test_a_probability_never_rounds_to_a_certainty():
    said = [probability(p) for p in (0.0, 0.004, 0.0099, 0.01, 0.425, 0.99, 0.991, 0.9996, 1.0)]
    assert said == ["<1%", "<1%", "<1%", "1%", "42%", "99%", ">99%", ">99%", ">99%"]
