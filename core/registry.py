"""Which models the app may load: the shipped default and the models its runs wrote.

Nothing else is ever loaded: a path comes from this list, never from a user.
"""

from __future__ import annotations

import os
from pathlib import Path

from core import runs
from core.fileio import read_json

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "default_model"


def default_model_path() -> Path:
    return DEFAULT_MODEL_DIR / "model.keras"


def available_models(runs_dir=None) -> list[dict]:
    """Returns `{"id", "label", "path", "card"}` per loadable model; the default first.

    Runs contribute their model when they completed or were stopped.
    """
    models = []
    if default_model_path().is_file():
        card = read_json(DEFAULT_MODEL_DIR / "model_card.json", {}) or {}
        models.append(
            {
                "id": "default",
                "label": _label("Shipped default", card),
                "path": str(default_model_path()),
                "card": card,
            }
        )
    for row in runs.list_runs(runs_dir):
        path = Path(row["path"]) / "model.keras"
        if row["state"] in ("completed", "stopped") and path.is_file():
            card = read_json(path.parent / "model_card.json", {}) or {}
            models.append(
                {
                    "id": row["name"],
                    "label": _label(row["name"], card),
                    "path": str(path),
                    "card": card,
                }
            )
    return models


def model_version(path: str | os.PathLike) -> float:
    """The file's modification time: a cache key that changes when the model is replaced."""
    return os.stat(path).st_mtime_ns


def _label(name: str, card: dict) -> str:
    acc = (card.get("metrics") or {}).get("val_accuracy")
    bits = [card.get("preset")] + ([f"{acc:.1%} val"] if acc is not None else [])
    return f"{name} ({', '.join(b for b in bits if b)})"
