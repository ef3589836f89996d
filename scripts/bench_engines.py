#!/usr/bin/env python3
"""Benchmark the backend on each LLM engine, side by side, in one run on this machine.

The command lives in backend/cli/bench_engines.py and is installed as `labelloop-bench-engines`; this file runs it from a checkout.
"""

import sys

from backend.cli.bench_engines import main

if __name__ == "__main__":
    sys.exit(main())
