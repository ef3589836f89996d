#!/usr/bin/env python3
"""Set up a Label Studio project for the labelloop backend: project, tasks, ML backend connection, export.

The command is `labelloop sync-project` (backend/cli/sync_project.py); this file runs it from a checkout
(as before, until the next release).
"""

import sys

from backend.cli.sync_project import main

if __name__ == "__main__":
    sys.exit(main())
