"""``python -m lcsc …``: the same as the ``lcsc`` console script."""

import sys

from lcsc.cli.main import main

sys.exit(main())
