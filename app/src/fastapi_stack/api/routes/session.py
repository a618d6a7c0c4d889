"""Server-side session endpoints. The cookie carries only the session id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Cookie, Response, status

from fastapi_stack.api import API_V1_PREFIX
from fastapi_stack.deps import SessionStoreDep
from fastapi_stack.errors import NotFoundError, SessionRequiredError
from fastapi_stack.models import ErrorResponse, SessionCreate, SessionData
from fastapi_stack.sessions import SESSION_COOKIE

router = APIRouter(prefix=f"{API_V1_PREFIX}/session", tags=["session"])

SessionCookie = Annotated[str | None, Cookie(alias=SESSION_COOKIE)]

READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "The request has no session cookie."},
    404: {"model": ErrorResponse, "description": "The session expired or does not exist."},
}


def _set_session_cookie(response: Response, session_id: str) -> None:
    # No Max-Age: the browser keeps the cookie until it closes, and Redis decides the expiry.
    response.set_cookie(
        SESSION_COOKIE, session_id, httponly=True, secure=True, samesite="lax", path="/"
    )


def _clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, httponly=True, secure=True, samesite="lax", path="/")


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(
    store: SessionStoreDep,
    response: Response,
    body: Annotated[SessionCreate | None, Body()] = None,
) -> SessionData:
    """Start a new session and set its ``session_id`` cookie (HttpOnly, Secure, SameSite=Lax).

    A session already named by the request cookie is left alone; it expires on its own.
    """
    session_id, data = await store.create(body.name if body else None)
    _set_session_cookie(response, session_id)
    return data


@router.get("", responses=READ_ERRORS)
async def read_session(store: SessionStoreDep, session_id: SessionCookie = None) -> SessionData:
    """Return the session data. Each read restarts the idle timeout of the session."""
    if not session_id:
        raise SessionRequiredError("No session cookie; create a session with POST first.")
    data = await store.read(session_id)
    if data is None:
        raise NotFoundError(
            "Session expired or not found; create a new one with POST.",
            headers={"Set-Cookie": _expired_cookie_header()},
        )
    return data


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(
    store: SessionStoreDep, response: Response, session_id: SessionCookie = None
) -> None:
    """End the session and clear the cookie. Succeeds also without a session."""
    if session_id:
        await store.delete(session_id)
    _clear_session_cookie(response)


def _expired_cookie_header() -> str:
    response = Response()
    _clear_session_cookie(response)
    return response.headers["set-cookie"]
