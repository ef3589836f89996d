#!/usr/bin/env python3
"""What MAX_TEXT_TOKENS costs and saves on long texts (plot synopses and long reviews of the Rotten Tomatoes corpus).

The command is `labelloop bench-long-texts` (backend/cli/bench_long_texts.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.bench_long_texts import main

if __name__ == "__main__":
    sys.exit(main())
