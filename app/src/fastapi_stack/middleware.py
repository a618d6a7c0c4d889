"""Request id, access log, metrics and the last-resort 500 response for every HTTP request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import status
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_stack.error_handlers import error_response
from fastapi_stack.logging import request_id_var
from fastapi_stack.metrics import HTTP_REQUESTS_IN_PROGRESS, UNMATCHED_ROUTE, observe_request

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("fastapi_stack.access")

REQUEST_ID_HEADER = "X-Request-ID"
# Accepted incoming ids: what Caddy ({http.request.uuid}) and common proxies send. Anything else
# is replaced, so that a client cannot write arbitrary text into the logs.
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID_PATTERN.fullmatch(text) else None
    return None


def route_template(scope: Scope) -> str:
    """Return the path template of the route that handled the request, e.g. /items/{item_id}.

    Paths that match no route share one label, so that scanners cannot create unbounded
    metric label values.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Set the request id, write the access log line and record the request metrics.

    The request id comes from a valid ``X-Request-ID`` header or is a new UUID. It is stored in
    a context variable for the log lines of the request and returned in the response header.
    An exception that no handler caught is logged with its traceback, and the client gets a
    500 response in the JSON error shape.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        HTTP_REQUESTS_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            logger.exception("Unhandled error in %s %s", scope["method"], scope["path"])
            if not response_started:
                response = error_response(
                    status.HTTP_500_INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "The server failed to handle the request.",
                )
                await response(scope, receive, send_with_request_id)
            status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
        finally:
            HTTP_REQUESTS_IN_PROGRESS.dec()
            duration = time.perf_counter() - started
            self._finish(scope, status_code, duration)
            request_id_var.reset(token)

    @staticmethod
    def _finish(scope: Scope, status_code: int, duration: float) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        client = scope.get("client")
        observe_request(route_template(scope), method, status_code, duration)
        # The path is logged without the query string, which may carry tokens.
        access_logger.info(
            "%s %s %d %.1fms",
            method,
            path,
            status_code,
            duration * 1000,
            extra={
                "method": method,
                "path": path,
                "status": status_code,
                "duration_ms": round(duration * 1000, 3),
                "client_ip": client[0] if client else None,
            },
        )
