"""V4: what a deployment opens with ``allowed_networks`` never includes a metadata service or a
link-local address, however broad the networks it lists and however the address is spelt.

``allowed_networks`` exists to reach private or loopback servers (``DP_HTTP_ALLOWED_NETWORKS``).
Deployments list broad ranges: a pod network in 100.64.0.0/10 (EKS custom networking) holds
Alibaba's metadata address 100.100.100.200, a ULA range fd00::/8 holds AWS's IPv6 one
fd00:ec2::254, and ``0.0.0.0/0`` holds them all. A real connection is made in the last test:
the request is refused before any socket opens (the resolver is asked, nothing is sent).
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dp_resources.http import METADATA_ADDRESSES, HttpResource, RequestRefused
from tests.fuzzing import fuzz_settings

LINK_LOCAL_V4 = ipaddress.ip_network("169.254.0.0/16")
LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")


def _spellings(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
    """The address as text, and an IPv4 one in the IPv6 forms that reach it (mapped, NAT64, 6to4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        return [str(ip)]
    v4 = int(ip)
    return [
        str(ip),
        f"::ffff:{ip}",
        str(ipaddress.IPv6Address((0x64FF9B << 96) | v4)),
        str(ipaddress.IPv6Address((0x2002 << 112) | (v4 << 80))),
    ]


closed_addresses = st.one_of(
    st.sampled_from(sorted(METADATA_ADDRESSES, key=str)),
    st.integers(0, LINK_LOCAL_V4.num_addresses - 1).map(lambda i: LINK_LOCAL_V4[i]),
    st.integers(0, 2**118 - 1).map(lambda i: LINK_LOCAL_V6[i]),
).flatmap(lambda ip: st.sampled_from(_spellings(ip)))


def _covering(address: str, prefix: int) -> str:
    """A network of ``prefix`` bits (cut to the address's width) that holds ``address``."""
    ip = ipaddress.ip_address(address)
    return str(ipaddress.ip_network(f"{ip}/{min(prefix, ip.max_prefixlen)}", strict=False))


@fuzz_settings(300)
@given(address=closed_addresses, prefix=st.integers(0, 128), others=st.lists(st.ip_addresses(), max_size=3))
@example(address="100.100.100.200", prefix=10, others=[])
@example(address="fd00:ec2::254", prefix=8, others=[])
@example(address="169.254.169.254", prefix=0, others=[])
@example(address="::ffff:169.254.169.254", prefix=0, others=[])
def test_V4_no_allowed_network_opens_a_metadata_or_link_local_address(address, prefix, others):
    """Whatever networks are allowed (one that holds the address among them), a metadata or
    link-local address is refused, named as such; so is it with ``allow_private`` on too."""
    networks = [_covering(address, prefix), *(_covering(str(o), 128) for o in others)]
    for http in (HttpResource(allowed_networks=networks), HttpResource(allowed_networks=networks, allow_private=True)):
        reason = http.refusal(address)
        assert reason in ("a cloud metadata address", "a link-local address"), (address, networks, reason)


def test_V4_allowed_networks_still_open_what_they_are_for():
    """The control: a listed private, loopback or CGNAT network is reachable; one not listed is not."""
    http = HttpResource(allowed_networks=["10.0.0.0/8", "100.64.0.0/10", "fd00::/8", "127.0.0.1/32"])
    for address in ("10.1.2.3", "100.64.0.1", "fd12::1", "127.0.0.1", "::ffff:10.1.2.3"):
        assert http.refusal(address) is None, address
    assert http.refusal("192.168.1.1") is not None


def test_V4_a_request_to_metadata_under_a_catch_all_network_is_refused_before_connecting():
    """Through ``request``: ``allowed_networks=['0.0.0.0/0', '::/0']`` does not reach the metadata
    service in any spelling."""
    http = HttpResource(allowed_networks=["0.0.0.0/0", "::/0"], timeout_seconds=2)
    for url in ("http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://[fd00:ec2::254]/"):
        with pytest.raises(RequestRefused, match=r"metadata|link-local"):
            http.request("GET", url)
