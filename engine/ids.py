"""Identifiers and partitioning.

An invocation id embeds the 32-bit murmur2 hash of its partition key, so any process can route a
request about an invocation (attach, output, cancel) to the partition that owns it without a lookup,
whatever the partition count. Partitions follow Kafka's default partitioner exactly:
``toPositive(murmur2(key)) % partitions``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

from perdure.engine.errors import InvalidId
from perdure.engine.limits import LimitExceeded, parse_u32

_ID_PREFIX = "inv_"
_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (``org.apache.kafka.common.utils.Utils.murmur2``) as a signed int32."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length - (length % 4)
    # Little-endian 32-bit words in one C call: the per-byte indexing cost the ingress ~5 % of
    # its event loop (a new invocation id per call).
    for (k,) in struct.iter_unpack("<I", data[:end]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of_hash(key_hash: int, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key with this murmur2 hash."""
    return (key_hash & 0x7FFFFFFF) % partitions


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition of a partition key, as Kafka's default partitioner computes it."""
    return partition_of_hash(murmur2(key), partitions)


@dataclass(frozen=True, slots=True)
class InvocationId:
    """An invocation's id: the hash of its partition key plus 16 unique bytes.

    Its text form is ``inv_`` followed by 32 base32 characters (lower case, no padding).
    """

    key_hash: int
    uid: bytes

    def __str__(self) -> str:
        raw = (self.key_hash & _MASK).to_bytes(4, "big") + self.uid
        return _ID_PREFIX + base64.b32encode(raw).decode().rstrip("=").lower()

    def partition(self, partitions: int) -> int:
        """The log partition that owns this invocation."""
        return partition_of_hash(self.key_hash, partitions)

    @classmethod
    def parse(cls, text: str) -> InvocationId:
        """Parses the text form; raises :class:`InvalidId` if it is not one."""
        if not text.startswith(_ID_PREFIX) or len(text) != len(_ID_PREFIX) + 32:
            raise InvalidId(f"not an invocation id: {text[:100]!r}")
        try:
            raw = base64.b32decode(text[len(_ID_PREFIX) :].upper())
        except ValueError as err:
            raise InvalidId(f"not an invocation id: {text!r}") from err
        if len(raw) != 20:
            raise InvalidId(f"not an invocation id: {text!r}")
        h = int.from_bytes(raw[:4], "big")
        parsed = cls(h - (1 << 32) if h & 0x80000000 else h, raw[4:])
        if str(parsed) != text:  # one spelling per id (base32 also reads upper case)
            raise InvalidId(f"not an invocation id: {text!r}")
        return parsed

    @classmethod
    def for_key(cls, partition_key: bytes, uid: bytes) -> InvocationId:
        """An id routed by ``partition_key`` (the object key of a keyed service)."""
        return cls(murmur2(partition_key), uid)

    @classmethod
    def new_unkeyed(cls, uid: bytes | None = None) -> InvocationId:
        """An id for a plain service: its own unique bytes are the partition key."""
        uid = uid if uid is not None else os.urandom(16)
        return cls(murmur2(uid), uid)


def idempotent_uid(service: str, handler: str, key: str | None, idempotency_key: str) -> bytes:
    """The unique bytes of an invocation named by an idempotency key.

    The same target and idempotency key always give the same invocation id, so that a retried
    call reaches the same invocation on the same partition.
    """
    h = hashlib.blake2b(digest_size=16, person=b"perdure-idem-v1")
    for part in (service, handler, key if key is not None else "\x00", idempotency_key):
        data = part.encode()
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return h.digest()


def call_uid(caller_id: str, index: int) -> bytes:
    """The unique bytes of the invocation that journal entry ``index`` of ``caller_id`` calls.

    Deterministic, so that delivering the call twice (after a crash) names the same invocation.
    """
    h = hashlib.blake2b(digest_size=16, person=b"perdure-call-v1")
    h.update(caller_id.encode())
    h.update(index.to_bytes(4, "big"))
    return h.digest()


def workflow_run_id(workflow: str, workflow_id: str) -> InvocationId:
    """The id of a workflow's main run: one per workflow id, whoever submits it."""
    h = hashlib.blake2b(digest_size=16, person=b"perdure-wf-v1")
    for part in (workflow, workflow_id):
        data = part.encode()
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return InvocationId.for_key(workflow_id.encode(), h.digest())


_AWAKEABLE_PREFIX = "awk_"


def awakeable_id(invocation_id: str, index: int) -> str:
    """The id of the awakeable at journal entry ``index``: it routes to the invocation."""
    return f"{_AWAKEABLE_PREFIX}{invocation_id[len(_ID_PREFIX) :]}_{index}"


def parse_awakeable_id(text: str) -> tuple[str, int]:
    """The invocation id and entry index of an awakeable id; :class:`InvalidId` otherwise."""
    body, _, index = text.removeprefix(_AWAKEABLE_PREFIX).partition("_")
    if not text.startswith(_AWAKEABLE_PREFIX):
        raise InvalidId(f"not an awakeable id: {text[:100]!r}")
    try:
        number = parse_u32(index, "awakeable index")
    except LimitExceeded as err:
        raise InvalidId(f"not an awakeable id: {text[:100]!r} ({err})") from None
    invocation_id = _ID_PREFIX + body
    InvocationId.parse(invocation_id)
    return invocation_id, number


_SIGNAL_PREFIX = "sign_1"
"""Restate's awakeable ids (service protocol V5+): ``sign_1`` and base64url, unpadded, of the
invocation's ``Start.id`` (for Perdure, its id's UTF-8) and the signal index (u32, big-endian)."""


def signal_awakeable_id(invocation_id: str, signal: int) -> str:
    """The id a Restate SDK gives the awakeable of ``signal`` in ``invocation_id``."""
    return signal_awakeable_id_of(invocation_id.encode() + signal.to_bytes(4, "big"))


def parse_signal_awakeable_id(text: str) -> tuple[str, int]:
    """The invocation id and signal index of a Restate SDK's awakeable id; :class:`InvalidId`."""
    if not text.startswith(_SIGNAL_PREFIX):
        raise InvalidId(f"not an awakeable id: {text!r}")
    body = text[len(_SIGNAL_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        raise InvalidId(f"not an awakeable id: {text!r}") from None
    # One spelling per id: base64's unused low bits let several texts decode to one id.
    if len(raw) < 5 or signal_awakeable_id_of(raw) != text:
        raise InvalidId(f"not an awakeable id: {text[:100]!r}")
    try:
        invocation_id = raw[:-4].decode()
    except UnicodeDecodeError:
        raise InvalidId(f"not an awakeable id: {text[:100]!r}") from None
    InvocationId.parse(invocation_id)
    return invocation_id, int.from_bytes(raw[-4:], "big")


def signal_awakeable_id_of(raw: bytes) -> str:
    """The text of a ``sign_1`` id from its bytes (the invocation id's UTF-8 + u32 index)."""
    return _SIGNAL_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_any_awakeable_id(text: str) -> tuple[str, int]:
    """The invocation id and index of either kind of awakeable id: Perdure's ``awk_`` (the
    entry's index) or a Restate SDK's ``sign_1`` (the signal's index, negated: how the
    partition tells them apart, engine/awakeables.py); :class:`InvalidId` otherwise."""
    if text.startswith(_SIGNAL_PREFIX):
        invocation_id, signal = parse_signal_awakeable_id(text)
        return invocation_id, -signal
    return parse_awakeable_id(text)
