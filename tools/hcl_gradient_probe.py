"""Superseded by ``rharm diagnose loss`` (rharm_lib.diagnose): kept as a thin caller.

python tools/hcl_gradient_probe.py [rharm diagnose loss options, e.g. --n 32 --steps 0]
"""

from __future__ import annotations

import sys

from rharm_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["diagnose", "loss", *sys.argv[1:]]))
