"""Near-duplicate images: the Dataset page's section and the Evaluate page's line."""

from __future__ import annotations

from collections import Counter

import numpy as np
import streamlit as st

from core import near_duplicates as nd
from core import registry
from core.datastats import enlarge, image_grid
from core.evaluate import wilson_interval
from ui import state
from ui.text import md, md_sentence

SHOWN = 24  # pairs drawn at most
MARGIN = 10  # white pixels left and right of a pair
SHOW = {
    "all pairs": lambda pair, labels: True,
    "across splits": lambda pair, labels: pair.a[0] != pair.b[0],
    "under two classes": lambda pair, labels: labels[0] != labels[1],
}
GROUPS = "pictures saved three times or more"
GROUP_ROW = 8  # images of a group in a row, at most


def _memory() -> dict:
    return st.session_state.setdefault("_near_duplicates", {})


def _key(ds) -> tuple:
    return (
        state.dataset_key(),
        ds.image_size,
        tuple((k, len(v[1])) for k, v in ds.splits.items()),
    )


def found(ds) -> dict | None:
    """The dataset's near-duplicates when this session or the disk has them (looked for
    on disk once a session: it hashes every image); nothing is compared here."""
    memory, key = _memory(), _key(ds)
    if key not in memory:
        memory[key] = nd.near_duplicates_if_kept(ds)
    return memory[key]


def _found_or_button(ds, key: str) -> dict | None:
    """`found`, or a button that compares the images under a progress bar (and None)."""
    result = state.kept_or_button(
        _memory(),
        _key(ds),
        lambda: nd.near_duplicates_if_kept(ds),
        lambda bar: nd.kept_near_duplicates(ds, progress=bar),
        ("Find near-duplicates", key),
        "Comparing every image with every other",
        "once; kept until the images change",
    )
    if result is None:
        total = sum(len(y) for _, y in ds.splits.values())
        st.caption(
            f"Compares every image with every other ({total:,} images; about 12 s for "
            "CIFAR-10's 50,000 on 2 cores, four times that for twice as many), once: kept "
            "until the images change."
        )
    return result


def dataset_section(ds, factor: int) -> None:
    """Counts of the pairs, the images of other splits with one in train, and the pairs."""
    st.header("Near-duplicates")
    result = _found_or_button(ds, "dataset_near_run")
    if result is None:
        return
    threshold = st.slider(
        "Alike at least",
        0.80,
        0.99,
        nd.SIMILAR,
        0.01,
        key="dataset_near_threshold",
        help=f"1: the same picture. Looked at on CIFAR-10, pairs at {nd.SIMILAR:.2f} or more "
        "were copies; at 0.90 to 0.93 about 4 in 5, at 0.85 to 0.90 about 3 in 5 "
        "(docs/BENCHMARKS.md).",
    )
    pairs = nd.pairs(result, threshold)
    labels = [pair.labels(ds) for pair in pairs]
    counts = {name: sum(map(test, pairs, labels)) for name, test in SHOW.items()}
    found_groups = nd.groups(pairs, ds, threshold)
    m = st.columns(2 + len(ds.splits) - 1)
    m[0].metric("Pairs", f"{counts['all pairs']:,}")
    m[1].metric("Under two classes", f"{counts['under two classes']:,}")
    for column, split in zip(m[2:], [s for s in ds.splits if s != "train"], strict=False):
        shared = int(nd.in_split(result, split, "train", threshold).sum())
        column.metric(f"{split} images with one in train", f"{shared:,}")
    st.caption(
        f"Two images are near-duplicates when their layout and details agree at "
        f"{threshold:.2f} or more (1: the same picture; a change of brightness or contrast "
        "does not count) and one is the other's closest. A validation image with one in train "
        "measures memory, not generalisation; a pair under two classes has a wrong label. "
        "A run can leave out the training images that copy a validation or test image (the "
        'Train page\'s "Run" options; `--drop-near-duplicates` on the command line).'
        + (f" {md_sentence(nd.groups_summary(found_groups))}" if found_groups else "")
    )
    if ds.files and found_groups:
        _redundant(found_groups, ds)
    show = st.radio("Show", [*SHOW, GROUPS], horizontal=True, key="dataset_near_show")
    if show == GROUPS:
        big = [group for group in found_groups if len(group) > 2]
        if not big:
            st.info("No picture is here three times or more.")
            return
        _draw_groups(big[:SHOWN], ds, factor)
        in_big = {image for group in big for image in group}
        chosen = [(p, lab) for p, lab in zip(pairs, labels, strict=True) if p.a in in_big]
        more = (
            f"The {SHOWN} largest of {len(big):,}; the pairs" if len(big) > SHOWN else "The pairs"
        )
        sentence = f"{more} of them, with their files, classes and groups:"
        _download(sentence, chosen, ds, found_groups)
        return
    chosen = [(p, lab) for p, lab in zip(pairs, labels, strict=True) if SHOW[show](p, lab)]
    if not chosen:
        st.info(f"No pairs {show.removeprefix('all ')} here.")
        return
    pictures = [  # the two images side by side, white on either side between pairs
        np.pad(
            enlarge(image_grid([ds.splits[s][0][i] for s, i in (p.a, p.b)], 2, pad=1), factor),
            ((0, 0), (MARGIN, MARGIN), (0, 0)),
            constant_values=255,
        )
        for p, _ in chosen[:SHOWN]
    ]
    st.image(
        pictures,
        caption=[md(_caption(p, lab, ds)) for p, lab in chosen[:SHOWN]],
        width=pictures[0].shape[1],  # not stretched to a caption's width
    )
    more = f"The {SHOWN} most alike of {len(chosen):,}; all" if len(chosen) > SHOWN else "All"
    _download(f"{more} of them, with their files and classes:", chosen, ds, found_groups)


def _download(sentence: str, chosen: list, ds, found_groups: list) -> None:
    st.caption(sentence)
    st.download_button(
        "Download the pairs (CSV)",
        nd.pairs_csv([p for p, _ in chosen], ds, found_groups),
        file_name="near-duplicates.csv",
        mime="text/csv",
        key="dataset_near_csv",
    )


def _redundant(found_groups: list, ds) -> None:
    """The files to delete to keep one of each picture, as a sentence and a CSV."""
    rows, mixed = nd.redundant_files(found_groups, ds)
    st.caption(f"To clean the folder: {md_sentence(nd.redundant_summary(rows, mixed))}")
    st.download_button(
        "Download the files to delete (CSV)",
        nd.redundant_csv(rows),
        file_name="redundant-files.csv",
        mime="text/csv",
        key="dataset_near_redundant",
        disabled=not rows,
    )


def _draw_groups(groups: list, ds, factor: int) -> None:
    """Each group's images in rows of `GROUP_ROW`, its size, splits and classes under it."""
    for group in groups:
        picture = np.pad(
            enlarge(image_grid([ds.splits[s][0][i] for s, i in group], GROUP_ROW, pad=1), factor),
            ((0, 0), (MARGIN, MARGIN), (0, 0)),
            constant_values=255,
        )
        st.image(picture, caption=md(_group_caption(group, ds)), width=picture.shape[1])


def _group_caption(group: list, ds) -> str:
    """`11 images (9 train, 2 val): 10 automobile, 1 truck`, most common first."""
    splits = Counter(split for split, _ in group)
    classes = Counter(ds.class_names[int(ds.splits[s][1][i])] for s, i in group)
    return (
        f"{len(group)} images ({', '.join(f'{n} {s}' for s, n in splits.most_common())}): "
        + ", ".join(f"{n} {name}" for name, n in classes.most_common())
    )


def _caption(pair, labels, ds) -> str:
    """`file (split)` for each image of a folder, else `split #index class`; then how alike."""
    ends = [
        f"{name} ({split})" if ds.files else f"{name} {ds.class_names[label]}"
        for name, (split, _), label in zip(pair.names(ds), (pair.a, pair.b), labels, strict=True)
    ]
    return f"{ends[0]} · {ends[1]} · {pair.similarity:.2f}"


def left_out_by(card: dict, ds) -> int | None:
    """`core.registry.copies_left_out` for the page's split of `ds`."""
    return registry.copies_left_out(card, ds, *state.held_out_split())


def evaluate_line(ds, split: str, report, card: dict) -> None:
    """How the images of `split` with a near-duplicate in train score against the others,
    once found (here, on a click, or on the Dataset page), and whether the model's run
    left those training images out (`card`: its model card)."""
    if split == "train" or "train" not in ds.splits:
        return
    if found(ds) is None:
        st.caption(
            f"Some {split} images may be near-copies of training images, which flatters "
            "accuracy: find them to see the accuracy on them and on the others apart."
        )
    result = _found_or_button(ds, "evaluate_near_run")
    if result is None:
        return
    shared = nd.in_split(result, split, "train")
    if not shared.any():
        st.caption(f"No {split} image is a near-duplicate of a training image.")
        return
    right = report.y_true == report.probs.argmax(axis=1)
    on, off = nd.accuracy_by_duplicate(right, shared)
    if shared.all():
        st.caption(f"Every {split} image is a near-duplicate of a training image ({on:.1%} right).")
        return
    low, high = wilson_interval(right[shared].sum(), shared.sum())
    left_out = left_out_by(card, ds)
    which = (
        "are near-duplicates of training images"
        if left_out is None
        else "have a near-duplicate among the training images, which this model's run left "
        f"out ({left_out:,} training images)"
    )
    st.caption(
        f"{int(shared.sum()):,} of the {len(shared):,} {split} images ({shared.mean():.1%}) "
        f"{which}: accuracy {on:.1%} on them (95% interval {low:.1%} to {high:.1%}), "
        f"{off:.1%} on the others."
    )


def seen_in_training(ds, split: str) -> list[int] | None:
    """Indices of the images of `split` with a near-duplicate in train, most alike first;
    None until they are found (or for the training split itself)."""
    result = found(ds) if split != "train" and "train" in ds.splits else None
    if result is None:
        return None
    similarity = result[f"{split}>train:similarity"]
    shared = np.flatnonzero(nd.in_split(result, split, "train"))
    return [int(i) for i in shared[np.argsort(-similarity[shared], kind="stable")]]
