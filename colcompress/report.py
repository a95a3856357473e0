"""``python -m colcompress.report``: the command line of :mod:`colcompress.analysis`."""

from __future__ import annotations

import sys

from colcompress.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
