"""`python -m chaos.bench`: see chaos/bench/suite.py."""

import sys

from chaos.bench.suite import main

if __name__ == "__main__":  # importing this module must not start a benchmark
    sys.exit(main())
