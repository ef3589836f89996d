#!/usr/bin/env python3
"""Benchmark label-issue detection on planted noise (Rotten Tomatoes corpus, its labels as the truth).

The command lives in backend/cli/bench_label_issues.py and is installed as `labelloop-bench-label-issues`; this file runs it from a checkout.
"""

import sys

from backend.cli.bench_label_issues import main

if __name__ == "__main__":
    sys.exit(main())
