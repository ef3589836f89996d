#!/usr/bin/env python3
"""Benchmark the packaged models side by side on the bundled reviews or a team's labeled file (--data).

The command lives in backend/cli/benchmark.py and is installed as `labelloop-benchmark`; this file runs it from a checkout.
"""

import sys

from backend.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
