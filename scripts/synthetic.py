#!/usr/bin/env python3
"""Synthetic examples: write them with the local Qwen model, filter them, measure them, review them in Label Studio.

The command lives in backend/cli/synthetic.py and is installed as `labelloop-synthetic`; this file runs it from a checkout.
"""

import sys

from backend.cli.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
