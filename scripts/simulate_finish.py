#!/usr/bin/env python3
"""Simulate finishing a dataset, on the bundled reviews or a team's labeled file (--data).

The command lives in backend/cli/simulate_finish.py and is installed as `labelloop-simulate-finish`; this file runs it from a checkout.
"""

import sys

from backend.cli.simulate_finish import main

if __name__ == "__main__":
    sys.exit(main())
