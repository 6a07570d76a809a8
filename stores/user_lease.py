"""A cross-process lease on one user, for a read-merge-write of their profile on a shared Chroma server.

Chroma has no compare-and-set, but `add` of an existing id is ignored: the first `add` of the lease record wins
and everyone reads back who holds it. A holder that died is taken over once its lease expired. Embedded stores
need none: the directory lock (stores/dir_lock.py) already keeps other processes out.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from interestlens.agent.errors import StoreError
from interestlens.stores.vectors import DUMMY

# Cross-process user lease (server mode): held for one read-merge-write, taken over only once expired.
LEASE_TTL_S = 60.0
LEASE_WAIT_S = 120.0


@contextlib.contextmanager
def hold_lease(leases: Any, uid: str) -> Iterator[None]:
    """Hold the lease record `uid` in the `leases` collection for the block; waits up to LEASE_WAIT_S for it."""
    token = uuid.uuid4().hex
    deadline = time.monotonic() + LEASE_WAIT_S
    delay = 0.01
    while True:
        doc = json.dumps({"token": token, "expires": time.time() + LEASE_TTL_S})
        leases.add(ids=[uid], embeddings=[DUMMY], metadatas=[{"user_id": uid}], documents=[doc])
        held = leases.get(ids=[uid], include=["documents"])
        if held["ids"]:
            holder = json.loads(held["documents"][0])
            if holder.get("token") == token:
                break
            if float(holder.get("expires", 0)) < time.time():
                leases.delete(ids=[uid])  # its holder died mid-update
                continue
        if time.monotonic() > deadline:
            raise StoreError(f"timed out waiting for another process to finish updating user {uid}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    try:
        yield
    finally:
        held = leases.get(ids=[uid], include=["documents"])
        if held["ids"] and json.loads(held["documents"][0]).get("token") == token:
            leases.delete(ids=[uid])
