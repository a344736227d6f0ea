"""The one place errors become HTTP: status codes and the {"code", "message", "field"} body."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from billing.errors import (
    BadRequest,
    BillingError,
    CatalogError,
    Conflict,
    Forbidden,
    InputError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
)

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[BillingError], int]] = [
    (InputError, 422),
    (BadRequest, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthorized, 401),
    (Forbidden, 403),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (RateLimited, 429),
    (CatalogError, 500),
]

_CODE_BY_PYDANTIC_TYPE = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "json_invalid": "invalid_json",
    "model_attributes_type": "invalid_type",
    "dict_type": "invalid_type",
    "too_long": "too_many_items",
    "string_too_long": "text_too_long",
}


def status_of(error: BillingError) -> int:
    """The HTTP status of an engine error (pages answer with the same ones)."""
    return next((s for kind, s in STATUS_BY_ERROR if isinstance(error, kind)), 400)


def error_body(code: str, message: str, field: str | None, **extra: Any) -> dict[str, Any]:
    """The error body every 4xx and 5xx of this API carries."""
    return {"code": code, "message": message, "field": field, **extra}


def install(app: FastAPI, *, page_not_found: Callable[[Request], Response] | None = None) -> None:
    """Register the error handlers on an app; `page_not_found` answers a 404 on a page path
    (not the API's: those answer the JSON error body)."""

    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404 and page_not_found and is_page_path(request.url.path):
            return page_not_found(request)
        return await _http_error(request, error)

    app.add_exception_handler(BillingError, _billing_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _billing_error(request: Request, error: BillingError) -> JSONResponse:
    status = status_of(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.retry_after)}
    return JSONResponse(
        error_body(error.code, error.message, error.field), status_code=status, headers=headers
    )


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = [_problem(item) for item in error.errors()]
    first = problems[0]
    return JSONResponse(
        error_body(str(first["code"]), str(first["message"]), first["field"], errors=problems),
        status_code=422,
    )


# Paths whose answers are JSON (the API, health, metrics, the schema); other paths are pages.
API_PREFIXES = ("/v1/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/static/")


def is_page_path(path: str) -> bool:
    """Whether `path` belongs to the pages (an HTML 404 there), not the API."""
    return not path.startswith(API_PREFIXES)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
        error.status_code, "http_error"
    )
    return JSONResponse(
        error_body(code, str(error.detail), None),
        status_code=error.status_code,
        headers=getattr(error, "headers", None),
    )


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body("internal_error", "an unexpected error occurred; it has been logged", None),
        status_code=500,
    )


def _problem(item: Any) -> dict[str, str | None]:
    loc = [part for part in item["loc"] if part != "body"]
    kind = item["type"]
    if kind == "json_invalid":
        reason = item.get("ctx", {}).get("error", "malformed JSON")
        position = loc[0] if loc else "?"
        return {
            "code": "invalid_json",
            "message": f"the body is not valid JSON: {reason} (at character {position})",
            "field": "body",
        }
    field = ".".join(str(part) for part in loc) or "body"
    message = str(item["msg"])
    if kind == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}"
    elif kind == "missing":
        message = f"{loc[-1]!r} is required" if loc else "a JSON body is required"
    elif kind in ("model_attributes_type", "dict_type"):
        message = f"{field} must be a JSON object" if loc else "the body must be a JSON object"
    elif kind == "string_too_long":
        message = f"{field}: at most {item.get('ctx', {}).get('max_length')} characters"
    if kind in _CODE_BY_PYDANTIC_TYPE:
        code = _CODE_BY_PYDANTIC_TYPE[kind]
    else:
        # Our field parsers raise with a specific code (invalid_quantity, invalid_amount...).
        code = kind if kind.startswith("invalid_") else "invalid"
        message = f"{field}: {message}"
    return {"code": code, "message": message, "field": field}
