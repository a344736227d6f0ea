"""Where a webhook may connect: the rule for one IP address (docs/spend-caps.md, "Where a
webhook may point").

An address must be global (the standard library's `ipaddress` decides), and is checked
against explicit denies the standard library does not cover: cloud metadata and platform
addresses, shared address space, the IETF protocol block, multicast, reserved ranges.
Addresses that carry an IPv4 address inside an IPv6 one are judged by what they carry: an
IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address; a 6to4, Teredo or NAT64 form
must carry a global IPv4 address.

With `allow_private` (BILLING_WEBHOOK_ALLOW_PRIVATE, development and tests) loopback,
private (RFC 1918, unique local) and shared (100.64.0.0/10) addresses are allowed; link-local,
metadata and the other denies never are.
"""

from __future__ import annotations

import ipaddress
from enum import Enum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Kind(Enum):
    PRIVATE = "private"  # allowed with allow_private
    NEVER = "never"


_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Checked in order: the first network that holds the address names it.
_IPV4_RULES: tuple[tuple[_V4, _Kind, str], ...] = (
    (_V4("0.0.0.0/8"), _Kind.NEVER, "a 'this network' address (0.0.0.0 reaches this host)"),
    (_V4("127.0.0.0/8"), _Kind.PRIVATE, "a loopback address"),
    (_V4("169.254.0.0/16"), _Kind.NEVER, "a link-local address (cloud metadata lives here)"),
    (_V4("100.100.100.200/32"), _Kind.NEVER, "a cloud metadata address"),
    (_V4("100.64.0.0/10"), _Kind.PRIVATE, "a shared (carrier-grade NAT) address"),
    (
        _V4("192.0.0.0/24"),
        _Kind.NEVER,
        "an IETF protocol address (cloud metadata uses 192.0.0.192)",
    ),
    (_V4("168.63.129.16/32"), _Kind.NEVER, "a cloud platform address"),
    (_V4("10.0.0.0/8"), _Kind.PRIVATE, "a private address"),
    (_V4("172.16.0.0/12"), _Kind.PRIVATE, "a private address"),
    (_V4("192.168.0.0/16"), _Kind.PRIVATE, "a private address"),
    (_V4("224.0.0.0/4"), _Kind.NEVER, "a multicast address"),
    (_V4("240.0.0.0/4"), _Kind.NEVER, "a reserved or broadcast address"),
)
_IPV6_RULES: tuple[tuple[_V6, _Kind, str], ...] = (
    (_V6("::/128"), _Kind.NEVER, "the unspecified address"),
    (_V6("::1/128"), _Kind.PRIVATE, "a loopback address"),
    (_V6("::/96"), _Kind.NEVER, "an IPv4-compatible address (deprecated)"),
    (_V6("fe80::/10"), _Kind.NEVER, "a link-local address"),
    (_V6("fec0::/10"), _Kind.NEVER, "a site-local address (deprecated)"),
    (_V6("fd00:ec2::/32"), _Kind.NEVER, "a cloud metadata address"),
    (_V6("fc00::/7"), _Kind.PRIVATE, "a unique local (private) address"),
    (_V6("ff00::/8"), _Kind.NEVER, "a multicast address"),
)
# NAT64: the IPv4 address is the last 32 bits (RFC 6052, and RFC 8215's local-use prefix).
# On an IPv6-only network DNS64 answers with these for IPv4-only hosts: allowed when the
# IPv4 address they carry is.
_NAT64 = (_V6("64:ff9b::/96"), _V6("64:ff9b:1::/48"))


def parse(address: str | IPAddress) -> IPAddress:
    """An address from its text (raises ValueError when it is not one)."""
    if isinstance(address, str):
        return ipaddress.ip_address(address)
    return address


def address_problem(address: str | IPAddress, *, allow_private: bool = False) -> str | None:
    """Why a webhook must not connect to `address`, as a sentence about it ("10.0.0.5 is a
    private address"); None when it may."""
    try:
        ip = parse(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    found = _classify(ip)
    if found is None:
        return None
    kind, what = found
    if kind is _Kind.PRIVATE and allow_private:
        return None
    return f"{ip} is {what}"


def _classify(ip: IPAddress) -> tuple[_Kind, str] | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return _classify_v4(ip)
    mapped = ip.ipv4_mapped
    if mapped is not None:  # how a dual-stack socket writes an IPv4 address: judged as one
        inner = _classify_v4(mapped)
        return None if inner is None else (inner[0], f"the IPv4 address {mapped}, {inner[1]}")
    carried = _carried_v4(ip)
    for form, v4 in carried:
        inner = _classify_v4(v4)
        if inner is not None:  # a tunnel to a non-global address: never, even in development
            return _Kind.NEVER, f"a {form} form of {v4}, {inner[1]}"
    if any(form == "NAT64" for form, _ in carried):
        return None  # NAT64 of a global IPv4 address (the standard library calls it reserved)
    for network, kind, what in _IPV6_RULES:
        if ip in network:
            return kind, what
    if ip.is_reserved:
        return _Kind.NEVER, "a reserved address"
    if not ip.is_global:
        return _Kind.NEVER, "not a global address"
    return None


def _classify_v4(ip: ipaddress.IPv4Address) -> tuple[_Kind, str] | None:
    for network, kind, what in _IPV4_RULES:
        if ip in network:
            return kind, what
    if not ip.is_global:  # documentation, benchmarking and the other special ranges
        return _Kind.NEVER, "not a global address"
    return None


def _carried_v4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses a 6to4, Teredo or NAT64 address carries, with the form's name."""
    carried: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip.sixtofour is not None:
        carried.append(("6to4", ip.sixtofour))
    if ip.teredo is not None:
        server, client = ip.teredo
        carried += [("Teredo", client), ("Teredo", server)]
    if any(ip in prefix for prefix in _NAT64):
        carried.append(("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    return carried
