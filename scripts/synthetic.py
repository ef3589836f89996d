#!/usr/bin/env python3
"""Synthetic examples: write them with the local Qwen model, filter them, measure them, review them in Label Studio.

The command is `labelloop synthetic` (backend/cli/synthetic.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
