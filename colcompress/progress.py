"""The ``progress`` option: whether the long steps draw tqdm bars.

Lower layers take a plain ``progress: bool`` argument; ``colcompress.job`` turns the
option into it once with :func:`resolve_progress`.
"""

from __future__ import annotations

import sys


def resolve_progress(setting: bool | str) -> bool:
    """Whether to draw progress bars for the ``progress`` option.

    Parameters
    ----------
    setting : bool or "auto"
        ``"auto"`` draws them only when stderr is a terminal (not in CI logs).

    Returns
    -------
    bool
    """
    if setting == "auto":
        return sys.stderr.isatty()
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"progress={setting!r}: expected true, false or auto")
