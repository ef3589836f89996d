#!/usr/bin/env python3
"""`labelloop agreement` from a checkout: inter-annotator agreement of a Label Studio export."""

import sys

from backend.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["agreement", *sys.argv[1:]]))
