#!/usr/bin/env python3
"""Benchmark label-issue detection on planted noise, on the bundled reviews or a team's labeled file (--data).

The command is `labelloop bench-label-issues` (backend/cli/bench_label_issues.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.bench_label_issues import main

if __name__ == "__main__":
    sys.exit(main())
