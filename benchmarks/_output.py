"""What every benchmark does with its figures besides printing them: a JSON file in benchmarks/results/."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_json(name: str, data: dict) -> Path:
    """Write ``data`` to ``benchmarks/results/NAME.json``, say so, and return the path."""
    out = RESULTS / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {out}")
    return out
