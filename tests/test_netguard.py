"""netguard: article URLs may not reach into our own network.

Refused literal addresses are only resolved (no connection is ever attempted);
the only traffic in this file goes to the FeedServer on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest

from monitor.errors import FetchError, SettingsError
from monitor.netguard import AllowList, blocked_reason, check_public_url, guard_transport
from tests.support.feed_server import FeedServer


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        srv.add_file("/page", b"<html><body><p>hello</p></body></html>",
                     content_type="text/html")
        yield srv


async def refused(url: str, allow: list[str] | None = None) -> FetchError:
    with pytest.raises(FetchError) as info:
        await check_public_url(url, allow=allow or ())
    return info.value


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.8.9.10:8080/admin",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/router",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://[fc00::1]/",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[ff02::1]/",
        "http://[64:ff9b::a9fe:a9fe]/",   # NAT64 spelling of 169.254.169.254
        "http://[2002:7f00:1::]/",        # 6to4 spelling of 127.0.0.1
        "http://2130706433/",             # 127.0.0.1 as one decimal number
        "http://0x7f.1/",                 # 127.0.0.1 in hex shorthand
        "https://127.1/",
    ],
)
async def test_internal_addresses_are_refused(url: str) -> None:
    error = await refused(url)
    assert error.kind == "blocked_address"
    assert "refused" in str(error)


@pytest.mark.parametrize(
    "url", ["ftp://example.org/file", "file:///etc/passwd", "gopher://example.org/", "data:,x"]
)
async def test_only_http_and_https_are_allowed(url: str) -> None:
    error = await refused(url)
    assert error.kind == "blocked_address"
    assert "scheme" in str(error)


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    error = await refused("http://localhost:8080/")
    assert error.kind == "blocked_address"
    assert "127.0.0.1" in str(error) or "::1" in str(error)


async def test_hostname_case_does_not_help() -> None:
    assert (await refused("http://LocalHost/")).kind == "blocked_address"


@pytest.mark.parametrize("url", ["http://8.8.8.8/", "https://1.1.1.1:8443/x",
                                 "https://[2606:4700:4700::1111]/"])
async def test_public_literal_addresses_pass(url: str) -> None:
    await check_public_url(url)  # literals need no resolver, so no network either


@pytest.mark.parametrize(
    ("allow", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:9/"),
        (["127.0.0.0/8"], "http://127.5.5.5/"),
        (["localhost"], "http://localhost:9/"),
        (["10.0.0.0/8"], "http://10.1.2.3/"),
        (["::1"], "http://[::1]/"),
        (["127.0.0.1"], "http://[::ffff:127.0.0.1]/"),  # same address, mapped spelling
        (["169.254.169.254"], "http://169.254.169.254/"),  # only an exact entry allows it
    ],
)
async def test_the_allow_list_lets_named_hosts_and_networks_through(
    allow: list[str], url: str
) -> None:
    await check_public_url(url, allow=allow)


async def test_allowing_a_network_does_not_allow_the_metadata_address_inside_it() -> None:
    await check_public_url("http://169.254.7.7/", allow=["169.254.0.0/16"])
    error = await refused("http://169.254.169.254/", allow=["169.254.0.0/16"])
    assert "metadata" in str(error)


async def test_allowing_one_address_does_not_allow_its_neighbours() -> None:
    assert (await refused("http://127.0.0.2/", ["127.0.0.1"])).kind == "blocked_address"
    assert (await refused("http://10.0.0.1/", ["127.0.0.1"])).kind == "blocked_address"


@pytest.mark.parametrize("entry", ["", "  ", "http://example.org", "10.0.0.0/33", "a b",
                                   "exa mple.org", "example.org/path"])
def test_bad_allow_entries_are_settings_errors(entry: str) -> None:
    with pytest.raises(SettingsError, match="allow_hosts"):
        AllowList.parse([entry])


def test_allow_list_parsing_normalises_entries() -> None:
    allowed = AllowList.parse(["Intranet.Example.", "[::1]", "10.0.0.0/8"])
    assert allowed.allows_host("intranet.example")
    assert allowed.allows_address(ipaddress.ip_address("::1"))
    assert allowed.allows_address(ipaddress.ip_address("10.9.9.9"))
    assert not allowed.allows_address(ipaddress.ip_address("11.0.0.1"))


async def test_unparseable_url_is_invalid_not_a_crash() -> None:
    assert (await refused("http://[::1/")).kind == "invalid_url"
    assert (await refused("http:///no-host")).kind == "invalid_url"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.1", "loopback"),
        ("10.1.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("100.100.100.200", "metadata"),
        ("100.64.1.1", "not globally routable"),
        ("198.18.0.1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("fd00:ec2::254", "metadata"),
        ("ff05::2", "multicast"),
        ("::", "unspecified"),
    ],
)
def test_blocked_reason_names_the_rule(address: str, expected: str | None) -> None:
    reason = blocked_reason(ipaddress.ip_address(address))
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


# -- the connect-time guard (DNS rebinding) ----------------------------------------------


async def test_guarded_transport_refuses_at_connect_time_without_a_precheck(
    server: FeedServer,
) -> None:
    """Even a caller that skips check_public_url cannot reach loopback through the client."""
    async with httpx.AsyncClient(transport=guard_transport()) as client:
        for url in (server.url("/page"), server.url("/page").replace("127.0.0.1", "localhost")):
            with pytest.raises(FetchError) as info:
                await client.get(url)
            assert info.value.kind == "blocked_address"
    assert server.hits("/page") == 0


async def test_guarded_transport_connects_to_allowed_addresses(server: FeedServer) -> None:
    async with httpx.AsyncClient(transport=guard_transport(allow=["127.0.0.1"])) as client:
        response = await client.get(server.url("/page"))
        by_name = await client.get(server.url("/page").replace("127.0.0.1", "localhost"))
    assert response.status_code == 200 and b"hello" in response.content
    assert by_name.status_code == 200
    assert server.hits("/page") == 2
    assert server.requests[-1].headers["host"].startswith("localhost:")  # name kept in Host

