"""``python -m fer_hf``: the ``fer-hf`` command line (see `fer_hf.cli`)."""

import sys

from .cli import main

sys.exit(main())
