#!/usr/bin/env python3
"""Compare ranking strategies in a simulated annotation loop, on the bundled reviews or a team's labeled file (--data).

The command is `labelloop compare-strategies` (backend/cli/compare_strategies.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.compare_strategies import main

if __name__ == "__main__":
    sys.exit(main())
