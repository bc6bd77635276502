"""The local provider's own table: its renders, durable so any worker can answer for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary
from sqlmodel import Field, SQLModel

from core.contract import JobStatus, utcnow


class LocalTask(SQLModel, table=True):
    """A render of the built-in local provider, durable so that any worker process can
    answer for it and an unfinished one is taken over when its worker dies."""

    id: str = Field(primary_key=True)
    job_id: str
    #: The `SubmitRequest` it renders, as a dict.
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = JobStatus.SUBMITTED.value
    error: str | None = None
    result_url: str | None = None
    #: The finished PNG, served at the provider's outputs route.
    image: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    #: Which worker renders it, until when (renewed while it works).
    claimed_by: str | None = None
    lease_until: datetime | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow)
