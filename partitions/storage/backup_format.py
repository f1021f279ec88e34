"""The bytes of a partition backup on the backups topic. They never change meaning: a new layout
gets a new ``BACKUP_FORMAT_VERSION`` and readers skip versions they do not know.

A backup is a run of chunk records on the backups topic's partition ``p`` (for log partition
``p``). Each chunk's headers say which backup it belongs to, its place in it, and the log offset
the backup is a copy of the store at; its value is an Avro array of alternating keys and values
(the store's raw bytes, in key order). The last chunk carries ``last=1``: a backup whose chunks
are not all there (its writer died, or trimming cut it) is not used.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import fastavro

BACKUP_FORMAT_VERSION = 1

VERSION_HEADER = "perdure-backup-v"
ID_HEADER = "perdure-backup-id"
SEQ_HEADER = "perdure-backup-seq"
LAST_HEADER = "perdure-backup-last"
OFFSET_HEADER = "perdure-backup-offset"
STORE_FORMAT_HEADER = "perdure-backup-store-format"
KEYS_HEADER = "perdure-backup-keys"
"""An estimate of the backup's key count (for progress reports only)."""

_CHUNK = fastavro.parse_schema({"type": "array", "items": "bytes"})


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """What a chunk's headers say."""

    backup_id: str
    seq: int
    last: bool
    applied_offset: int
    store_format: int
    estimated_keys: int


def chunk_headers(info: ChunkInfo) -> list[tuple[str, str | bytes | None]]:
    """The Kafka headers of a chunk."""
    return [
        (VERSION_HEADER, str(BACKUP_FORMAT_VERSION).encode()),
        (ID_HEADER, info.backup_id.encode()),
        (SEQ_HEADER, str(info.seq).encode()),
        (LAST_HEADER, b"1" if info.last else b"0"),
        (OFFSET_HEADER, str(info.applied_offset).encode()),
        (STORE_FORMAT_HEADER, str(info.store_format).encode()),
        (KEYS_HEADER, str(info.estimated_keys).encode()),
    ]


def read_chunk_info(headers: Any) -> ChunkInfo | None:
    """A chunk's headers (as a Kafka message gives them), or None for a record of another
    format version (skipped)."""
    h: dict[str, Any] = dict(headers or [])
    if h.get(VERSION_HEADER) != str(BACKUP_FORMAT_VERSION).encode():
        return None
    try:
        return ChunkInfo(
            backup_id=h[ID_HEADER].decode(),
            seq=int(h[SEQ_HEADER]),
            last=h[LAST_HEADER] == b"1",
            applied_offset=int(h[OFFSET_HEADER]),
            store_format=int(h[STORE_FORMAT_HEADER]),
            estimated_keys=int(h[KEYS_HEADER]),
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def encode_chunk(flat: list[bytes]) -> bytes:
    """Encodes alternating keys and values."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _CHUNK, flat)
    return out.getvalue()


def decode_chunk(data: bytes) -> list[bytes]:
    """Decodes a chunk into alternating keys and values."""
    flat: Any = fastavro.schemaless_reader(io.BytesIO(data), _CHUNK, None)
    if not isinstance(flat, list) or len(flat) % 2:
        raise ValueError("a backup chunk holds an odd number of items")
    return flat
