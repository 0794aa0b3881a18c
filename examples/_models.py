"""Which models the examples run on (shared by the three examples).

Default: the "qwen2.5-coder" preset (Qwen2.5-Coder 0.5B draft, 1.5B target, our reward
head), which reaches this machine without a model hub. `--models DRAFT TARGET REWARD`
(or the SPECS_DRAFT / SPECS_TARGET / SPECS_REWARD environment variables, or
SPECS_PRESET) pick others; the tests pass tiny model directories this way.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

DEFAULT_PRESET = "qwen2.5-coder"


def parse(description: str, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", nargs=3, metavar=("DRAFT", "TARGET", "REWARD"),
                        help="model locations (directories, hub ids or registry names)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every latency budget (e.g. 0.2 for tiny models)")
    return parser.parse_args(argv)


def model_locations(args: argparse.Namespace) -> dict[str, str]:
    """Constructor arguments naming the models: --models, else the environment, else
    the default preset."""
    if args.models:
        return dict(zip(("draft", "target", "reward"), args.models))
    if any(os.environ.get(v) for v in ("SPECS_PRESET", "SPECS_DRAFT", "SPECS_TARGET")):
        return {}  # the integrations read these variables themselves
    return {"preset": DEFAULT_PRESET}
