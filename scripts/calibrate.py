#!/usr/bin/env python3
"""Fit the LLM's per-label calibration on a labeled sample and save it where the backend finds it.

The command lives in backend/cli/calibrate.py and is installed as `labelloop-calibrate`; this file runs it from a checkout.
"""

import sys

from backend.cli.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
