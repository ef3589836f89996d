#!/usr/bin/env python3
"""Benchmark the backend on each LLM engine, side by side, in one run on this machine.

The command is `labelloop bench-engines` (backend/cli/bench_engines.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.bench_engines import main

if __name__ == "__main__":
    sys.exit(main())
