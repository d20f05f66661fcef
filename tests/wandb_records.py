"""Read the run record of an offline W&B run (``run-*.wandb``), to check group, tags and name.

The file is a LevelDB-style log (what wandb's own DataStore wrote): a 7-byte header, then 32 KiB blocks
of chunks, each ``crc32 (4) | length (2) | type (1) | payload``; a record's chunks join to one protobuf.
"""

from __future__ import annotations

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK, HEADER, FILE_HEADER = 32768, 7, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[pb.Record]:
    data = path.read_bytes()[FILE_HEADER:]
    out, pending, pos = [], b"", 0
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - (pos + FILE_HEADER) % BLOCK
        if left_in_block < HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        payload = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def run_record(run_dir: Path) -> pb.RunRecord:
    (path,) = run_dir.glob("run-*.wandb")
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            return record.run
    raise AssertionError(f"no run record in {path}")
