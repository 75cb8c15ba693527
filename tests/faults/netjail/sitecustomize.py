"""Loaded into the daemon under test (its PYTHONPATH starts with this folder).

The fault suite must never send traffic beyond loopback, yet one scenario checks
that the daemon refuses redirects to internal addresses, which an unfixed daemon
would try to reach. So every ``connect`` of an IP socket is checked here, in the
daemon's own process, before the kernel sees it:

* loopback (127.0.0.0/8, ::1): allowed;
* an address listed in ``FAULTS_CONNECT_MAP`` ("10.0.0.1:80=127.0.0.1:4711,..."):
  recorded in ``FAULTS_CONNECT_LOG`` and sent to the loopback stand-in instead, so
  the test sees exactly what an unfixed daemon would have fetched there;
* anything else: recorded and refused with ECONNREFUSED, no packet leaves.

Host names other than ``localhost`` are not resolved either (no DNS traffic). The
daemon's own code is not touched; this only wraps the socket module.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import time

_LOG = os.environ.get("FAULTS_CONNECT_LOG")
_MAP: dict[tuple[str, int], tuple[str, int]] = {}
for _entry in filter(None, os.environ.get("FAULTS_CONNECT_MAP", "").split(",")):
    _src, _, _dst = _entry.partition("=")
    _sh, _, _sp = _src.rpartition(":")
    _dh, _, _dp = _dst.rpartition(":")
    _MAP[(_sh, int(_sp))] = (_dh, int(_dp))


def _note(what: str) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as out:
            out.write(f"{time.time():.3f} pid={os.getpid()} {what}\n")


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _checked(sock: socket.socket, address: object) -> object:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return address
    host, port = str(address[0]), int(address[1])
    if _loopback(host):
        return address
    target = _MAP.get((host, port))
    if target is not None and sock.family == socket.AF_INET:
        _note(f"connect {host}:{port} -> stand-in {target[0]}:{target[1]}")
        return target
    _note(f"connect {host}:{port} refused")
    raise ConnectionRefusedError(
        errno.ECONNREFUSED, f"fault-suite jail: no traffic to {host}:{port} (loopback only)")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def connect(self: socket.socket, address: object) -> None:
    return _connect(self, _checked(self, address))


def connect_ex(self: socket.socket, address: object) -> int:
    return _connect_ex(self, _checked(self, address))


def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "localhost"):
        try:
            ipaddress.ip_address(str(name).split("%", 1)[0])
        except ValueError:
            _note(f"resolve {name} refused")
            raise socket.gaierror(
                socket.EAI_NONAME, f"fault-suite jail: not resolving {name}") from None
    return _getaddrinfo(host, port, *args, **kwargs)


socket.socket.connect = connect  # type: ignore[method-assign]
socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = getaddrinfo
