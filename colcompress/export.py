"""Export a colcompress checkpoint as a PyLate model.

colcompress-export logs/train/runs/.../checkpoints/last.ckpt exported/

``python -m colcompress.export`` is the same command. ``pylate.models.ColBERT("exported/")``
then loads it, and so does colcompress:
``model=pylate model.backbone=exported/``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from colcompress.hub import set_offline


def export_checkpoint(checkpoint: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Rebuild the model a colcompress checkpoint was trained with, load its weights and
    write it to ``folder`` in PyLate's format (see
    :func:`~colcompress.models.export.export_pylate`).

    torch and the models are imported here, so that ``--help`` answers at once.
    """
    from colcompress.checkpoint import load_model_weights, model_config
    from colcompress.job import build_model
    from colcompress.models.export import export_pylate

    stored = model_config(checkpoint)
    model = build_model(stored["model"], stored["compressor"])
    return export_pylate(load_model_weights(model, checkpoint), folder)


def main(argv: list[str] | None = None) -> None:
    """The ``colcompress-export`` command line: export, then print the folder written."""
    parser = argparse.ArgumentParser(
        prog="colcompress-export", description=__doc__.strip().splitlines()[0]
    )
    parser.add_argument("checkpoint", help="a .ckpt written by colcompress training")
    parser.add_argument("folder", help="the PyLate model folder to write (new or empty)")
    parser.add_argument(
        "--allow-downloads",
        action="store_true",
        help="let hub ids in the checkpoint's config download (offline by default)",
    )
    args = parser.parse_args(argv)
    set_offline(not args.allow_downloads)
    print(export_checkpoint(args.checkpoint, args.folder))


if __name__ == "__main__":
    main()
