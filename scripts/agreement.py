#!/usr/bin/env python3
"""Inter-annotator agreement of a Label Studio export (JSON, JSON-MIN or CSV).

The command lives in backend/cli/agreement.py and is installed as `labelloop-agreement`; this file runs it from a checkout.
"""

import sys

from backend.cli.agreement import main

if __name__ == "__main__":
    sys.exit(main())
