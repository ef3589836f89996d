#!/usr/bin/env python3
"""`labelloop sync-project` from a checkout: set up a Label Studio project for the backend."""

import sys

from backend.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["sync-project", *sys.argv[1:]]))
