"""python -m hasync_lab.campaign"""

import sys

from .cli import main

sys.exit(main())
