#!/usr/bin/env python3
"""Simulate finishing a dataset, on the bundled reviews or a team's labeled file (--data).

The command is `labelloop simulate-finish` (backend/cli/simulate_finish.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.simulate_finish import main

if __name__ == "__main__":
    sys.exit(main())
