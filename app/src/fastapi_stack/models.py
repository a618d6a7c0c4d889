"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

ItemName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ItemDescription = Annotated[str, StringConstraints(max_length=2000)]


class FieldErrorDetail(BaseModel):
    """One invalid input field of a 422 response."""

    location: str = Field(description="Where the field is: body, query, path, header or cookie.")
    field: str = Field(description="Dotted path of the field inside its location, e.g. 'name'.")
    message: str
    type: str = Field(description="pydantic error type, e.g. 'string_too_short'.")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code, e.g. 'not_found'.")
    message: str
    request_id: str | None = Field(description="The X-Request-ID of the failed request.")
    details: list[FieldErrorDetail] | None = Field(
        default=None, description="Invalid fields; only in 422 responses."
    )


class ErrorResponse(BaseModel):
    """The body of every error response of this service."""

    error: ErrorBody


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ItemName
    description: ItemDescription | None = None


class ItemUpdate(BaseModel):
    """Fields to change. Omitted fields keep their value; ``description: null`` clears it."""

    model_config = ConfigDict(extra="forbid")

    name: ItemName | None = None
    description: ItemDescription | None = None

    @field_validator("name")
    @classmethod
    def _reject_null_name(cls, value: str | None) -> str | None:
        # Runs only for a name sent by the client, because defaults are not validated.
        if value is None:
            raise ValueError("name cannot be null; omit it to keep the current name")
        return value


class Item(BaseModel):
    id: UUID
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    """One page of items in creation order, oldest first."""

    items: list[Item]
    total: int = Field(description="Number of items in the store.")
    limit: int
    offset: int


class PrimeCount(BaseModel):
    """Result of counting the primes up to ``n``."""

    n: int
    prime_count: int
    largest_prime: int | None = Field(description="The largest prime <= n, or null when n < 2.")


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None


class SessionData(BaseModel):
    """The data stored for one session. The session id itself is only in the cookie."""

    name: str | None
    created_at: datetime
    expires_in_seconds: int = Field(description="Idle time after which the session expires.")


class Greeting(BaseModel):
    message: str


class HealthStatus(BaseModel):
    status: Literal["ok"]


class ReadinessStatus(BaseModel):
    status: Literal["ready"]
    redis: Literal["ok"]
