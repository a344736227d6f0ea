"""Stripe's idempotency semantics for our money-creating requests (docs/idempotency.md).

A caller sends `Idempotency-Key: <key>` (1-255 printable characters) with a request. The key
is claimed and the answer stored in the request's own transaction, so a key has an answer
exactly when the request's change committed, and a request that fails (an error answer, a
crash) leaves nothing behind: its key can be retried.

- the same key with the same request (method, path, body) again: the first answer, replayed;
- the same key with another request: `idempotency_error` (422), nothing is done;
- the same key while the first request is still running: the second waits for it (its claim
  waits on the first one's row: PostgreSQL's unique index, SQLite's single writer), then
  replays its answer; so concurrent identical requests create one thing.

Keys belong to one caller (an API key, a portal customer) and are kept at least RETENTION
(24 hours, as Stripe does); an older key is a new key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from billing.db import table_of
from billing.errors import IdempotencyError, InvalidType
from billing.idempotency.models import IdempotencyKey

RETENTION = dt.timedelta(hours=24)
MAX_KEY = 255
_KEYS = table_of(IdempotencyKey)
_STARTED, _DONE = "started", "done"


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored answer: HTTP status and the JSON body as sent."""

    status: int
    body: Any


def check_key(key: str) -> str:
    """The key as given, or InvalidType naming the header."""
    if not 1 <= len(key) <= MAX_KEY or not key.isprintable():
        raise InvalidType(
            f"Idempotency-Key is 1-{MAX_KEY} printable characters", field="Idempotency-Key"
        )
    return key


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests the same: method, path and the body's content (key order and
    whitespace do not count)."""
    text = json.dumps([method.upper(), path, body], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def claim(
    connection: Connection, owner: str, key: str, print_: str, now: dt.datetime
) -> Stored | None:
    """Claim `key` for a request with fingerprint `print_`, in the request's transaction.

    None: the key is this request's; run it, then `complete` in the same transaction. A
    Stored answer: the request ran before; replay it. Raises IdempotencyError when the key
    was used with another request.
    """
    mine = (_KEYS.c.owner == owner) & (_KEYS.c.key == key)
    row = connection.execute(select(_KEYS).where(mine)).first()
    if row is not None and row.created_at <= now - RETENTION:
        connection.execute(delete(_KEYS).where(mine))  # expired: a new key
        row = None
    if row is None:
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(_KEYS).values(
                        owner=owner,
                        key=key,
                        fingerprint=print_,
                        state=_STARTED,
                        created_at=now,
                        updated_at=now,
                    )
                )
            return None
        except IntegrityError:  # a request beside this one committed the key meanwhile
            row = connection.execute(select(_KEYS).where(mine)).one()
    if row.fingerprint != print_:
        raise IdempotencyError(
            f"Idempotency-Key {key!r} was used with another request; "
            "use a new key for a new request",
            field="Idempotency-Key",
        )
    return Stored(int(row.response_status), json.loads(row.response_body))


def complete(
    connection: Connection, owner: str, key: str, status: int, body: Any, now: dt.datetime
) -> None:
    """Store the answer of the request that claimed `key`, in that request's transaction."""
    connection.execute(
        update(_KEYS)
        .where((_KEYS.c.owner == owner) & (_KEYS.c.key == key))
        .values(
            state=_DONE,
            response_status=status,
            response_body=json.dumps(body, separators=(",", ":")),
            updated_at=now,
        )
    )


def purge(engine: Engine, now: dt.datetime) -> int:
    """Delete keys older than RETENTION; how many."""
    with engine.begin() as connection:
        done = connection.execute(delete(_KEYS).where(_KEYS.c.created_at <= now - RETENTION))
        return int(done.rowcount or 0)
