"""JSON bodies parsed exactly: fractional numbers become Decimal, never float.

FastAPI's default parser turns 0.1 into a float before any validator sees it. Routes of
this API use `ExactJSONRoute`, whose request parses numbers with a fraction or exponent
as `JSONNumber` (a Decimal), so "quantity": 1.1 is exactly 1.1. Amounts of money are still
refused as JSON numbers by their validators: money travels as strings.

The same routes refuse a body with a string or key no database can store (a NUL character,
which PostgreSQL refuses, or a lone surrogate, which is not UTF-8) before any validator or
query sees it: 422 `invalid_text`, naming the field.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from billing.errors import InvalidText
from billing.parsing import UNSTORABLE, JSONNumber, storable

MAX_INT_DIGITS = 40


def _parse_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= MAX_INT_DIGITS else JSONNumber(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        twice = next(key for key, count in counts.items() if count > 1)
        raise json.JSONDecodeError(f"duplicate key {twice!r}", "", 0)
    return document


def loads(body: bytes | str) -> Any:
    """Parse JSON with fractional numbers as JSONNumber (exact), never float; no repeated keys.

    json.JSONDecodeError (a ValueError) for anything that is not such a document, including a
    body nested deeper than the parser's recursion limit (about a thousand levels)."""
    try:
        return json.loads(
            body,
            parse_float=JSONNumber,
            parse_int=_parse_int,
            parse_constant=JSONNumber,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


def unstorable_at(document: Any) -> tuple[str, str] | None:
    """Where `document` holds a string or key no database can store, as (field, message);
    None when it holds none. The field is a dotted path ("usage.session_replay",
    "thresholds.0"); for a key, the object holding it ("body" at the top)."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while stack:  # a loop, not recursion: a body may be nested as deep as the parser allows
        path, node = stack.pop()
        if isinstance(node, str):
            if not storable(node):
                return ".".join(path) or "body", UNSTORABLE
        elif isinstance(node, dict):
            for key, value in node.items():
                if not storable(key):
                    return ".".join(path) or "body", f"a key {UNSTORABLE}"
                stack.append(((*path, key), value))
        elif isinstance(node, list):
            stack.extend(((*path, str(index)), value) for index, value in enumerate(node))
    return None


class ExactJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = loads(body)
        return self._json


class ExactJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_handler(request: Request) -> Response:
            exact = ExactJSONRequest(request.scope, request.receive)
            await _refuse_unstorable_text(exact)
            return await handler(exact)

        return exact_handler


async def _refuse_unstorable_text(request: ExactJSONRequest) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return
    try:
        document = await request.json()
    except ValueError:  # not JSON: the route's own parsing answers it (invalid_json)
        return
    found = unstorable_at(document)
    if found is not None:
        field, message = found
        raise InvalidText(f"{field}: {message}", field=field)
