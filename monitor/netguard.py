"""Keep fetches of untrusted URLs out of our own network (server-side request forgery).

Article links come from feeds, and anyone who controls a feed (or a DNS name in
it) can point a link at ``http://169.254.169.254/`` (cloud credentials), at an
admin page on ``127.0.0.1`` or at a host inside the office network. The daemon
would fetch it with its own network position. So every URL is resolved first,
and refused if *any* of its addresses is not a public unicast address, unless
the operator allowed that host or network in config.

What is refused: loopback, private (RFC 1918, ULA), link-local, multicast,
reserved, unspecified, shared/CGNAT and every other not-globally-routable range,
the cloud metadata addresses, and IPv6 addresses that embed a refused IPv4
address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4, Teredo).
Checking the *resolved* addresses (not the spelling) also catches ``2130706433``,
``0x7f.1`` and names such as ``localhost`` or ``x.nip.io`` that resolve inward.

DNS rebinding: a name can resolve to a public address when checked and to
``127.0.0.1`` a moment later when the HTTP client connects. ``check_public_url``
alone cannot close that window. ``guard_transport`` closes it for httpx's own
transport: it resolves, checks and connects to the *checked* address inside one
network-backend call, while TLS SNI, certificate checks and the Host header keep
using the name. A client built that way is safe even if a caller forgets the
pre-check. The shared feed client (aiohttp transport) is not guarded this way;
fetching article pages through it leaves the window open (see monitor.fulltext,
which builds its own guarded client).

Feeds are the other way round: the configured feed URL is the operator's and is
trusted (internal feeds are normal), but each *redirect hop* is the remote
site's choice and goes through ``check_redirect_hop`` (the same rules, plus the
feed's own host:port and ``fetch.allow_internal_hosts``). The feed client
resolves names again when it connects, so there the rebinding window stays open.

Residual risks, accepted: ports are not restricted (a public host's port 25 is
reachable); the allow-list trusts allowed *names* whatever they resolve to; a
proxy from the environment would resolve names itself, which is why the guarded
client ignores the environment (``trust_env=False``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpcore
import httpx

from monitor.errors import FetchError, SettingsError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Metadata services answer with credentials; they are refused even when a
# broader allowed network covers them (only an exact allow-list entry lets one through).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_BLOCKED = "redirect_blocked"
"""FetchError kind of a feed redirect hop refused by ``check_redirect_hop``."""


@dataclass(frozen=True, slots=True)
class AllowList:
    """Hosts and networks the operator trusts despite the rules (e.g. an intranet mirror)."""

    hosts: frozenset[str] = frozenset()
    """Names allowed whatever they resolve to (lower case, no trailing dot)."""
    networks: tuple[IPNetwork, ...] = ()
    """Addresses allowed when a URL resolves into them (a bare IP is a /32 or /128)."""

    @classmethod
    def parse(cls, entries: Iterable[str], *, key: str = "fulltext.allow_hosts") -> AllowList:
        """Read config entries; raises SettingsError naming ``key`` and the bad entry."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]
            if not entry:
                raise SettingsError(f"{key}: empty entry")
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or ":" in entry or not _looks_like_hostname(entry):
                raise SettingsError(
                    f"{key}: {raw!r} is neither a host name, an IP address "
                    "nor a CIDR network (e.g. 'intranet.example', '10.1.2.3', '10.1.0.0/16')"
                )
            hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # one address, two spellings
        for network in self.networks:
            if address.version != network.version or address not in network:
                continue
            if address in METADATA_ADDRESSES and network.num_addresses != 1:
                continue
            return True
        return False


def _looks_like_hostname(entry: str) -> bool:
    labels = entry.split(".")
    return all(
        0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label)
        for label in labels
    )


def as_allow_list(allow: Sequence[str] | AllowList) -> AllowList:
    return allow if isinstance(allow, AllowList) else AllowList.parse(allow)


def blocked_reason(address: IPAddress) -> str | None:
    """Why a fetch to ``address`` must be refused, or None for a public unicast address."""
    if address in METADATA_ADDRESSES:
        return "cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"{inner} (embedded in {address})" if inner else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    for reason, hit in checks:
        if hit:
            return f"{reason} address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, where the network would route it there."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        server, client = address.teredo
        return client if blocked_reason(client) else server
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host spelled as an IP literal stands for (a URL writes a zone "%" as "%25")."""
    try:
        return ipaddress.ip_address(host.strip("[]").replace("%25", "%", 1))
    except ValueError:
        return None



async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in resolver order, without duplicates.

    A literal address is returned as is: no resolver call, no network.
    """
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        raise FetchError("connect", f"cannot resolve {host!r}: {exc.strerror or exc}") from exc
    except (UnicodeError, ValueError) as exc:  # e.g. a label over 63 characters
        raise FetchError("invalid_url", f"cannot resolve {host!r}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchError("connect", f"{host!r} resolves to no address")
    return addresses


async def resolve_public(
    host: str, port: int, *, allow: Sequence[str] | AllowList = ()
) -> list[IPAddress]:
    """Resolve ``host`` and return its addresses, refusing if any one of them is not public.

    All addresses must pass, not just one: a client may try any of them, and a
    name that mixes a public and an internal address is hostile anyway.
    """
    allowed = as_allow_list(allow)
    addresses = await resolve(host, port)
    if allowed.allows_host(host):
        return addresses
    for address in addresses:
        reason = blocked_reason(address)
        if reason is not None and not allowed.allows_address(address):
            shown = host if literal_address(host) is not None else f"{host} ({address})"
            raise FetchError("blocked_address", f"refused {shown}: {reason}")
    return addresses


async def check_public_url(url: str, *, allow: Sequence[str] | AllowList = ()) -> None:
    """Raise ``FetchError(kind="blocked_address")`` unless ``url`` is http(s) to public addresses.

    Call it for every URL before it is requested, including each redirect hop.
    The URL is parsed as httpx parses it, so the host checked is the host httpx
    would connect to (IDNA-encoded, brackets removed).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError("invalid_url", f"{exc}: {url[:200]}") from exc
    scheme = parsed.scheme.lower()
    if scheme not in _SCHEMES:
        raise FetchError(
            "blocked_address", f"refused scheme {scheme or '(none)'!r}: {url[:200]}"
        )
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise FetchError("invalid_url", f"no host in {url[:200]}")
    await resolve_public(host, parsed.port or _DEFAULT_PORTS[scheme], allow=allow)


# -- redirect hops of a feed -----------------------------------------------------------------

HopVerdict = Literal["public", "same_host", "allowed"]
"""Why a feed's redirect hop may be followed: every address public; the same server as
the URL the fetch started from; or internal but allowed by the operator's allow-list."""


def same_server(a: httpx.URL, b: httpx.URL) -> bool:
    """The same host name and port, whatever the scheme.

    Hosts compare as spelled (lower case, IDNA, no trailing dot), not by address:
    ``127.0.0.1`` and ``localhost`` are different servers here, which errs on the
    side of refusing. Two URLs on their schemes' default ports also count as the
    same server, so an ``http://intranet/feed`` that upgrades itself to
    ``https://intranet/feed`` keeps working.
    """
    host_a = a.raw_host.decode("ascii").lower().rstrip(".")
    host_b = b.raw_host.decode("ascii").lower().rstrip(".")
    if not host_a or host_a != host_b:
        return False
    if a.port is None and b.port is None:  # httpx drops a port that is the scheme's default
        return True
    return (a.port or _DEFAULT_PORTS.get(a.scheme)) == (b.port or _DEFAULT_PORTS.get(b.scheme))


async def check_redirect_hop(
    target: httpx.URL, *, origin: httpx.URL, allow: Sequence[str] | AllowList = ()
) -> HopVerdict:
    """Vet one redirect hop of a feed; raises ``FetchError(kind="redirect_blocked")``.

    The URL a feed fetch starts from is the operator's (or a move saved earlier,
    which passed this check) and is trusted as given: internal feeds on
    ``127.0.0.1`` or an intranet host are normal. Every hop after it is the
    remote site's choice, so it gets the article-page rules of
    ``check_public_url`` (resolved, refused if any address is not public), with
    two exceptions:

    * ``"same_host"``: the hop stays on the starting URL's host and port (see
      ``same_server``). That server was reachable anyway, so a local feed that
      moves to another path of itself keeps working. The exemption is relative
      to the *starting* URL, not to the previous hop: a previous hop to another
      host passed as public or allow-listed, and checking it again costs one
      lookup and closes the gap in which a name answers public, then private.
    * ``"allowed"``: the operator listed the host or network
      (``fetch.allow_internal_hosts``). Link-local and metadata addresses need
      an explicit entry, exactly as for article pages.

    ``"public"`` means every address of the hop's host is public.
    """
    scheme = target.scheme.lower()
    if scheme not in _SCHEMES:
        raise FetchError(REDIRECT_BLOCKED, f"redirect to {scheme or '(no scheme)'!r} refused: "
                                           f"{str(target)[:200]}")
    if same_server(target, origin):
        return "same_host"
    allowed = as_allow_list(allow)
    host = target.raw_host.decode("ascii")
    if not host:
        raise FetchError("invalid_url", f"redirect to a URL without a host: {str(target)[:200]}")
    if allowed.allows_host(host):
        return "allowed"
    addresses = await resolve(host, target.port or _DEFAULT_PORTS[scheme])
    verdict: HopVerdict = "public"
    for address in addresses:
        reason = blocked_reason(address)
        if reason is None:
            continue
        if not allowed.allows_address(address):
            shown = host if literal_address(host) is not None else f"{host} ({address})"
            raise FetchError(
                REDIRECT_BLOCKED,
                f"redirect to {str(target)[:200]} refused: {shown} is a {reason}; a feed may "
                f"redirect to internal addresses only on its own host "
                f"({origin.netloc.decode('ascii')}) or to hosts in fetch.allow_internal_hosts",
            )
        verdict = "allowed"
    return verdict


# -- closing the DNS-rebinding window for httpx's own transport --------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses it has just checked.

    httpcore hands us the URL's host name; we resolve it once, refuse it by the
    same rules as ``check_public_url`` and open the TCP connection to the checked
    address itself, so no second resolution can answer differently. TLS is
    started later by httpcore with the *name* as SNI and for certificate checks.
    """

    def __init__(
        self,
        allow: Sequence[str] | AllowList = (),
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow = as_allow_list(allow)
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve_public(host, port, allow=self._allow)
        except FetchError as exc:
            if exc.kind == "blocked_address":
                raise
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # resolve() never returns an empty list
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise FetchError("blocked_address", f"refused unix socket {path!r}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guard_transport(
    *,
    allow: Sequence[str] | AllowList = (),
    verify: ssl.SSLContext | bool = True,
    limits: httpx.Limits | None = None,
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport with a ``GuardedBackend`` under its connection pool.

    httpx has no public way to pass a network backend, so this swaps the one in
    the pool it built; the checks below make an httpx upgrade that moves these
    attributes fail loudly here (and in tests) instead of silently unguarded.
    """
    transport = httpx.AsyncHTTPTransport(
        verify=verify, limits=limits or httpx.Limits(), trust_env=False, retries=0
    )
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(
        pool, "_network_backend"
    ):
        raise RuntimeError("this httpx/httpcore version cannot be guarded; pin httpx 0.28")
    pool._network_backend = GuardedBackend(allow)
    return transport
