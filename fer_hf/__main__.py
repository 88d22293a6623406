"""``python -m fer_hf``: the ``fer-hf`` command line (see `fer_hf.cli.commands`)."""

import sys

from .cli.commands import main

sys.exit(main())
