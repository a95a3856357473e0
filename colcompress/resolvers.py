"""OmegaConf resolvers the configs in ``colcompress/conf/`` use; importing this module
registers them.

- ``${cwd:}``: the launch directory, resolvable before Hydra's runtime config exists
  (sweepers resolve ``hydra.sweep.dir`` before any job).
- ``${first:a,b,...}``: the first argument that is not null, e.g.
  ``${first:${training.doc_length},${model.doc_length}}``.
- ``${join:value}``: a list's items joined by ``+`` (a single value as it is), e.g.
  ``${join:${dataset.name}}`` gives ``nfcorpus+scifact``.
- ``${claim_dir:path}``: create ``path`` exclusively, or ``path_1``, ``path_2``, ...
  when it exists, and return the one created; the run and sweep directories use it,
  so two runs started in the same second never share one. Cached: a config (and
  the job configs of a sweep, which copy its cache) resolves it once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def first(*values: Any) -> Any:
    """The first value that is not None (None when all are)."""
    return next((v for v in values if v is not None), None)


def join(value: Any) -> str:
    """``"+".join`` of a list's items; a single value as a string."""
    if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        return "+".join(str(v) for v in value)
    return str(value)


def claim_dir(path: str) -> str:
    """Create a new directory at ``path`` (or ``path_<n>``, the first free n >= 1).

    ``mkdir`` without ``exist_ok`` is the claim: of two processes asking for the
    same name at once exactly one creates it, the other moves on to the next name.

    Returns
    -------
    str
        The directory created.
    """
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        candidate = base if n == 0 else base.with_name(f"{base.name}_{n}")
        try:
            candidate.mkdir()
            return str(candidate)
        except FileExistsError:
            n += 1


OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)
OmegaConf.register_new_resolver("claim_dir", claim_dir, replace=True, use_cache=True)
OmegaConf.register_new_resolver("first", first, replace=True)
OmegaConf.register_new_resolver("join", join, replace=True)
