"""Tables of the office features (prefix ``mediation_``): attachments and their bytes, the
scheduler's lease, the overdue notices already raised. Migration 0003_office."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.mediation.adapters.tables import TZ


class BlobRow(SQLModel, table=True):
    """The bytes of an attachment, once per SHA-256 (the same file attached twice is stored once).
    Retention: a blob is never deleted while any case it belongs to is not closed."""

    __tablename__ = "mediation_blob"
    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    body: bytes = Field(sa_column=Column(LargeBinary))


class AttachmentRow(SQLModel, table=True):
    __tablename__ = "mediation_attachment"
    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    sha256: str = Field(max_length=64)
    size: int
    content_type: str = Field(max_length=64)
    filename: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    description: str = Field(default="", sa_column=Column(Text))
    added_by: str = Field(max_length=100)
    added_at: datetime = Field(sa_column=TZ())


class LeaseRow(SQLModel, table=True):
    """A named lease: the process holding it (until ``until``) does the named periodic work."""

    __tablename__ = "mediation_lease"
    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=100)
    until: datetime = Field(sa_column=TZ())


class OverdueNoticeRow(SQLModel, table=True):
    """One row per case and deadline for which ``CaseOverdue`` was published: the unique key makes
    it once, whatever number of schedulers race."""

    __tablename__ = "mediation_overdue_notice"
    __table_args__ = (UniqueConstraint("case_id", "deadline"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=36)
    status: str = Field(max_length=32)
    deadline: datetime = Field(sa_column=TZ())
    raised_at: datetime = Field(sa_column=TZ())
