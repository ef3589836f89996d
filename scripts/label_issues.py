#!/usr/bin/env python3
"""List the human labels most likely wrong, from a Label Studio JSON export or a live project.

The command lives in backend/cli/label_issues.py and is installed as `labelloop-label-issues`; this file runs it from a checkout.
"""

import sys

from backend.cli.label_issues import main

if __name__ == "__main__":
    sys.exit(main())
