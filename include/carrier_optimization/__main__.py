"""Entry point of ``python -m include.carrier_optimization`` (see `cli`)."""

import sys

from include.carrier_optimization.cli import main

if __name__ == "__main__":
    sys.exit(main())
