"""Export a colcompress checkpoint as a PyLate model.

python -m colcompress.export logs/train/runs/.../checkpoints/last.ckpt exported/

``pylate.models.ColBERT("exported/")`` then loads it, and so does colcompress:
``model=pylate model.backbone=exported/``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from colcompress.checkpoint import load_model_weights, model_config
from colcompress.hub import set_offline
from colcompress.models.export import export_pylate
from colcompress.run import build_model


def export_checkpoint(checkpoint: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Rebuild the model a colcompress checkpoint was trained with, load its weights and
    write it to ``folder`` in PyLate's format (see :func:`export_pylate`)."""
    stored = model_config(checkpoint)
    model = build_model(stored["model"], stored["compressor"])
    return export_pylate(load_model_weights(model, checkpoint), folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m colcompress.export", description=__doc__.strip().splitlines()[0]
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
