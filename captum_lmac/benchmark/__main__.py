"""``python -m captum_lmac.benchmark <suite> [options]``: run a benchmark suite (see :func:`.cli.main`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
