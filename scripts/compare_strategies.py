#!/usr/bin/env python3
"""Compare ranking strategies in a simulated annotation loop, on the bundled reviews or a team's labeled file (--data).

The command lives in backend/cli/compare_strategies.py and is installed as `labelloop-compare-strategies`; this file runs it from a checkout.
"""

import sys

from backend.cli.compare_strategies import main

if __name__ == "__main__":
    sys.exit(main())
