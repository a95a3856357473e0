"""OmegaConf resolvers the configs in ``conf/`` use; importing this module registers them.

- ``${cwd:}``: the launch directory, resolvable before Hydra's runtime config exists
  (sweepers resolve ``hydra.sweep.dir`` before any job).
- ``${first:a,b,...}``: the first argument that is not null, e.g.
  ``${first:${training.doc_length},${model.doc_length}}``.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf


def first(*values: Any) -> Any:
    """The first value that is not None (None when all are)."""
    return next((v for v in values if v is not None), None)


OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)
OmegaConf.register_new_resolver("first", first, replace=True)
