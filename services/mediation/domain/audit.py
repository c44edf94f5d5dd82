"""The audit trail: append-only, hash-chained. Each entry's hash covers the previous hash and the
entry's canonical JSON, so editing, removing or reordering any entry breaks every hash after it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    case_id: str
    seq: int
    at: str  # ISO 8601 UTC
    actor: str
    action: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


def entry_hash(prev_hash: str, case_id: str, seq: int, at: str, actor: str, action: str, data: dict[str, Any]) -> str:
    body = orjson.dumps({"case_id": case_id, "seq": seq, "at": at, "actor": actor, "action": action, "data": data},
                        option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def append(prev: Entry | None, case_id: str, at: str, actor: str, action: str, data: dict[str, Any]) -> Entry:
    seq = 1 if prev is None else prev.seq + 1
    ph = GENESIS if prev is None else prev.hash
    return Entry(case_id, seq, at, actor, action, data, ph, entry_hash(ph, case_id, seq, at, actor, action, data))


def verify(entries: list[Entry]) -> list[str]:
    """Problems found in a case's chain, in order; empty when intact."""
    problems: list[str] = []
    prev_hash = GENESIS
    for expected_seq, e in enumerate(sorted(entries, key=lambda x: x.seq), start=1):
        if e.seq != expected_seq:
            problems.append(f"entry {expected_seq} is missing (found {e.seq})")
            break
        if e.prev_hash != prev_hash:
            problems.append(f"entry {e.seq} does not follow entry {e.seq - 1}")
        if entry_hash(e.prev_hash, e.case_id, e.seq, e.at, e.actor, e.action, e.data) != e.hash:
            problems.append(f"entry {e.seq} ({e.action}) was altered")
        prev_hash = e.hash
    return problems
