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


@dataclass(frozen=True, slots=True)
class AllowList:
    """Hosts and networks the operator trusts despite the rules (e.g. an intranet mirror)."""

    hosts: frozenset[str] = frozenset()
    """Names allowed whatever they resolve to (lower case, no trailing dot)."""
    networks: tuple[IPNetwork, ...] = ()
    """Addresses allowed when a URL resolves into them (a bare IP is a /32 or /128)."""

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Read config entries; raises SettingsError naming a bad one."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]
            if not entry:
                raise SettingsError("fulltext.allow_hosts: empty entry")
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or ":" in entry or not _looks_like_hostname(entry):
                raise SettingsError(
                    f"fulltext.allow_hosts: {raw!r} is neither a host name, an IP address "
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


def _literal(host: str) -> IPAddress | None:
    """The address a host spelled as an IP literal stands for (a URL writes a zone "%" as "%25")."""
    try:
        return ipaddress.ip_address(host.strip("[]").replace("%25", "%", 1))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in resolver order, without duplicates.

    A literal address is returned as is: no resolver call, no network.
    """
    literal = _literal(host)
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
            shown = host if _literal(host) is not None else f"{host} ({address})"
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
