"""`python -m failoverd.cli`: the same as `failoverctl`."""

import sys

from failoverd.cli.failoverctl import main

sys.exit(main())
