#!/usr/bin/env python3
"""Time a retrain from the event to the decision, with --labels labels in a real Label Studio.

The command lives in backend/cli/bench_retrain.py and is installed as `labelloop-bench-retrain`; this file runs it from a checkout.
"""

import sys

from backend.cli.bench_retrain import main

if __name__ == "__main__":
    sys.exit(main())
