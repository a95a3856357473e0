"""``python -m colcompress.report``, the ``colcompress-report`` command: the command line
of :mod:`colcompress.analysis` (:func:`colcompress.analysis.cli.main`)."""

from __future__ import annotations

import sys

from colcompress.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
