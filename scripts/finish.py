#!/usr/bin/env python3
"""Finish a project's dataset: people's labels, the model's labels where it meets an accuracy target, and the tasks

The command is `labelloop finish` (backend/cli/finish.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.finish import main

if __name__ == "__main__":
    sys.exit(main())
