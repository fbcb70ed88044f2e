"""``python -m voxray`` is the ``voxray`` command."""

import sys

from voxray.cli import main

sys.exit(main())
