#!/usr/bin/env python3
"""Set up a Label Studio project for the labelloop backend: project, tasks, ML backend connection, export.

The command lives in backend/cli/sync_project.py and is installed as `labelloop-sync-project`; this file runs it from a checkout.
"""

import sys

from backend.cli.sync_project import main

if __name__ == "__main__":
    sys.exit(main())
