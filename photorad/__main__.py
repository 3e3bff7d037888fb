from __future__ import annotations

import sys

from photorad.cli import main

sys.exit(main())
