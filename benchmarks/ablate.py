"""Runs the training CLI with some of `core.model`'s constants overridden (ablations).

    python benchmarks/ablate.py BIAS_SCALE=1 IDENTITY_INIT=0 -- --preset quick --data DIR

Everything after `--` goes to `python -m core.train`; before it, NAME=VALUE pairs for
`BIAS_SCALE`, `BN_MOMENTUM`, `BN_EPSILON` (floats) and `IDENTITY_INIT` (0 or 1).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import model  # noqa: E402

KNOWN = {
    "BIAS_SCALE": float,
    "BN_MOMENTUM": float,
    "BN_EPSILON": float,
    "IDENTITY_INIT": lambda v: v == "1",
}


def main(argv):
    split = argv.index("--") if "--" in argv else len(argv)
    for pair in argv[:split]:
        name, _, value = pair.partition("=")
        if name not in KNOWN:
            sys.exit(f"unknown constant {name!r}; known: {', '.join(KNOWN)}")
        setattr(model, name, KNOWN[name](value))
    from core import train

    return train.main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
