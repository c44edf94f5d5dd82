"""What clients send and receive (schema family per entity; never the table classes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.mediation.domain.coverage import PRODUCTS
from services.mediation.domain.model import Status

Text = Annotated[str, Field(max_length=2000)]
Short = Annotated[str, Field(min_length=1, max_length=100)]
Ref = Annotated[str, Field(min_length=1, max_length=64)]  # as long as the columns that keep them


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, v: object) -> object:
        """PostgreSQL text cannot hold NUL: refused here, naming the field, on every database."""
        if isinstance(v, str) and "\x00" in v:
            raise ValueError("must not contain a NUL character")
        return v


class Place(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"


class RiderIn(Strict):
    id: Short
    name: Short
    phone: str = Field(pattern=r"^\+?[0-9][0-9 -]{5,19}$", description="mobile number; never shown in a packet")
    lang: Literal["zh", "en"] = "zh"


def _plausible(t: datetime | None) -> datetime | None:
    """An instant this system can mean (as the feeds' timestamps: 2000-2100); far ones such as year 1
    with a +14:00 offset would not even convert to UTC."""
    if t is not None and not 2000 <= t.year < 2100:
        raise ValueError("must be a date between 2000 and 2100")
    return t


class IncidentIn(Strict):
    at: datetime = Field(description="ISO 8601 with offset; a naive time is read in XJ_TIMEZONE")
    location: Place | None = None
    description: Text = ""
    injury: Annotated[str, Field(max_length=500)] = ""

    _at = field_validator("at")(_plausible)


class ConsentIn(Strict):
    given: bool
    at: datetime | None = None
    method: Annotated[str, Field(max_length=50)] = ""
    scope: Annotated[str, Field(max_length=300)] = "trajectory around the incident, for this case only"

    _at = field_validator("at")(_plausible)


class CaseCreate(Strict):
    rider: RiderIn
    insurer_code: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
    policy_number: Ref
    claim_number: Ref
    incident: IncidentIn
    denial_reason: Text = ""
    consent: ConsentIn
    product: str | None = Field(default=None, description=f"one of {', '.join(PRODUCTS)}; default from the insurer")

    @field_validator("product")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in PRODUCTS:
            raise ValueError(f"unknown product; expected one of {', '.join(PRODUCTS)}")
        return v


class CaseCreated(BaseModel):
    case_id: str
    case_number: str
    status: Status
    rider_access_code: str


class TransitionIn(Strict):
    to: Status
    reason: Text = ""


class InsurerResponseIn(Strict):
    """An insurer's answer to the proposal. A refusal must say why (422 naming ``reason``)."""

    decision: Literal["accept", "reject"]
    reason: Text = Field(default="", validate_default=True, description="required when the decision is reject")

    @field_validator("reason")
    @classmethod
    def _reject_with_reason(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("decision") == "reject" and not v:
            raise ValueError("a rejection needs a reason")
        return v


# ------------------------------------------------------------------ corrections (PATCH /cases/{id})

class RiderPatch(Strict):
    id: Short | None = None
    name: Short | None = None
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 -]{5,19}$")
    lang: Literal["zh", "en"] | None = None


class IncidentPatch(Strict):
    at: datetime | None = None
    location: Place | None = None
    description: Text | None = None
    injury: Annotated[str, Field(max_length=500)] | None = None

    _at = field_validator("at")(_plausible)


class CaseCorrection(Strict):
    """Only the fields sent are changed; ``reason`` says why."""

    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    rider: RiderPatch | None = None
    insurer_code: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    policy_number: Ref | None = None
    claim_number: Ref | None = None
    incident: IncidentPatch | None = None
    denial_reason: Text | None = None
    consent: ConsentIn | None = None
    product: str | None = None

    @field_validator("product")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in PRODUCTS:
            raise ValueError(f"unknown product; expected one of {', '.join(PRODUCTS)}")
        return v

    def changes(self) -> dict[str, object]:
        """What was sent, nested, without ``reason`` (explicit nulls in the incident's location kept)."""
        out = self.model_dump(exclude_unset=True, exclude={"reason"})
        # an explicit null changes nothing (no field entered at opening may be emptied), except the
        # incident's location, which may be removed
        return {k: v for k, v in out.items() if v is not None}
