"""Where a webhook may connect, one address at a time: a table of the forms an address can
take (IPv4, IPv6, IPv4 carried inside IPv6), with the development setting off and on."""

import ipaddress

import pytest

from billing.webhooks_out.address import address_problem

# Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted in the last 32 bits).
TEREDO_LOOPBACK = "2001:0:4136:e378::80ff:fffe"
ALLOWED = None
PRIVATE = "private"  # refused, unless allow_private
# (address, what is said when it is refused or None, refused with allow_private too)
TABLE = [
    ("93.184.216.34", ALLOWED, False),
    ("8.8.8.8", ALLOWED, False),
    ("127.0.0.1", "a loopback address", False),
    ("127.9.9.9", "a loopback address", False),
    ("10.0.0.5", "a private address", False),
    ("172.16.0.1", "a private address", False),
    ("172.31.255.254", "a private address", False),
    ("192.168.1.1", "a private address", False),
    ("100.64.0.1", "a shared (carrier-grade NAT) address", False),
    ("100.100.100.200", "a cloud metadata address", True),
    ("192.0.0.192", "an IETF protocol address", True),
    ("168.63.129.16", "a cloud platform address", True),
    ("169.254.169.254", "a link-local address", True),
    ("0.0.0.0", "'this network'", True),
    ("0.1.2.3", "'this network'", True),
    ("224.0.0.1", "a multicast address", True),
    ("255.255.255.255", "reserved or broadcast", True),
    ("192.0.2.10", "not a global address", True),  # documentation
    ("198.18.0.1", "not a global address", True),  # benchmarking
    ("2606:4700:4700::1111", ALLOWED, False),
    ("::1", "a loopback address", False),
    ("::", "the unspecified address", True),
    ("fe80::1", "a link-local address", True),
    ("fe80::1%eth0", "a link-local address", True),
    ("fec0::1", "a site-local address", True),
    ("fc00::1", "a unique local (private) address", False),
    ("fd12:3456::1", "a unique local (private) address", False),
    ("fd00:ec2::254", "a cloud metadata address", True),
    ("ff02::1", "a multicast address", True),
    ("2001:db8::", "not a global address", True),  # documentation
    ("::ffff:8.8.8.8", ALLOWED, False),
    ("::ffff:127.0.0.1", "the IPv4 address 127.0.0.1, a loopback address", False),
    ("::ffff:10.0.0.5", "the IPv4 address 10.0.0.5, a private address", False),
    ("::ffff:169.254.169.254", "the IPv4 address 169.254.169.254, a link-local", True),
    ("::127.0.0.1", "an IPv4-compatible address", True),
    ("2002:808:808::1", ALLOWED, False),  # 6to4 of 8.8.8.8
    ("2002:7f00:1::", "a 6to4 form of 127.0.0.1, a loopback address", True),
    ("2002:a9fe:a9fe::", "a 6to4 form of 169.254.169.254", True),
    ("2002:a00:5::", "a 6to4 form of 10.0.0.5", True),
    ("64:ff9b::808:808", ALLOWED, False),  # NAT64 of 8.8.8.8 (DNS64 on IPv6-only networks)
    ("64:ff9b::7f00:1", "a NAT64 form of 127.0.0.1", True),
    ("64:ff9b::a9fe:a9fe", "a NAT64 form of 169.254.169.254", True),
    ("64:ff9b:1::a00:5", "a NAT64 form of 10.0.0.5", True),
    (TEREDO_LOOPBACK, "a Teredo form of 127.0.0.1", True),
    ("2001:0:808:808::f7f7:f7f7", "not a global address", True),  # Teredo, global ends
    ("100::1", "a reserved address", True),  # discard-only
    ("not an address", "is not an IP address", True),
]


@pytest.mark.parametrize(("address", "said", "always"), TABLE, ids=[row[0] for row in TABLE])
def test_an_address_is_allowed_or_refused_saying_what_it_is(address, said, always):
    refused = address_problem(address, allow_private=False)
    in_development = address_problem(address, allow_private=True)
    if said is ALLOWED:
        assert (refused, in_development) == (None, None)
        return
    assert refused is not None
    assert said in refused
    if always:
        assert in_development == refused  # link-local, metadata and the rest: never
    else:
        assert in_development is None  # loopback, private and shared: allowed in development


def test_the_sentence_names_the_address():
    assert address_problem("10.0.0.5") == "10.0.0.5 is a private address"
    assert address_problem(ipaddress.ip_address("169.254.169.254")) == (
        "169.254.169.254 is a link-local address (cloud metadata lives here)"
    )


def test_the_table_covers_every_form_the_issue_names():
    named = {
        "127.0.0.1", "10.0.0.5", "172.16.0.1", "192.168.1.1", "100.64.0.1", "100.100.100.200",
        "192.0.0.192", "169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1",
        "fe80::1", "fc00::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
        "2002:7f00:1::", "2002:a9fe:a9fe::", "64:ff9b::7f00:1", TEREDO_LOOPBACK, "2001:db8::",
        "2606:4700:4700::1111",
    }  # fmt: skip
    assert named <= {row[0] for row in TABLE}
