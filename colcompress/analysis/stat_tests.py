"""The paired significance tests a report offers, by their command-line names.

Kept apart from :mod:`colcompress.analysis.significance` (which runs them through
ranx) so that the command line lists them without importing ranx.
"""

from __future__ import annotations

TESTS = {"t-test": "student", "fisher": "fisher"}  # CLI name -> ranx stat_test
TEST_NAMES = {"t-test": "paired t-test", "fisher": "Fisher's randomization test"}
