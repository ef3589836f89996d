#!/usr/bin/env python3
"""Time every ranking strategy of backend/ranking/strategies.py on a synthetic pool.

The command lives in backend/cli/bench_ranking.py and is installed as `labelloop-bench-ranking`; this file runs it from a checkout.
"""

import sys

from backend.cli.bench_ranking import main

if __name__ == "__main__":
    sys.exit(main())
