#!/usr/bin/env python3
"""Run the whole labeling loop locally: Label Studio and the labelloop backend on 127.0.0.1, with a project

The command is `labelloop demo` (backend/cli/demo.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
