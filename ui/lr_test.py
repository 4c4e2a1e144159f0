"""The Train page's learning-rate test (`core.lrfind`): its progress, then its curve."""

from pathlib import Path

import streamlit as st

from core import jobs, lrfind
from core.fileio import read_json
from ui import charts, state
from ui.text import md, md_sentence

LR_BOUNDS = (1e-6, 10.0)  # the New run form's Learning rate field takes these


def use_rate(rate: float) -> None:
    st.session_state["train_lr"] = min(max(rate, LR_BOUNDS[0]), LR_BOUNDS[1])


def _readable(result) -> bool:
    # Written by another version, cut short or edited by hand: a sentence, not a traceback.
    return (
        isinstance(result, dict)
        and all(isinstance(result.get(k), list) and result[k] for k in ("lr", "loss", "smoothed"))
        and len(result["lr"]) == len(result["smoothed"])
        and "suggested" in result
    )


def progress(path: str) -> None:
    status = jobs.status(path)
    if status["state"] not in jobs.ACTIVE:
        st.rerun()  # it ended: draw its curve
    c = st.columns([4, 1])
    done, steps = status.get("step") or 0, status.get("steps") or lrfind.STEPS
    text = "starting" if status["state"] == "starting" else f"batch {done}/{steps}"
    if status.get("lr"):
        text += f" · rate {status['lr']:.2g} · loss {status['loss']:.4f}"
    c[0].progress(done / steps, text=f"Learning-rate test: {text}")
    c[1].button("Stop test", key="train_lr_test_stop", on_click=jobs.stop, args=(path,))


def box() -> None:
    """The newest test: its progress while it runs, then its curve and suggested rate."""
    latest = jobs.latest_lrfind()
    if latest is None:
        return
    if latest["state"] in jobs.ACTIVE:
        st.fragment(progress, run_every=state.POLL_EVERY)(latest["path"])
        return
    with st.expander("Learning-rate test", expanded=True):
        if latest["state"] == "stopped":
            st.caption("The last learning-rate test was stopped.")
            return
        path = Path(latest["path"]) / lrfind.RESULT_FILE
        result = read_json(path)
        if latest["state"] == "completed" and not _readable(result):
            st.warning(f"The last test's result ({md(path)}) cannot be read: run the test again.")
            return
        if latest["state"] != "completed":
            ended = latest.get("message") or "The learning-rate test ended without a result."
            st.error(md_sentence(ended))
            st.caption("The end of its log:")  # an expander may not hold another
            st.code(jobs.log_tail(latest["path"]) or "(empty)", language=None)
            return
        st.plotly_chart(charts.lr_curve(result), key="train_lr_curve")
        st.caption(
            lrfind.describe(result)
            + " The test trained a fresh model of the form's recipe, one batch per rate; "
            "the form's learning rate is where its schedule starts or peaks."
        )
        if result["suggested"]:
            rate = float(f"{result['suggested']:.2g}")  # the field gets what the button says
            st.button(
                f"Use {rate:g} as the learning rate",
                key="train_lr_use",
                on_click=use_rate,
                args=(rate,),
            )
