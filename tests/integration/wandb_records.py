"""Read the records of an offline wandb run file (``offline-run-*/run-*.wandb``).

The file is a LevelDB-style log (wandb's ``datastore`` format): a 7-byte header
(``:W&B``, magic, version), then 32 KiB blocks of chunks, each ``<crc32, length,
type>`` followed by its bytes; a record spans one FULL chunk or FIRST, MIDDLE..., LAST.
Each record is a serialized ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """The records of ``path`` in order."""
    data = path.read_bytes()
    ident, _, _ = HEADER.unpack_from(data)
    assert ident == b":W&B", f"{path} is not a wandb run file"
    pos, parts = HEADER.size, []
    while pos + CHUNK.size <= len(data):
        if BLOCK - pos % BLOCK < CHUNK.size:  # the block's tail is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = CHUNK.unpack_from(data, pos)
        pos += CHUNK.size
        parts.append(data[pos : pos + length])
        pos += length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record
