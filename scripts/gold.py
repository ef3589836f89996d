#!/usr/bin/env python3
"""Gold tasks: hide them in a batch of tasks, then measure each annotator's accuracy on them over time.

The command is `labelloop gold` (backend/cli/gold.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.gold import main

if __name__ == "__main__":
    sys.exit(main())
