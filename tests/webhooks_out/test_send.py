"""Sending one webhook against real endpoints on 127.0.0.1 and a stub of the outside world's
DNS: one lookup, the connection to the checked address only (speaking as the URL's host),
refused addresses never connected to, no redirects, one deadline for the whole attempt, and
a customer's view that does not tell a closed port from a refused address or a timeout."""

import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from billing.webhooks_out import send as sending
from billing.webhooks_out.send import DELIVERED, Outcome, no_answer_reason, send
from tests.webhooks_out.endpoints import Endpoint, StubResolver, Trickle, closed_port

BODY = b'{"type":"usage.alert"}'
HEADERS = {"Content-Type": "application/json", "Billing-Signature": "t=1,v1=ab"}
PUBLIC_LOOKING = "93.184.216.34"


@pytest.fixture
def endpoint():
    made = Endpoint()
    yield made
    made.close()


@pytest.fixture
def connections(monkeypatch):
    """Every TCP connection the sender opens, refused without touching the network."""
    opened = []

    def refuse(address, timeout=None, source_address=None):
        opened.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return opened


def post(url, *, deadline=5, allow_private=True, resolve=None, **more):
    if resolve is not None:
        more["resolve"] = resolve
    return send(url, BODY, HEADERS, deadline=deadline, allow_private=allow_private, **more)


def test_a_2xx_answer_delivers_the_body_and_headers(endpoint):
    outcome = post(endpoint.url())
    assert outcome == Outcome(True, 200, "HTTP 200", DELIVERED)
    [request] = endpoint.requests
    assert (request.path, request.body) == ("/hooks/billing", BODY)
    assert request.headers["Billing-Signature"] == "t=1,v1=ab"


def test_the_host_is_resolved_once_and_the_checked_address_is_the_one_connected(endpoint):
    # The first answer passes (loopback, allowed in development); a second lookup would
    # rebind the name to cloud metadata. Only one lookup happens, and the request reaches
    # the endpoint at the checked address, still addressed to the URL's host.
    dns = StubResolver(["127.0.0.1"], ["169.254.169.254"])
    url = endpoint.url(host="hooks.example.com", path="/hooks/billing?x=1")
    assert post(url, resolve=dns).delivered
    assert dns.lookups == [("hooks.example.com", endpoint.port)]
    [request] = endpoint.requests
    assert request.headers["Host"] == f"hooks.example.com:{endpoint.port}"
    assert request.path == "/hooks/billing?x=1"


def test_in_production_the_connection_goes_to_the_checked_public_address(connections):
    dns = StubResolver([PUBLIC_LOOKING], ["127.0.0.1"])
    outcome = post("https://hooks.example.com/billing", allow_private=False, resolve=dns)
    assert dns.lookups == [("hooks.example.com", 443)]
    assert connections == [(PUBLIC_LOOKING, 443)]
    assert outcome.detail == f"connection refused by {PUBLIC_LOOKING}:443"


def test_a_name_that_resolves_to_a_refused_address_is_never_connected(endpoint):
    dns = StubResolver(["169.254.169.254"], ["127.0.0.1"])
    outcome = post(endpoint.url(host="hooks.example.com"), resolve=dns)
    assert outcome.detail == (
        "refused: 169.254.169.254 is a link-local address (cloud metadata lives here)"
    )
    assert (len(dns.lookups), endpoint.connections) == (1, 0)


def test_one_refused_address_among_several_refuses_them_all(connections):
    dns = StubResolver([PUBLIC_LOOKING, "10.0.0.5"])
    outcome = post("http://hooks.example.com/x", allow_private=False, resolve=dns)
    assert outcome.detail == "refused: 10.0.0.5 is a private address"
    assert connections == []


def test_loopback_is_refused_unless_private_addresses_are_allowed(endpoint):
    outcome = post(endpoint.url(), allow_private=False)
    assert (outcome.delivered, outcome.status) == (False, None)
    assert outcome.detail == "refused: 127.0.0.1 is a loopback address"
    assert endpoint.connections == 0


def test_an_address_literal_is_checked_without_a_lookup(connections):
    dns = StubResolver(["127.0.0.1"])
    outcome = post("http://[::ffff:169.254.169.254]/latest/meta-data", resolve=dns)
    assert "the IPv4 address 169.254.169.254" in outcome.detail
    assert (dns.lookups, connections) == ([], [])


def test_a_redirect_is_a_failure_and_is_not_followed():
    elsewhere = Endpoint()
    redirecting = Endpoint(status=302, headers={"Location": elsewhere.url()})
    try:
        outcome = post(redirecting.url())
    finally:
        redirecting.close()
        elsewhere.close()
    assert (outcome.delivered, outcome.status) == (False, 302)
    assert outcome.detail == f"HTTP 302: a redirect to {elsewhere.url()}, not followed"
    assert outcome.public_reason == (
        "your endpoint answered HTTP 302, a redirect: redirects are not followed"
    )
    assert elsewhere.connections == 0


def test_an_error_status_is_shown_to_the_customer_as_their_endpoint_answered_it():
    failing = Endpoint(status=500)
    try:
        outcome = post(failing.url())
    finally:
        failing.close()
    assert outcome == Outcome(False, 500, "HTTP 500", "your endpoint answered HTTP 500")


def test_a_trickling_answer_is_cut_off_at_the_deadline():
    # A byte every 0.5 s: no single read ever waits long, so only a deadline on the whole
    # attempt ends it, long before the endpoint would have finished its answer.
    trickle = Trickle(every=0.5)
    try:
        outcome = post(trickle.url, deadline=2)
        cut_at = trickle.sent
        finished = trickle.finished.is_set()
    finally:
        trickle.close()
    assert trickle.schedule >= 10 * 2  # the answer takes ten deadlines to go out
    assert (outcome.delivered, outcome.status) == (False, None)
    assert outcome.detail == f"timed out after 2 s waiting for 127.0.0.1:{trickle.port} to answer"
    assert not finished
    assert 1 <= cut_at < len(trickle.answer)  # bytes were flowing: it was cut mid-answer


def test_a_2xx_whose_body_trickles_delivers_without_waiting_for_the_body():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"
    trickle = Trickle(answer=head + b"x" * 40, at_once=len(head), every=0.5)
    try:
        outcome = post(trickle.url, deadline=2)
        finished = trickle.finished.is_set()
    finally:
        trickle.close()
    assert (outcome.delivered, outcome.status) == (True, 200)
    assert not finished


def test_a_lookup_that_hangs_is_cut_off_at_the_deadline():
    released = threading.Event()
    dns = StubResolver(released, ["127.0.0.1"])
    try:
        outcome = post("http://hooks.example.com/x", deadline=0.5, resolve=dns)
    finally:
        released.set()
    assert outcome.detail == "timed out after 0.5 s resolving hooks.example.com"


def test_the_customer_sees_one_sentence_whatever_kept_the_endpoint_from_answering():
    """A refused address, a name that does not resolve and a closed port read the same to
    the customer; only the detail (admins, logs) tells them apart."""
    failing = {
        "refused address": post("http://10.0.0.5/x", allow_private=False),
        "no such name": post(
            "http://nowhere.example/x", resolve=StubResolver(socket.gaierror(-2, "Name unknown"))
        ),
        "closed port": post(f"http://127.0.0.1:{closed_port()}/x"),
    }
    details = {why: outcome.detail for why, outcome in failing.items()}
    assert details["refused address"] == "refused: 10.0.0.5 is a private address"
    assert details["no such name"] == "cannot resolve nowhere.example: Name unknown"
    assert details["closed port"].startswith("connection refused by 127.0.0.1:")
    assert {outcome.public_reason for outcome in failing.values()} == {no_answer_reason(5)}
    assert {outcome.status for outcome in failing.values()} == {None}


def test_a_timeout_reads_like_a_closed_port_to_the_customer():
    held = Endpoint(hold=threading.Event())
    try:
        timed_out = post(held.url(), deadline=0.5)
    finally:
        held.close()
    closed = post(f"http://127.0.0.1:{closed_port()}/x", deadline=0.5)
    assert timed_out.detail.startswith("timed out after 0.5 s waiting for 127.0.0.1:")
    assert closed.detail.startswith("connection refused by")
    assert timed_out.public_reason == closed.public_reason == no_answer_reason(0.5)


def test_tls_names_the_urls_host_not_the_address(endpoint):
    class RecordingTLS:
        def __init__(self):
            self.names = []

        def wrap_socket(self, sock, server_hostname=None, **_):
            self.names.append(server_hostname)
            raise ssl.SSLError("stopped by the test")

    tls = RecordingTLS()
    dns = StubResolver(["127.0.0.1"])
    url = f"https://hooks.example.com:{endpoint.port}/x"
    outcome = post(url, resolve=dns, tls=tls)
    assert tls.names == ["hooks.example.com"]
    assert outcome.detail.startswith(f"TLS with 127.0.0.1:{endpoint.port} failed")


def test_the_system_trust_store_is_the_default():
    context = sending._system_tls()
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for hooks.example.com (made with the openssl command)."""
    openssl = shutil.which("openssl")
    # a required part, like PostgreSQL and Chromium: without it HTTPS goes untested
    assert openssl is not None, (
        "the openssl command makes the test certificate: apt-get install openssl"
    )
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "2", "-subj", "/CN=hooks.example.com"),
            *("-addext", "subjectAltName=DNS:hooks.example.com"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


@pytest.fixture
def https_endpoint(certificate):
    key, cert = certificate
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    names = []
    server_side.sni_callback = lambda sock, name, context: names.append(name)
    made = Endpoint(tls=server_side)
    made.sni = names
    yield made
    made.close()


def test_https_goes_to_the_checked_address_verified_as_the_urls_host(certificate, https_endpoint):
    trusting = ssl.create_default_context(cafile=certificate[1])
    dns = StubResolver(["127.0.0.1"])
    outcome = post(https_endpoint.url(host="hooks.example.com"), resolve=dns, tls=trusting)
    assert outcome.delivered
    assert https_endpoint.sni == ["hooks.example.com"]
    [request] = https_endpoint.requests
    assert request.headers["Host"] == f"hooks.example.com:{https_endpoint.port}"


def test_https_refuses_a_certificate_for_another_name(certificate, https_endpoint):
    trusting = ssl.create_default_context(cafile=certificate[1])
    dns = StubResolver(["127.0.0.1"])
    outcome = post(https_endpoint.url(host="other.example.com"), resolve=dns, tls=trusting)
    assert (outcome.delivered, outcome.status) == (False, None)
    assert "is not valid for other.example.com" in outcome.detail
    assert https_endpoint.requests == []
