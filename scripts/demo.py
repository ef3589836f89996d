#!/usr/bin/env python3
"""Run the whole labeling loop locally: Label Studio and the labelloop backend on 127.0.0.1, with a project

The command lives in backend/cli/demo.py and is installed as `labelloop-demo`; this file runs it from a checkout.
"""

import sys

from backend.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
