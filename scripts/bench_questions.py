#!/usr/bin/env python3
"""Several questions per task, measured on a labeled sample (per-question quality, multi-label methods, speed).

The command is `labelloop bench-questions` (backend/cli/bench_questions.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.bench_questions import main

if __name__ == "__main__":
    sys.exit(main())
