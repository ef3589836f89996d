#!/usr/bin/env python3
"""Load-test the backend: concurrent clients mixing /predict batches (1-50 new reviews each) and webhooks.

The command is `labelloop load-test` (backend/cli/load_test.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.load_test import main

if __name__ == "__main__":
    sys.exit(main())
