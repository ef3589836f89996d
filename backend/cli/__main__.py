"""python -m backend.cli <command>: the labelloop command without its console script."""

import sys

from backend.cli.main import main

if __name__ == "__main__":  # imported, e.g. by a walk over the package, it runs nothing
    sys.exit(main())
