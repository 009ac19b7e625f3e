"""python -m hasync_lab.demo [--vm]: what `make demo [VM=1]` runs."""

import sys

from hasync_lab.demo import main

sys.exit(main(sys.argv[1:]))
