"""``python -m snnlab ...``: see :mod:`snnlab.cli`."""
import sys

from .cli import main

sys.exit(main())
