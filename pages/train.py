"""Train: watch a run live, compare and manage runs; the New run form is `ui.train_form`."""

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from core import estimate, jobs, runs, search
from core.errors import CnnError
from core.fileio import read_json
from core.train import lr_plan, run_config
from ui import charts, state, train_form
from ui.text import md, md_sentence

state.ensure_routed()

BADGE = {"starting": "gray", "running": "blue", "completed": "green", "stopped": "orange"}
# While a run trains, its status line follows it every STATUS_EVERY seconds and its charts
# every CHARTS_EVERY: each redraw costs the browser CPU that training on 2 cores then lacks
# (with both every second, the open page slowed the quick preset to 0.78x of its speed with
# no page open; 0.97x now: benchmarks/watch_cost.py, docs/BENCHMARKS.md session 35).
STATUS_EVERY, CHARTS_EVERY = state.POLL_EVERY, 5.0
# With nothing training, the page looks at the runs folder's files every WATCH_EVERY seconds.
WATCH_EVERY = 5.0


def curve(history: list[dict], key: str) -> tuple[list, list]:
    return [h["epoch"] for h in history], [h.get(key) for h in history]


def search_moment(status: dict, training: dict | None) -> tuple:
    return status["state"], status.get("run"), training and training["name"]


def search_view(path: str, seen: tuple) -> None:
    status = jobs.status(path)
    if search_moment(status, jobs.active_run()) != seen:
        st.rerun()  # it ended, or a trial began or ended: redraw the live view and the table
    best = search.summarise(path)["best"]
    c = st.columns([4, 1])
    c[0].markdown(
        f"**Search {search.ident(path)}** · trial "
        f"{status.get('trial') or 0}/{status.get('trials', '?')}"
        + (f" · best so far {best['val_accuracy']:.2%} ({best['run']})" if best else "")
    )
    # A callback, as Stop training's: the check above may rerun the page before a button.
    c[1].button("Stop search", key="train_search_stop", on_click=jobs.stop_search, args=(path,))
    if runs.stop_requested(Path(path)):
        st.caption("Stopping the current trial at the end of its batch…")


def ended_search(rows: list[dict]) -> dict | None:
    """The newest search's best trial's row: what the live view shows once the search has
    ended (`core.search.ended_best`), after a sentence and a table of every trial."""
    ended = search.ended_best(jobs.latest_search(), rows[0]["name"] if rows else None)
    row = ended and next((r for r in rows if r["name"] == ended["best"]["run"]), None)
    if not row:
        return None
    st.caption(md_sentence(ended["sentence"]))
    with st.expander(f"Every trial, the most accurate first ({len(ended['trials'])})"):
        st.dataframe(
            ended["trials"],
            hide_index=True,
            placeholder="—",  # a trial stopped before its first epoch
            column_config={
                "val accuracy": st.column_config.NumberColumn(format="%.2f%%"),
                "learning rate": st.column_config.NumberColumn(format="%.3g"),
            },
        )
    return row


def live_view(path: str, polling: bool, shown: tuple) -> None:
    """`shown`: the run's state and epochs done as the runs table shows them."""
    status, history = jobs.status(path), runs.read_history(path)
    if polling and (status["state"], len(history)) != shown:
        # It began training, finished an epoch or ended: redraw the whole page (the runs
        # table, the sidebar's models); for an epoch, not more often than the charts.
        drawn = st.session_state.get("train_page_drawn", 0.0)
        if status["state"] != shown[0] or time.monotonic() - drawn >= CHARTS_EVERY:
            st.rerun()
    c = st.columns([4, 1])
    c[0].markdown(
        f"**{md(Path(path).name)}** :{BADGE.get(status['state'], 'red')}-badge[{status['state']}]"
    )
    if status["state"] in jobs.ACTIVE:
        fraction, text = jobs.progress(status)
        st.progress(fraction, text=text)
        # A callback: it acts before the script, which may rerun the page before a button.
        c[1].button("Stop training", key="train_stop", on_click=jobs.stop, args=(path,))
        if runs.stop_requested(Path(path)):
            st.caption("Stopping at the end of the current batch…")
    if status["state"] in ("failed", "interrupted") and status.get("message"):
        st.error(md_sentence(status["message"]))
        with st.expander("End of train.log"):
            st.code(jobs.log_tail(path) or "(empty)", language=None)
    if status["state"] in jobs.RESUMABLE:  # what went wrong first, then what resuming costs
        if c[1].button("Resume", key="train_resume"):
            try:
                jobs.launch_resume(path)
                st.rerun()
            except CnnError as err:
                st.error(md_sentence(err))
        if sentence := estimate.describe_remaining(path):
            st.caption(sentence)


def live_charts(path: str) -> None:
    """The run's loss, accuracy and learning rate, the epoch in progress included."""
    status, history = jobs.status(path), runs.read_history(path)
    # The epoch in progress too, live from the start; 600 points at most (a long run's file
    # holds thousands, and the charts are sent again every few seconds).
    batches = runs.read_batch_points(path, most=600)
    # No validation line for a run that held out no image (it validates at every epoch's end).
    validated = not history or any("val_loss" in h for h in history)
    if history or batches["x"]:
        c = st.columns(2)
        pairs = [("Loss", "loss"), ("Accuracy", "accuracy")]
        for where, (title, key) in zip(c, pairs, strict=True):
            lines = {"train": curve(history, key)}
            if validated:
                lines["validation"] = curve(history, f"val_{key}")
            where.plotly_chart(
                charts.epoch_lines(
                    title, lines, percent=key == "accuracy", running=(batches["x"], batches[key])
                )
            )
        if batches["x"]:
            st.caption(
                "A point is an epoch: training's over all its batches, while the model was "
                "still learning"
                + (
                    ", validation's at its end"
                    if validated
                    else " (this run held out no images to validate on)"
                )
                + ". The thin line is training over the last few batches, so it runs ahead of "
                "the training point."
                + (
                    f" The charts catch up every {CHARTS_EVERY:g} seconds while the run "
                    "trains (drawing them costs the browser time that training would use)."
                    if status["state"] in jobs.ACTIVE
                    else ""
                )
            )
    if plan := planned_rates(path, status.get("steps")):
        at = batches["x"][-1] if status["state"] in jobs.ACTIVE and batches["x"] else None
        st.plotly_chart(charts.run_learning_rate(plan, curve(history, "lr"), at))


@st.cache_data(show_spinner=False, max_entries=16)
def planned_rates(path: str, steps: int | None) -> tuple[list, list] | None:
    """The run's schedule (`core.train.lr_plan`) for its saved config, once per run; None
    before its first batch (the batches an epoch are not known yet)."""
    config = run_config(path) if steps else None
    return lr_plan(config, steps) if config else None


def runs_watch(signature: str) -> None:
    """A run started, ended or deleted elsewhere (the command line, another tab) while nothing
    trains here redraws the page: its live view, the runs table, the sidebar's models.
    `signature`: `state.runs_signature()` when the page was drawn."""
    if state.runs_signature() != signature:
        st.rerun()


def make_active(name: str) -> None:
    st.session_state["sidebar_model"] = name


def next_steps(run: dict) -> None:
    """Where a run that ended with a model leads: the active model, the Evaluate page, the
    Classify page, one click each (the runs table's selection was the only way before)."""
    if run["state"] not in ("completed", "stopped") or not run["has_model"]:
        return
    active = st.session_state.get("sidebar_model") == run["name"]
    row = st.container(horizontal=True, gap="small")
    row.button(
        "Make active model",
        key="train_live_activate",
        on_click=make_active,
        args=(run["name"],),
        disabled=active,
        help="It is the active model on every page."
        if active
        else "Use this run's model on every page.",
    )
    for label, target in (("Evaluate it", "evaluate"), ("Classify photos with it", "classify")):
        if row.button(label, key=f"train_live_{target}", on_click=make_active, args=(run["name"],)):
            st.switch_page(f"pages/{target}.py")


def delete(chosen: list[dict]) -> None:
    refused = []
    for run in chosen:
        try:
            jobs.delete(run["path"])
        except CnnError as err:  # still training: the others go
            refused.append(str(err))
    st.session_state["train_runs"] = {"selection": {"rows": [], "columns": []}}
    if refused:
        st.session_state["train_notice_error"] = " ".join(refused)


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def _text_width(texts) -> int:
    """Pixels for a column of these texts: 6.5 a character (the grid's font: the columns it
    sized itself gave time-stamped run names 6.2) and the cell's padding; at most 420.
    The grid sizes a column to its first cells, and kept that width as longer texts came (a
    search's trials were cut before their number)."""
    return min(420, 16 + round(6.5 * max(len(str(t)) for t in texts)))


def runs_table(rows: list[dict]) -> None:
    st.subheader("Runs")
    if not rows:
        st.caption("No runs yet.")
        return
    # No "started" column: a run's name begins with its start time (that column made the
    # table scroll sideways at 1280 px).
    table = pd.DataFrame(
        {
            "run": [r["name"] for r in rows],
            "status": [r["state"] for r in rows],
            "preset": [r["preset"] for r in rows],
            "best val accuracy": [_percent(r["best_val_accuracy"]) for r in rows],
            "epochs": [f"{r['epochs_done']}/{r['epochs']}" for r in rows],
            "duration": [jobs.clock(r["seconds"]) for r in rows],
            "parameters": [r["params"] for r in rows],
        }
    )
    event = st.dataframe(
        table,
        key="train_runs",
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        placeholder="—",  # no accuracy yet: a run before its first epoch (Streamlit: "None")
        column_config={
            # Pinned: on a narrow screen the table scrolls sideways under the run's name.
            "run": st.column_config.TextColumn(width=_text_width(table["run"]), pinned=True),
            "preset": st.column_config.TextColumn(width=_text_width(["preset", *table["preset"]])),
            # Two decimals for every run: "percent" wrote 81.4% beside 81.48%.
            "best val accuracy": st.column_config.NumberColumn(format="%.2f%%"),
            "parameters": st.column_config.NumberColumn(format="localized"),
        },
    )
    chosen = [rows[i] for i in event.selection.rows if i < len(rows)]
    if not chosen:
        st.caption("Select runs to compare their validation curves.")
        return
    histories = {r["name"]: runs.read_history(r["path"]) for r in chosen}
    c = st.columns(2)
    c[0].plotly_chart(
        charts.epoch_lines(
            "Validation accuracy",
            {n: curve(h, "val_accuracy") for n, h in histories.items()},
            percent=True,
        )
    )
    c[1].plotly_chart(
        charts.epoch_lines(
            "Validation loss", {n: curve(h, "val_loss") for n, h in histories.items()}
        )
    )
    if len(chosen) > 1:
        settings_differences(chosen)
    c = st.columns(3)
    if len(chosen) == 1:
        run = chosen[0]
        usable = run["has_model"] and run["state"] in ("completed", "stopped")
        c[0].button(
            "Make active model",
            key="train_activate",
            on_click=make_active,
            args=(run["name"],),
            disabled=not usable,
            help="Use this run's model on every page (completed or stopped runs).",
        )
        c = c[1:]
    names = [r["name"] for r in chosen]
    # The confirmation belongs to this selection: a new selection asks again.
    what = names[0] if len(names) == 1 else f"these {len(names)} runs"
    sure = c[0].checkbox(f"Yes, delete {md(what)}", key=f"train_confirm_{'+'.join(names)}")
    c[1].button("Delete", key="train_delete", on_click=delete, args=(chosen,), disabled=not sure)


def settings_differences(chosen: list[dict]) -> None:
    """The settings the selected runs were started with that are not the same in all."""
    configs = {r["name"]: read_json(Path(r["path"]) / "config.json", {}) or {} for r in chosen}
    rows = runs.settings_that_differ(configs)
    if not rows:
        st.caption("The selected runs were started with the same settings.")
        return
    st.caption(
        f"{len(rows)} {'setting differs' if len(rows) == 1 else 'settings differ'} between "
        "the selected runs (every other one is the same):"
    )
    st.dataframe(pd.DataFrame(rows), hide_index=True)


st.title("Train")
st.subheader("Live view")
st.session_state["train_page_drawn"] = time.monotonic()
signature = state.runs_signature()
rows, searching = state.run_rows(signature), jobs.active_search()
active = next((r for r in rows if r["state"] in jobs.ACTIVE), None)  # newest first
if searching:
    seen = search_moment(searching, active)
    st.fragment(search_view, run_every=STATUS_EVERY)(searching["path"], seen)
ended = None if active or searching else ended_search(rows)
if active or rows:
    watched = active or ended or rows[0]
    st.fragment(live_view, run_every=STATUS_EVERY if active else None)(
        watched["path"], polling=bool(active), shown=(watched["state"], watched["epochs_done"])
    )
    next_steps(watched)
    st.fragment(live_charts, run_every=CHARTS_EVERY if active else None)(watched["path"])
else:
    st.caption("No run yet: start one below.")
if error := st.session_state.pop("train_notice_error", None):
    st.error(md_sentence(error))
new_run_box = st.container()
runs_table(rows)
if not (active or searching):  # (else the live view follows the runs)
    st.fragment(runs_watch, run_every=WATCH_EVERY)(signature)
with new_run_box:
    # Drawn last: without a dataset the form stops the script, and the runs stay visible.
    if notice := st.session_state.pop("train_notice", None):
        closing = " It trains in its own process: closing this tab does not stop it."
        st.success(md_sentence(notice) + closing)
    train_form.new_run()
