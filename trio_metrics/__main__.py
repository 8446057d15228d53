"""``python -m trio_metrics``: the same as the ``trio-metrics`` command."""

import sys

from .cli._main import main

sys.exit(main())
