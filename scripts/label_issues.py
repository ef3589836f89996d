#!/usr/bin/env python3
"""List the human labels most likely wrong, from a Label Studio JSON export or a live project.

The command is `labelloop label-issues` (backend/cli/label_issues.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.label_issues import main

if __name__ == "__main__":
    sys.exit(main())
