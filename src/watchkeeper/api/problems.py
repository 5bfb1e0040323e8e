"""RFC 9457 problem details: every error the API returns, in one shape.

``WatchkeeperError`` subclasses map to one status each (the most specific
class in the exception's MRO wins); validation errors list what was wrong
with which field; anything unexpected is a 500 without internals.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import errors

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

STATUS_BY_ERROR: dict[type[errors.WatchkeeperError], int] = {
    errors.BadRequestError: 400,
    errors.AuthError: 401,
    errors.PermissionDeniedError: 403,
    errors.UnsafeTargetError: 403,
    errors.UnsafePathError: 403,
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.MediaTooLargeError: 413,
    errors.UnsupportedMediaError: 415,
    errors.MediaError: 422,
    errors.AnalysisError: 422,
    errors.RateLimitedError: 429,
    errors.DeliveryError: 502,
    errors.ArtefactStoreError: 503,
    errors.ConfigError: 503,
    errors.ModelError: 503,
    errors.WatchkeeperError: 400,
}


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the kind of problem: urn:watchkeeper:problem:<code>.")
    title: str
    status: int
    detail: str
    instance: str = Field(description="The request path.")
    code: str = Field(description="Machine-readable error code.")
    errors: list[dict[str, Any]] | None = Field(None, description="Per-field validation errors.")


# For route declarations: documents the problem shape of error responses in the OpenAPI document.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": "A problem with the request."},
}


def status_for(exc: errors.WatchkeeperError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def problem_response(
    request: Request, status: int, code: str, detail: str, *,
    headers: dict[str, str] | None = None, **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"urn:watchkeeper:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def _watchkeeper_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.WatchkeeperError)
    status = status_for(exc)
    headers = {}
    if isinstance(exc, errors.RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    elif isinstance(exc, errors.AuthError):
        headers["WWW-Authenticate"] = 'Bearer realm="watchkeeper"'
    if status >= 500:
        log.error("request failed", extra={"path": request.url.path, "error": str(exc), "code": exc.code})
    return problem_response(request, status, exc.code, str(exc), headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Never echo the input back: it may be a password.
    details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
               for e in exc.errors()]
    summary = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:5])
    return problem_response(request, 422, "validation_error", summary or "invalid request", errors=details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "media_too_large"}.get(exc.status_code, f"http_{exc.status_code}")
    return problem_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the models let through (a NUL character on PostgreSQL, an out-of-range number).
    log.warning("database refused a value", extra={"path": request.url.path, "error": str(exc).splitlines()[0]})
    return problem_response(request, 400, "bad_request", "a value in the request cannot be stored or searched for")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(request, 500, "internal_error", "the server failed to handle this request")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.WatchkeeperError, _watchkeeper_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(Exception, _unexpected_error)
