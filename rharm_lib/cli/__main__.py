"""``python -m rharm_lib.cli`` (used by ``torchrun ... -m rharm_lib.cli train ...``)."""

import sys

from . import main

sys.exit(main())
