#!/usr/bin/env python3
"""Gold tasks: hide them in a batch of tasks, then measure each annotator's accuracy on them over time.

The command lives in backend/cli/gold.py and is installed as `labelloop-gold`; this file runs it from a checkout.
"""

import sys

from backend.cli.gold import main

if __name__ == "__main__":
    sys.exit(main())
