"""`python -m chaos.bench`: see chaos/bench/suite.py."""

import sys

from chaos.bench.suite import main

sys.exit(main())
