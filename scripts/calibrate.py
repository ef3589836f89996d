#!/usr/bin/env python3
"""Fit the LLM's per-label calibration on a labeled sample and save it where the backend finds it.

The command is `labelloop calibrate` (backend/cli/calibrate.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
