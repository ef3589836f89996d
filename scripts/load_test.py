#!/usr/bin/env python3
"""Load-test the backend: concurrent clients mixing /predict batches (1-50 new reviews each) and webhooks.

The command lives in backend/cli/load_test.py and is installed as `labelloop-load-test`; this file runs it from a checkout.
"""

import sys

from backend.cli.load_test import main

if __name__ == "__main__":
    sys.exit(main())
