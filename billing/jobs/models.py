"""The record of background job runs (written by billing/jobs/runner.py)."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from billing.db import UTCDateTime


class JobRun(SQLModel, table=True):
    __tablename__ = "job_run"

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=64, index=True)
    runner: str = Field(max_length=128)  # host:pid
    started_at: dt.datetime = Field(sa_type=UTCDateTime)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(max_length=16)  # running | ok | failed
    detail: str = Field(default="", max_length=500)
