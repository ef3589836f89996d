#!/usr/bin/env python3
"""Time every ranking strategy of backend/ranking/strategies.py on a synthetic pool.

The command is `labelloop bench-ranking` (backend/cli/bench_ranking.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.bench_ranking import main

if __name__ == "__main__":
    sys.exit(main())
