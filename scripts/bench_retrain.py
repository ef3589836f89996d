#!/usr/bin/env python3
"""Time a retrain from the event to the decision, with --labels labels in a real Label Studio.

The command is `labelloop bench-retrain` (backend/cli/bench_retrain.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.bench_retrain import main

if __name__ == "__main__":
    sys.exit(main())
