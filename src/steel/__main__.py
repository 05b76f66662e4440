"""`python -m steel ...`: the same as the `steel` command."""

import sys

from steel.cli import main

if __name__ == "__main__":
    sys.exit(main())
