"""Files answered for download (an invoice's PDF), the same way by the API and the pages."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response


class PDFResponse(Response):
    """A PDF document; as a route's `response_class` it declares `application/pdf`."""

    media_type = "application/pdf"


# The 200 answer of a PDF route in /openapi.json: a binary file, not JSON.
PDF_ANSWER: dict[str, Any] = {
    "description": "the PDF document, as an attachment",
    "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
}


def download(content: bytes, filename: str, media_type: str) -> Response:
    """`content` as an attachment saved as `filename` (a plain ASCII name, such as an
    invoice number), private: never cached, never sniffed as another type."""
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
