#!/usr/bin/env python3
"""Time the backend's pool re-score plus write against a real Label Studio, phase by phase.

The command lives in backend/cli/bench_rescore.py and is installed as `labelloop-bench-rescore`; this file runs it from a checkout.
"""

import sys

from backend.cli.bench_rescore import main

if __name__ == "__main__":
    sys.exit(main())
