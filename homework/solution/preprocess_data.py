"""Q2, solved: preprocess_data.py needs no MLflow code, so the solution is the starter itself."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # homework/, shared with the starters
from common import run_cli  # noqa: E402
from preprocess_data import run_data_prep  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_cli(run_data_prep))
