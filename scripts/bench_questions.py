#!/usr/bin/env python3
"""Several questions per task, measured on a labeled sample (per-question quality, multi-label methods, speed).

The command lives in backend/cli/bench_questions.py and is installed as `labelloop-bench-questions`; this file runs it from a checkout.
"""

import sys

from backend.cli.bench_questions import main

if __name__ == "__main__":
    sys.exit(main())
