#!/usr/bin/env python3
"""Benchmark the packaged models side by side on the bundled reviews or a team's labeled file (--data).

The command is `labelloop benchmark` (backend/cli/benchmark.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
