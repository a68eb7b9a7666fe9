"""``python -m captum_lmac.benchmark <suite> [options]``: run a benchmark suite (see ``runner.main``)."""

import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())
