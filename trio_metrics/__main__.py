"""``python -m trio_metrics``: the same as the ``trio-metrics`` command."""

import sys

from .cli import main

sys.exit(main())
