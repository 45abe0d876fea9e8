"""The homework solution on the real 2023 months gives the 2025 cohort's official answers.

Apart from tests/test_homework.py because it is the suite's longest test (four to five minutes): a file
of its own is a unit of its own for the two workers, which start it first (see conftest).
"""

from __future__ import annotations

import pytest
from conftest import real_month
from test_homework import (
    MONTHS,
    OFFICIAL_2025,
    assert_pickles_follow_the_homework_steps,
    start_homework,
    verdicts,
)


@pytest.mark.real_data
@pytest.mark.slow
def test_solution_gives_the_official_answers_on_the_real_2023_months(tmp_path):
    """The whole homework as the 2025 cohort ran it (15 trials, top 5) on green taxi 2023-01..03:
    about 5 minutes on two cores. train.py and register_model.py stay within 2 GB of memory."""
    paths = [real_month(month) for month in MONTHS]
    run = start_homework(tmp_path, "real", trials=15, top_n=5, solution=True)()
    print(f"real homework run: {run.seconds:.0f} s")
    assert run.returncode == 0, run.output
    assert "data: real 2023-01, 2023-02, 2023-03" in run.output
    assert verdicts(run.output) == [["PASS", f"q{i}"] for i in range(1, 7)]
    submission = run.submission
    assert {key: submission[key] for key in OFFICIAL_2025} == OFFICIAL_2025
    assert run.pickle("train.pkl")[0].shape[0] > 50_000  # a real month, not the sample
    assert_pickles_follow_the_homework_steps(run, paths)  # the real files' schema changes in 2023
    for script in ("train.py", "register_model.py"):
        assert run.peak_gb(script) <= 2.0, run.output
