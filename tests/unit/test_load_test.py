"""labelloop load-test against the real backend for a few seconds: it must start it, load it, and report."""

from __future__ import annotations

import pytest
import warm

from backend.bench.load import LoadResult, Sample

SCRIPT = warm.labelloop("load-test")


def test_summary_counts_errors_late_answers_and_memory_slope():
    samples = [
        Sample("/predict", 0, 1.0, 200, 10, 2),
        Sample("/predict", 1, 120.0, 200, 5, 0),
        Sample("/predict", 2, 0.5, 0, 3),
        Sample("/webhook", 3, 0.01, 200),
    ]
    memory = [(float(t), 1000.0 + t) for t in range(20)]  # one MB a second: a leak
    summary = LoadResult(60.0, samples, memory).summary()
    assert summary["/predict"]["errors"] == 1 and summary["/predict"]["over_100s"] == 1
    assert summary["/webhook"]["requests"] == 1 and summary["tasks_predicted"] == 13 and summary["tasks_skipped"] == 2
    assert summary["rss_mb"]["slope_mb_per_min"] == pytest.approx(60.0, abs=0.5)


def test_bad_arguments_exit_2():
    done = warm.run([*SCRIPT, "--clients", "0"])
    assert done.returncode == 2 and "must be positive" in done.stderr and "Traceback" not in done.stderr
