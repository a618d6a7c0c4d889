"""Turn errors into responses of the one JSON error shape.

Every error response of the service has this body::

    {"error": {"code": "not_found", "message": "...", "request_id": "...", "details": null}}

``details`` lists the invalid fields of a 422 response and is null otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fastapi_stack.errors import ApiError
from fastapi_stack.logging import request_id_var
from fastapi_stack.models import ErrorBody, ErrorResponse, FieldErrorDetail

logger = logging.getLogger(__name__)

VALIDATION_ERROR_CODE = "validation_failed"


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: list[FieldErrorDetail] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=ErrorBody(
            code=code, message=message, request_id=request_id_var.get(), details=details
        )
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status_code, headers=dict(headers or {})
    )


def field_errors(errors: Sequence[Any]) -> list[FieldErrorDetail]:
    """Convert pydantic error dictionaries into the ``details`` list of a 422 response."""
    details = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        where = location[0] if location else "body"
        field = ".".join(location[1:])
        details.append(
            FieldErrorDetail(location=where, field=field, message=error["msg"], type=error["type"])
        )
    return details


async def handle_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    return error_response(exc.status_code, exc.code, exc.message, headers=exc.headers)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
    phrase = HTTPStatus(exc.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    message = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else phrase
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    details = field_errors(exc.errors())
    names = ", ".join(
        sorted({f"{d.location}.{d.field}" if d.field else d.location for d in details})
    )
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        VALIDATION_ERROR_CODE,
        f"Invalid request: {names}.",
        details=details,
    )


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, handle_api_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
