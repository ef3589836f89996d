#!/usr/bin/env python3
"""Benchmark label-issue detection on planted noise, on the bundled reviews or a team's labeled file (--data).

The command lives in backend/cli/bench_label_issues.py and is installed as `labelloop-bench-label-issues`; this file runs it from a checkout.
"""

import sys

from backend.cli.bench_label_issues import main

if __name__ == "__main__":
    sys.exit(main())
