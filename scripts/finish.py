#!/usr/bin/env python3
"""Finish a project's dataset: people's labels, the model's labels where it meets an accuracy target, and the tasks

The command lives in backend/cli/finish.py and is installed as `labelloop-finish`; this file runs it from a checkout.
"""

import sys

from backend.cli.finish import main

if __name__ == "__main__":
    sys.exit(main())
