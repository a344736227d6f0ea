"""A small Stripe stand-in over real HTTP, following Stripe's documented rules.

Only what the sync uses: customers (create, search, retrieve), invoices (create, list by
customer, retrieve, lines, finalize, send, pay, void, delete), invoice items (create,
list by invoice) and credit notes (create, preview, list by invoice). Rules kept from
Stripe's documentation (https://docs.stripe.com/api):
- only the parameters an endpoint has are accepted: the allow-lists are read from the
  official SDK's typed parameter classes (`stripe.params`), and anything else is a 400
  "Received unknown parameter" naming it, as Stripe answers;
- an idempotency key replays the first answer for the same parameters for 24 hours, a 500
  included, and is a 400 `idempotency_error` with other parameters; only answers of requests
  that started executing are saved (not a parameter refused, nor a 409); a request whose key
  is in use by a request still in progress is a 409 `idempotency_key_in_use`
  (https://docs.stripe.com/api/idempotent_requests);
- an invoice is finalized only from `draft`, sent, paid and voided only when `open`, deleted
  only as a draft; items are added only to a draft; a draft's `total` and `amount_due` are
  kept current as items are added (the sum of the items); finalizing applies the customer's
  `balance` (negative: credit) to `amount_due`, as Stripe does;
- a credit note only for an `open` or `paid` invoice; on an open one it may not exceed the
  invoice's `amount_remaining` and lowers `amount_remaining` and `amount_due`
  (`pre_payment_credit_notes_amount`); on a paid one `refund_amount` + `credit_amount` +
  `out_of_band_amount` must equal its total (`post_payment_credit_notes_amount`), nothing
  is refunded of an invoice paid out of band, and `credit_amount` goes to the customer's
  `balance` (https://docs.stripe.com/api/credit_notes/create); `lines[]` are checked
  against the SDK's typed line parameters too, and only `custom_line_item` lines are kept;
- `collection_method` is `charge_automatically` unless told, and `send_invoice` needs
  `days_until_due` (or `due_date`), which only it may have; only a `send_invoice` invoice
  is sent;
- errors come as {"error": {"type", "message", "code", "param"}} with Stripe's status codes;
- currencies as https://docs.stripe.com/currencies has them: an unknown currency is refused
  (param `currency`); amounts are integers in Stripe's units, and those Stripe cannot carry
  are refused (param `amount`): three-decimal currencies (BHD JOD KWD OMR TND) take only
  multiples of 10, ISK (sent with two decimals) only multiples of 100. The wording of these
  messages is the emulator's; their status, type and param are Stripe's.
Faults can be injected for the next requests: a 500, a 429, a 409, a 400, or a dropped
connection; or a 500 saved for the next key starting with `save_500_for` (Stripe failed
after it began executing: the key replays it), or `done_500_for` (the same after the object
was made); `clock` moves time for the 24 hours;
and requests to one path can be held until released (to kill the client in between).
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe.params as sp
from stripe._request_options import RequestOptions

# Kept apart from billing/stripe_sync/amounts.py on purpose: the emulator is written from
# Stripe's documentation (https://docs.stripe.com/currencies), not from the code it tests.
_CURRENCIES = """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp
    byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel
    gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd
    kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn
    nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd
    shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx usd uyu uzs vnd vuv wst
    xaf xcd xof xpf yer zar zmw
"""
CURRENCIES = frozenset(_CURRENCIES.split())
KEY_LIFETIME = 24 * 3600  # seconds Stripe keeps an idempotency key's first answer
# The integer step Stripe takes amounts in, where it is not 1.
AMOUNT_STEP = {"isk": 100, **dict.fromkeys(["bhd", "jod", "kwd", "omr", "tnd"], 10)}


def _allowed(params_class: Any) -> frozenset[str]:
    """The parameter names of an SDK params class, without the request options."""
    names = params_class.__required_keys__ | params_class.__optional_keys__
    return frozenset(names - (RequestOptions.__required_keys__ | RequestOptions.__optional_keys__))


# What each endpoint accepts, by (method, route), from the SDK's typed parameters.
ALLOWED = {
    ("POST", "customers"): _allowed(sp.CustomerCreateParams),
    ("GET", "customers/search"): _allowed(sp.CustomerSearchParams),
    ("GET", "customers/:id"): _allowed(sp.CustomerRetrieveParams),
    ("POST", "invoices"): _allowed(sp.InvoiceCreateParams),
    ("GET", "invoices"): _allowed(sp.InvoiceListParams),
    ("GET", "invoices/:id"): _allowed(sp.InvoiceRetrieveParams),
    ("DELETE", "invoices/:id"): _allowed(sp.InvoiceDeleteParams),
    ("GET", "invoices/:id/lines"): _allowed(sp.InvoiceListLinesParams),
    ("POST", "invoices/:id/finalize"): _allowed(sp.InvoiceFinalizeInvoiceParams),
    ("POST", "invoices/:id/send"): _allowed(sp.InvoiceSendInvoiceParams),
    ("POST", "invoices/:id/pay"): _allowed(sp.InvoicePayParams),
    ("POST", "invoices/:id/void"): _allowed(sp.InvoiceVoidInvoiceParams),
    ("POST", "invoiceitems"): _allowed(sp.InvoiceItemCreateParams),
    ("GET", "invoiceitems"): _allowed(sp.InvoiceItemListParams),
    ("POST", "credit_notes"): _allowed(sp.CreditNoteCreateParams),
    ("GET", "credit_notes/preview"): _allowed(sp.CreditNotePreviewParams),
    ("GET", "credit_notes"): _allowed(sp.CreditNoteListParams),
}
# What one of a credit note's `lines[]` accepts (the same for create and preview).
LINE_ALLOWED = {
    "POST": frozenset(sp.CreditNoteCreateParamsLine.__annotations__),
    "GET": frozenset(sp.CreditNotePreviewParamsLine.__annotations__),
}


def _route_of(method: str, path: str) -> tuple[str, str]:
    """("POST", "invoices/:id/finalize") for POST /v1/invoices/in_1/finalize."""
    segments = path.strip("/").split("/")[1:]
    if len(segments) >= 2 and segments[1] not in ("search", "preview"):
        segments[1] = ":id"
    return method, "/".join(segments)


class StripeEmulator:
    """The emulator, serving on `host`:`port` (0: any free port; `base` is its address) in a
    daemon thread from construction until `close`. Everything is kept in memory."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}  # invoice items, pending or on an invoice
        self.credit_notes: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []  # refunds credit notes made: credit_note, amount
        self.deleted: list[dict[str, Any]] = []  # deleted drafts, for the tests to see
        self.sent: list[str] = []  # invoice ids, once per send
        # key -> (request fingerprint, status, answer, when): replayed for 24 hours
        self.idempotent: dict[str, tuple[str, int, bytes, float]] = {}  # float-ok: seconds
        self._in_flight: set[str] = set()  # keys of requests held in progress
        self.clock: Callable[[], float] = time.time  # float-ok: seconds; tests move it
        self.save_500_for: str | None = None  # the next POST whose key starts so: a saved 500
        self.done_500_for: str | None = None  # the same, but after doing what was asked
        self.faults: list[str] = []  # "500" | "429" | "409" | "400" | "drop", one per request
        self.total_skew = 0  # added to drafts' totals, to provoke a mismatch
        self.due_skew = 0  # added to drafts' amount due only
        self.credit_note_skew = 0  # added to credit notes' totals (previews and made)
        self.down_after: int | None = None  # from this many requests on, drop every one
        self.requests: list[tuple[str, str]] = []
        self.versions: set[str | None] = set()  # the Stripe-Version headers received
        self.hang_on: str | None = None  # a path fragment whose requests wait for `release`
        self.hung = threading.Event()
        self.held = 0  # how many requests have waited (or wait) for `release`
        self.release = threading.Event()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        emulator = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                emulator._handle(self, "GET")

            def do_POST(self) -> None:
                emulator._handle(self, "POST")

            def do_DELETE(self) -> None:
                emulator._handle(self, "DELETE")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.base = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- plumbing ------------------------------------------------------------------------

    def _holds(self, path: str) -> bool:
        """Whether a request to `path` waits for `release`: `hang_on` is a path fragment, or
        with a trailing `$` the path's exact end."""
        if not self.hang_on or self.release.is_set():
            return False
        if self.hang_on.endswith("$"):
            return path.endswith(self.hang_on[:-1])
        return self.hang_on in path

    def _handle(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        params = dict(parse_qsl(body.decode() if method == "POST" else parts.query))
        key = handler.headers.get("Idempotency-Key") if method == "POST" else None
        held = self._holds(parts.path)
        with self._lock:
            if key is not None and key in self._in_flight:
                # Another request with this key is still in progress (held): 409, nothing saved.
                self.requests.append((method, parts.path))
                self._send(handler, 409, _key_in_use())
                return
            mine = key if key is not None and held else None
            if mine is not None:
                self._in_flight.add(mine)  # NOTE: only a held request is "in progress"
        try:
            self._answer(handler, method, parts.path, params, key)
        finally:
            if mine is not None:
                with self._lock:
                    self._in_flight.discard(mine)

    def _answer(
        self,
        handler: http.server.BaseHTTPRequestHandler,
        method: str,
        path: str,
        params: dict[str, str],
        key: str | None,
    ) -> None:
        if self._holds(path):
            with self._lock:
                self.held += 1
            self.hung.set()  # the caller may be killed now; the request still completes
            self.release.wait(60)
        with self._lock:
            self.requests.append((method, path))
            self.versions.add(handler.headers.get("Stripe-Version"))
            fault = self.faults.pop(0) if self.faults else None
            if self.down_after is not None and len(self.requests) > self.down_after:
                fault = "drop"  # Stripe went away in the middle of the run
            if fault == "drop":
                handler.close_connection = True
                handler.connection.close()
                return
            if fault == "409":
                self._send(handler, 409, _key_in_use())
                return
            if fault in ("500", "429", "400"):
                kind = {
                    "500": "api_error",
                    "429": "rate_limit_error",
                    "400": "invalid_request_error",
                }
                self._send(handler, int(fault), _error(kind[fault], f"injected {fault}"))
                return
            unknown = self._unknown_parameter(method, path, params)
            if unknown is not None:  # validation fails before anything is saved for a key
                self._send(handler, 400, unknown)
                return
            now = self.clock()
            fingerprint = f"{path}?{sorted(params.items())}"
            if key is not None:
                saved = self.idempotent.get(key)
                if saved is not None and now - saved[3] >= KEY_LIFETIME:
                    del self.idempotent[key]  # Stripe forgets a key after 24 hours
                elif saved is not None:
                    first, saved_status, saved_answer, _at = saved
                    if first != fingerprint:
                        error = _error(
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        )
                        self._send(handler, 400, error)
                        return
                    self._send_raw(handler, saved_status, saved_answer)  # a saved 500 too
                    return
            if key is not None and self.save_500_for and key.startswith(self.save_500_for):
                self.save_500_for = None  # once: Stripe failed while executing, and says so
                status, answer = 500, _error("api_error", "injected 500, saved for the key")
            else:
                status, answer = self._route(method, path, params)
            if key is not None and self.done_500_for and key.startswith(self.done_500_for):
                self.done_500_for = None  # once: it was done, but the answer is a 500
                status, answer = 500, _error("api_error", "injected 500 after the work was done")
            raw = json.dumps(answer).encode()
            validation = status == 400 and "param" in answer.get("error", {})
            if key is not None and not validation:  # only what started executing is saved
                self.idempotent[key] = (fingerprint, status, raw, now)
            self._send_raw(handler, status, raw)

    def _unknown_parameter(
        self, method: str, path: str, params: dict[str, str]
    ) -> dict[str, Any] | None:
        allowed = ALLOWED.get(_route_of(method, path))
        if allowed is None:
            return None  # an unknown URL: the router answers it
        for name in params:
            top = name.split("[", 1)[0]
            if top not in allowed:
                return _error(
                    "invalid_request_error", f"Received unknown parameter: {top}", param=top
                )
        return None

    def _send(self, handler: Any, status: int, answer: dict[str, Any]) -> None:
        self._send_raw(handler, status, json.dumps(answer).encode())

    def _send_raw(self, handler: Any, status: int, raw: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    # --- the API ---------------------------------------------------------------------------

    def _route(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        segments = path.strip("/").split("/")[1:]  # after v1
        if segments and segments[0] == "customers":
            return self._customers(method, segments[1:], params)
        if segments and segments[0] == "invoices":
            return self._invoices(method, segments[1:], params)
        if segments == ["invoiceitems"]:
            return self._invoice_items(method, params)
        if segments and segments[0] == "credit_notes":
            return self._credit_notes(method, segments[1:], params)
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method} {path})")

    def _customers(
        self, method: str, rest: list[str], params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if rest == [] and method == "POST":
            customer: dict[str, Any] = {
                "id": self._new_id("cus"),
                "object": "customer",
                "name": params.get("name"),
                "email": params.get("email"),
                "balance": int(params.get("balance", "0")),
                "metadata": _metadata(params),
            }
            self.customers[customer["id"]] = customer
            return 200, customer
        if rest == ["search"] and method == "GET":
            # Stripe's search syntax, the one form used: metadata['key']:'value'
            match = re.fullmatch(r"metadata\['([^']+)'\]:'([^']*)'", params.get("query", ""))
            if match is None:
                return 400, _error("invalid_request_error", "unsupported search query")
            key, value = match.groups()
            found = [c for c in self.customers.values() if c["metadata"].get(key) == value]
            url = "/v1/customers/search"
            return 200, {"object": "search_result", "data": found, "has_more": False, "url": url}
        if len(rest) == 1 and method == "GET":
            known = self.customers.get(rest[0])
            if known is None:
                return 404, _error(
                    "invalid_request_error", f"No such customer: '{rest[0]}'", "resource_missing"
                )
            return 200, known
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method})")

    def _create_invoice(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if params.get("customer") not in self.customers:
            return 400, _error("invalid_request_error", "No such customer", "resource_missing")
        refused = _refused_currency(params)
        if refused is not None:
            return 400, refused
        method = params.get("collection_method", "charge_automatically")
        if method not in ("charge_automatically", "send_invoice"):
            return 400, _error(
                "invalid_request_error",
                f"Invalid collection_method: {method}",
                param="collection_method",
            )
        due = params.get("days_until_due") or params.get("due_date")
        if method == "send_invoice" and due is None:
            return 400, _error(
                "invalid_request_error",
                "Invoices with collection_method=send_invoice need days_until_due or due_date",
                param="days_until_due",
            )
        if method == "charge_automatically" and due is not None:
            return 400, _error(
                "invalid_request_error",
                "days_until_due and due_date are valid only with collection_method=send_invoice",
                param="days_until_due",
            )
        invoice: dict[str, Any] = {
            "id": self._new_id("in"),
            "object": "invoice",
            "customer": params["customer"],
            "currency": params.get("currency", "usd"),
            "collection_method": method,
            "days_until_due": None if "days_until_due" not in params else int(due or 0),
            "auto_advance": params.get("auto_advance", "true") == "true",
            "status": "draft",
            "total": 0,
            "amount_due": 0,
            "amount_paid": 0,
            "amount_remaining": 0,
            "starting_balance": 0,
            "amount_paid_off_stripe": 0,
            "pre_payment_credit_notes_amount": 0,
            "post_payment_credit_notes_amount": 0,
            "metadata": _metadata(params),
            "lines": [],
        }
        self.invoices[invoice["id"]] = invoice
        self._retotal(invoice)
        return 200, _public(invoice)

    def _invoices(
        self, method: str, rest: list[str], params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if rest == [] and method == "POST":
            return self._create_invoice(params)
        if rest == [] and method == "GET":
            found = [
                _public(i)
                for i in self.invoices.values()
                if "customer" not in params or i["customer"] == params["customer"]
            ]
            return 200, {"object": "list", "data": found, "has_more": False, "url": "/v1/invoices"}
        invoice = self.invoices.get(rest[0]) if rest else None
        if invoice is None:
            return 404, _error("invalid_request_error", "No such invoice", "resource_missing")
        action = rest[1] if len(rest) > 1 else None
        if action is None and method == "GET":
            return 200, _public(invoice)
        if action is None and method == "DELETE":
            if invoice["status"] != "draft":
                return 400, _error(
                    "invalid_request_error",
                    "You can only delete draft invoices",
                    "invoice_not_editable",
                )
            del self.invoices[invoice["id"]]
            for line in invoice["lines"]:
                self.items.pop(line["invoice_item"], None)
            self.deleted.append(invoice)
            return 200, {"id": invoice["id"], "object": "invoice", "deleted": True}
        if action == "lines" and method == "GET":
            url = f"/v1/invoices/{invoice['id']}/lines"
            return 200, {"object": "list", "data": invoice["lines"], "has_more": False, "url": url}
        if action == "finalize" and method == "POST":
            if invoice["status"] != "draft":
                return 400, _error(
                    "invalid_request_error",
                    "This invoice is already finalized",
                    "invoice_not_editable",
                )
            if "auto_advance" in params:
                invoice["auto_advance"] = params["auto_advance"] == "true"
            invoice["status"] = "open"
            self._retotal(invoice)
            customer = self.customers[invoice["customer"]]
            # The customer's balance (negative: credit) is applied when the invoice finalizes.
            invoice["starting_balance"] = customer["balance"]
            applied = max(customer["balance"], -invoice["amount_due"])
            invoice["amount_due"] += applied
            customer["balance"] -= applied
            invoice["amount_remaining"] = invoice["amount_due"]
            return 200, _public(invoice)
        if action == "send" and method == "POST":
            if invoice["status"] in ("draft", "void") or (
                invoice["collection_method"] != "send_invoice"
            ):
                return 400, _error(
                    "invalid_request_error",
                    "Only finalized invoices with collection_method=send_invoice can be sent",
                    "invoice_not_open",
                )
            self.sent.append(invoice["id"])
            return 200, _public(invoice)
        if action == "pay" and method == "POST":
            if invoice["status"] != "open":
                return 400, _error(
                    "invalid_request_error", "You can only pay an open invoice", "invoice_not_open"
                )
            invoice["status"] = "paid"
            invoice["amount_paid"] = invoice["amount_due"]
            if params.get("paid_out_of_band") == "true":  # recorded as paid outside Stripe
                invoice["amount_paid_off_stripe"] = invoice["amount_due"]
            invoice["amount_remaining"] = 0
            return 200, _public(invoice)
        if action == "void" and method == "POST":
            if invoice["status"] != "open":
                return 400, _error(
                    "invalid_request_error",
                    "You can only void an open invoice",
                    "invoice_not_open",
                )
            invoice["status"] = "void"
            return 200, _public(invoice)
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method})")

    def _invoice_items(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if method == "GET":
            found = [
                i
                for i in self.items.values()
                if "invoice" not in params or i["invoice"] == params["invoice"]
            ]
            return 200, {
                "object": "list",
                "data": found,
                "has_more": False,
                "url": "/v1/invoiceitems",
            }
        if params.get("customer") not in self.customers:
            return 400, _error("invalid_request_error", "No such customer", "resource_missing")
        invoice = self.invoices.get(params.get("invoice", ""))
        if "invoice" in params and (invoice is None or invoice["status"] != "draft"):
            return 400, _error(
                "invalid_request_error", "Invoice is not a draft", "invoice_not_editable"
            )
        refused = _refused_currency(params) or _refused_amount(params)
        if refused is not None:
            return 400, refused
        if invoice is not None and invoice["currency"] != params.get("currency"):
            return 400, _error(
                "invalid_request_error",
                f"The currency of the invoice item ({params.get('currency')}) must match "
                f"the invoice's ({invoice['currency']})",
                param="currency",
            )
        item: dict[str, Any] = {
            "id": self._new_id("ii"),
            "object": "invoiceitem",
            "amount": int(params["amount"]),
            "currency": params.get("currency"),
            "customer": params["customer"],
            "description": params.get("description"),
            "invoice": None if invoice is None else invoice["id"],
            "metadata": _metadata(params),
        }
        self.items[item["id"]] = item  # without an invoice: a pending item, as Stripe keeps it
        if invoice is not None:
            invoice["lines"].append(
                {
                    "id": self._new_id("il"),
                    "object": "line_item",
                    "amount": item["amount"],
                    "currency": item["currency"],
                    "description": item["description"],
                    "invoice_item": item["id"],
                    "metadata": item["metadata"],
                }
            )
            self._retotal(invoice)
        return 200, item

    def _retotal(self, invoice: dict[str, Any]) -> None:
        """A draft's totals follow its items, as Stripe keeps them (`total_skew` and
        `due_skew` provoke a mismatch)."""
        invoice["total"] = sum(line["amount"] for line in invoice["lines"]) + self.total_skew
        invoice["amount_due"] = max(invoice["total"], 0) + self.due_skew
        invoice["amount_remaining"] = invoice["amount_due"]

    def _credit_notes(
        self, method: str, rest: list[str], params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if rest == [] and method == "GET":
            found = [
                n
                for n in self.credit_notes.values()
                if all(n[k] == params[k] for k in ("invoice", "customer") if k in params)
            ]
            url = "/v1/credit_notes"
            return 200, {"object": "list", "data": found, "has_more": False, "url": url}
        if (rest == [] and method == "POST") or (rest == ["preview"] and method == "GET"):
            status, note = self._credit_note(method, params)
            if status != 200 or method == "GET":
                return status, note
            self._issue(note, params)
            return 200, note
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method})")

    def _credit_note(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The credit note `params` describe, checked as Stripe checks it
        (https://docs.stripe.com/api/credit_notes/create): only for an open or paid invoice;
        on an open one it reduces what is still due (`pre_payment_amount`, at most the
        invoice's `amount_remaining`); on a paid one (`post_payment_amount`) it is split
        exactly between `refund_amount`, `credit_amount` and `out_of_band_amount`."""
        invoice = self.invoices.get(params.get("invoice", ""))
        if invoice is None:
            return 400, _error(
                "invalid_request_error", "No such invoice", "resource_missing", param="invoice"
            )
        if invoice["status"] not in ("open", "paid"):
            return 400, _error(
                "invalid_request_error",
                f"Credit notes can only be issued for open or paid invoices; this one is "
                f"{invoice['status']}",
                "invoice_not_open",
            )
        lines = _indexed(params, "lines")
        for index, line in enumerate(lines):
            unknown = sorted(set(line) - LINE_ALLOWED[method])
            if unknown:
                name = f"lines[{index}][{unknown[0]}]"
                return 400, _error(
                    "invalid_request_error", f"Received unknown parameter: {name}", param=name
                )
        amounts: dict[str, str] = {
            name: params[name]
            for name in ("amount", "refund_amount", "credit_amount", "out_of_band_amount")
            if name in params
        }
        for index, line in enumerate(lines):
            if line.get("type") != "custom_line_item":  # the only kind the emulator has
                return 400, _error(
                    "invalid_request_error",
                    "the emulator takes only lines of type custom_line_item",
                    param=f"lines[{index}][type]",
                )
            amounts[f"lines[{index}][unit_amount]"] = line.get("unit_amount", "")
            amounts[f"lines[{index}][quantity]"] = line.get("quantity", "1")
        for name, text in amounts.items():
            refused = _refused_amount(
                {"amount": text, "currency": invoice["currency"]},
                param=name,
                step=not name.endswith("[quantity]"),
            )
            if refused is not None:
                return 400, refused
        figures = {name: int(text) for name, text in amounts.items()}
        total = sum(
            int(line["unit_amount"]) * int(line.get("quantity", "1")) for line in lines
        ) or figures.get("amount", 0)
        if not lines and "amount" not in params:
            return 400, _error(
                "invalid_request_error",
                "One of amount, lines, or shipping_cost must be provided",
            )
        if lines and "amount" in params and figures["amount"] != total:
            return 400, _error(
                "invalid_request_error",
                f"amount ({figures['amount']}) must equal the sum of the lines ({total})",
                param="amount",
            )
        if total <= 0:
            return 400, _error("invalid_request_error", "A credit note must credit something")
        if invoice["status"] == "open" and total > invoice["amount_remaining"]:
            return 400, _error(
                "invalid_request_error",
                f"The credit note's total ({total}) may not exceed the invoice's "
                f"amount_remaining ({invoice['amount_remaining']})",
                param="lines" if lines else "amount",
            )
        pre = total if invoice["status"] == "open" else 0
        post = total - pre
        refund = figures.get("refund_amount", 0)
        credit = figures.get("credit_amount", 0)
        out_of_band = figures.get("out_of_band_amount", 0)
        if refund + credit + out_of_band != post:
            return 400, _error(
                "invalid_request_error",
                f"The sum of refund_amount ({refund}), credit_amount ({credit}) and "
                f"out_of_band_amount ({out_of_band}) must equal the credit note's "
                f"post-payment amount ({post})",
            )
        if refund > invoice["amount_paid"] - invoice["amount_paid_off_stripe"]:
            return 400, _error(
                "invalid_request_error",
                "refund_amount exceeds what was paid through Stripe (the rest was paid "
                "outside of Stripe: there is no charge to refund)",
                param="refund_amount",
            )
        if post + invoice["post_payment_credit_notes_amount"] > invoice["amount_paid"]:
            return 400, _error(
                "invalid_request_error",
                "The credit notes of this invoice would exceed what was paid",
            )
        shown = [
            {
                "id": self._new_id("cnli"),
                "object": "credit_note_line_item",
                "type": "custom_line_item",
                "description": line.get("description"),
                "quantity": int(line.get("quantity", "1")),
                "unit_amount": int(line["unit_amount"]),
                "amount": int(line["unit_amount"]) * int(line.get("quantity", "1")),
            }
            for line in lines
        ]
        note = {
            "id": self._new_id("cn") if method == "POST" else "cn_preview",
            "object": "credit_note",
            "invoice": invoice["id"],
            "customer": invoice["customer"],
            "currency": invoice["currency"],
            "amount": total + self.credit_note_skew,
            "subtotal": total + self.credit_note_skew,
            "total": total + self.credit_note_skew,
            "pre_payment_amount": pre,
            "post_payment_amount": post,
            "out_of_band_amount": out_of_band or None,
            "type": "pre_payment" if pre and not post else "post_payment",
            "status": "issued",
            "memo": params.get("memo"),
            "metadata": _metadata(params),
            "lines": {"object": "list", "data": shown, "has_more": False, "url": ""},
        }
        return 200, note

    def _issue(self, note: dict[str, Any], params: dict[str, str]) -> None:
        """What a created note does to its invoice and customer."""
        invoice = self.invoices[note["invoice"]]
        invoice["amount_due"] -= note["pre_payment_amount"]
        invoice["amount_remaining"] -= note["pre_payment_amount"]
        invoice["pre_payment_credit_notes_amount"] += note["pre_payment_amount"]
        invoice["post_payment_credit_notes_amount"] += note["post_payment_amount"]
        credit = int(params.get("credit_amount", "0"))
        self.customers[invoice["customer"]]["balance"] -= credit  # negative: credit
        refund = int(params.get("refund_amount", "0"))
        if refund:
            self.refunds.append({"credit_note": note["id"], "amount": refund})
        self.credit_notes[note["id"]] = note

    # --- for tests ---------------------------------------------------------------------------

    def invoices_of(self, metadata_id: str) -> list[dict[str, Any]]:
        return [
            i
            for i in self.invoices.values()
            if i["metadata"].get("billing_invoice_id") == metadata_id
        ]


def _metadata(params: dict[str, str]) -> dict[str, str]:
    return {k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")}


def _public(invoice: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in invoice.items() if k != "lines"}
    url = f"/v1/invoices/{invoice['id']}/lines"
    shown["lines"] = {"object": "list", "data": invoice["lines"], "has_more": False, "url": url}
    return shown


def _refused_currency(params: dict[str, str]) -> dict[str, Any] | None:
    currency = params.get("currency", "usd")
    if currency in CURRENCIES:
        return None
    supported = ", ".join(sorted(CURRENCIES))
    return _error(
        "invalid_request_error",
        f"Invalid currency: {currency}. Stripe currently supports these currencies: {supported}",
        param="currency",
    )


def _refused_amount(
    params: dict[str, str], param: str = "amount", step: bool = True
) -> dict[str, Any] | None:
    """A 400 naming `param` when `params["amount"]` is not an integer or (with `step`) not
    a multiple of the currency's step."""
    text = params.get("amount", "")
    if not re.fullmatch(r"-?[0-9]+", text):
        return _error("invalid_request_error", f"Invalid integer: {text}", param=param)
    currency = params.get("currency", "usd")
    unit = AMOUNT_STEP.get(currency, 1) if step else 1
    if int(text) % unit:
        return _error(
            "invalid_request_error",
            f"Invalid amount: {currency} amounts must be a multiple of {unit} "
            "(https://docs.stripe.com/currencies)",
            param=param,
        )
    return None


def _indexed(params: dict[str, str], name: str) -> list[dict[str, str]]:
    """`lines[0][type]=...&lines[0][quantity]=...` as [{"type": ..., "quantity": ...}]."""
    found: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        match = re.fullmatch(rf"{name}\[(\d+)\]\[([^\]]+)\]", key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [found[index] for index in sorted(found)]


def _key_in_use() -> dict[str, Any]:
    return _error(
        "idempotency_error",
        "There is currently another in-progress request using this Idempotency-Key; "
        "try again later",
        "idempotency_key_in_use",
    )


def _error(
    kind: str, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message, "code": code}
    if param is not None:
        error["param"] = param
    return {"error": error}
