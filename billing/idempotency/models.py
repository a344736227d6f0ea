"""The stored answer of a request sent with an idempotency key."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from billing.db import UTCDateTime


class IdempotencyKey(SQLModel, table=True):
    """One key of one caller: the request it was first used with (a fingerprint), and once
    that request succeeded, its answer (status and JSON body), replayed for the same key."""

    __tablename__ = "idempotency_key"

    owner: str = Field(primary_key=True, max_length=80)  # "key:<api key id>", "portal:<customer>"
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)  # sha256 of method, path and body
    state: str = Field(max_length=8)  # "started" | "done"
    response_status: int | None = None
    response_body: str | None = None  # the JSON answer, as sent
    created_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
    updated_at: dt.datetime = Field(sa_type=UTCDateTime)
