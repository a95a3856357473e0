"""The command-line entry points answer ``--help`` without the heavy libraries.

Each check runs in a fresh interpreter (this one has imported torch long ago) and lists
the heavy modules the entry point left in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("torch", "lightning", "transformers", "fast_plaid", "ranx", "numba", "wandb")


def _imported_heavy(call: str) -> list[str]:
    """The ``HEAVY`` modules imported by running ``call`` (Python source) to its end."""
    code = (
        "import contextlib, json, sys\n"
        f"with contextlib.suppress(SystemExit):\n    {call}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


HELP_CALLS = {
    "colcompress --help": "sys.argv = ['colcompress', '--help']; "
    "from colcompress.run import main; main()",
    "colcompress-report --help": "from colcompress.analysis.cli import main; main(['--help'])",
    "colcompress-report correlate --help": "from colcompress.analysis.cli import main; "
    "main(['correlate', '--help'])",
    "colcompress-report figure --help": "from colcompress.analysis.cli import main; "
    "main(['figure', '--help'])",
    "colcompress-report patch-grid --help": "from colcompress.analysis.cli import main; "
    "main(['patch-grid', '--help'])",
    "colcompress-export --help": "from colcompress.export import main; main(['--help'])",
    "colcompress-prepare-media --help": "from colcompress.data.prepare_media import main; "
    "main(['--help'])",
}


@pytest.mark.parametrize("command", HELP_CALLS)
def test_help_imports_no_torch(command):
    assert _imported_heavy(HELP_CALLS[command]) == []
