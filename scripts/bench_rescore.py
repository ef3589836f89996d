#!/usr/bin/env python3
"""Time the backend's pool re-score plus write against a real Label Studio, phase by phase.

The command is `labelloop bench-rescore` (backend/cli/bench_rescore.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.bench_rescore import main

if __name__ == "__main__":
    sys.exit(main())
