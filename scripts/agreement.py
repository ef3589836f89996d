#!/usr/bin/env python3
"""Inter-annotator agreement of a Label Studio export (JSON, JSON-MIN or CSV).

The command is `labelloop agreement` (backend/cli/agreement.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.agreement import main

if __name__ == "__main__":
    sys.exit(main())
