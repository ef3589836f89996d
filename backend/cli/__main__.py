"""python -m backend.cli <command>: the labelloop command without its console script."""

import sys

from backend.cli.main import main

sys.exit(main())
