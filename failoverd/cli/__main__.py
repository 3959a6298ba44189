"""`python -m failoverd.cli`: the same as `failoverctl`."""

import sys

from failoverd.cli.failoverctl import main

if __name__ == "__main__":
    sys.exit(main())
