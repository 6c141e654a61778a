"""``python -m robustalign``: the ``robustalign`` command."""

import sys

from robustalign.cli import main

sys.exit(main())
