"""What several benchmarks share. Run them as `python benchmarks/<name>.py`: their folder is
then on the import path, and each puts the project's root there before importing this."""

import argparse
from pathlib import Path

from core import registry
from core.data import Dataset
from core.fileio import read_json


def model_and_its_split(
    description: str, switches: dict[str, str] | None = None, numbers: dict | None = None
) -> tuple[argparse.Namespace, dict, Dataset]:
    """Parses `--data`, `--model` (default: the shipped model), on/off `switches`
    (`{"--flag": help}`) and whole `numbers` (`{"--name": (default, help)}`).

    Returns:
        `(args, the model's card, the data at args.data split as the model's run split
        it)`: its validation images are the ones the model never trained on.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", required=True)
    p.add_argument("--model", type=Path, default=registry.default_model_path())
    for flag, text in (switches or {}).items():
        p.add_argument(flag, action="store_true", help=text)
    for flag, (default, text) in (numbers or {}).items():
        p.add_argument(flag, type=int, default=default, help=text)
    args = p.parse_args()
    card = read_json(args.model.parent / "model_card.json")
    return args, card, registry.split_as_trained(card, args.data)
