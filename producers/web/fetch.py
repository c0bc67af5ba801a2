"""Downloading an import's ``data_file_url`` without letting it reach inside the network.

A URL given to the HTTP service is fetched by the service's machine, which may see what the
caller cannot: the cloud's metadata address (169.254.169.254), Redis on loopback, the private
network. So the download:

- takes only ``http`` and ``https``;
- resolves the host itself, refuses it when any of its addresses is not a public one (loopback,
  private, link-local, shared, reserved, multicast, unspecified; an IPv4 address inside IPv6
  too), unless the operator's allowlist (``BACKFILL_API_FETCH_ALLOW``: names, addresses, CIDRs)
  names the host or the address;
- connects to the very address it checked (no second lookup that a rebinding DNS could answer
  differently), sending the name as the Host header and, for https, as the TLS server name the
  certificate is checked against;
- follows at most :data:`MAX_REDIRECTS` redirects, each one checked like the first URL;
- stops at the size limit and at the time limit.

Every refusal is a :class:`worker.errors.FileProblem` with a stable code: the import fails with
that message, as for a file that cannot be read.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse
from pathlib import Path

from worker.errors import FileProblem

MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow(text: str) -> tuple[frozenset[str], tuple[Network, ...]]:
    """The allowlist setting: (host names, networks). Addresses are one-address networks."""
    names, networks = set(), []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return frozenset(names), tuple(networks)


def forbidden(address: Address) -> str | None:
    """Why ``address`` may not be fetched from ("loopback", "private"...), or None for a public one. Pure."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("loopback", "unspecified", "link_local", "private", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "not public"
    return None


def check_url(url: str) -> urllib.parse.SplitResult:
    """``url`` split, when it is an http(s) URL with a host; raises FileProblem otherwise. Pure."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FileProblem("url_scheme", f"data_file_url must be an http or https URL, not {parts.scheme or 'none'}:")
    if not parts.hostname:
        raise FileProblem("url_invalid", f"data_file_url {url!r} has no host")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise FileProblem("url_invalid", f"data_file_url {url!r} has a port that is not a number") from None
    return parts


def resolve(host: str, port: int, allow: tuple[frozenset[str], tuple[Network, ...]]) -> str:
    """The address to connect to for ``host``: every address it resolves to must be allowed."""
    names, networks = allow
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FileProblem("url_unreachable", f"data_file_url host {host!r} does not resolve ({exc.strerror})") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in found]
    if host.lower().rstrip(".") not in names:
        for address in addresses:
            why = forbidden(address)
            if why and not any(address in network for network in networks):
                article = "an" if why[0] in "aeiou" else "a"
                raise FileProblem("url_forbidden", f"data_file_url host {host!r} is {address}, {article} {why} address: "
                                  "backfill does not fetch from inside the network (an operator can allow it "
                                  "with BACKFILL_API_FETCH_ALLOW)")
    return str(addresses[0])


class _Pinned(http.client.HTTPConnection):
    """HTTP to an address already checked; the Host header stays the name."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """HTTPS to an address already checked; the certificate is checked against the name."""

    def __init__(self, host: str, address: str, port: int, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch(url: str, dest: Path, *, max_bytes: int, timeout_s: float, allow: str = "",
          context: ssl.SSLContext | None = None) -> int:
    """Download ``url`` into ``dest`` under the rules above; the bytes written. Raises FileProblem."""
    allowed = parse_allow(allow)
    deadline = time.monotonic() + timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        parts = check_url(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = resolve(parts.hostname, port, allowed)  # type: ignore[arg-type]
        step = max(0.1, min(30.0, deadline - time.monotonic()))
        connection: http.client.HTTPConnection = (
            _PinnedTLS(parts.hostname, address, port, step, context or ssl.create_default_context())  # type: ignore[arg-type]
            if parts.scheme == "https" else _Pinned(parts.hostname, address, port, step))  # type: ignore[arg-type]
        try:
            target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
            connection.request("GET", target, headers={"User-Agent": "backfill", "Accept-Encoding": "identity"})
            response = connection.getresponse()
            if response.status in _REDIRECTS and response.getheader("Location"):
                url = urllib.parse.urljoin(url, response.getheader("Location"))
                continue
            if response.status != 200:
                raise FileProblem("url_status", f"data_file_url answered {response.status} {response.reason}")
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FileProblem("url_too_large", f"data_file_url is {int(declared):,} bytes; the limit is "
                                  f"{max_bytes:,} (BACKFILL_API_MAX_UPLOAD_BYTES)")
            return _save(response, dest, max_bytes, deadline)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, (TimeoutError, socket.timeout)):
                raise FileProblem("url_timeout", f"data_file_url did not answer in time ({timeout_s:g} s)") from None
            raise FileProblem("url_unreachable", f"data_file_url could not be read: {exc}") from None
        finally:
            connection.close()
    raise FileProblem("url_redirects", f"data_file_url redirected more than {MAX_REDIRECTS} times")


def _save(response: http.client.HTTPResponse, dest: Path, max_bytes: int, deadline: float) -> int:
    written = 0
    with dest.open("wb") as out:
        # read1: what has arrived (read(n) would wait for n bytes: a server sending a byte at a time
        # would hold the download past the deadline)
        while block := response.read1(1 << 16):
            written += len(block)
            if written > max_bytes:
                raise FileProblem("url_too_large", f"data_file_url is larger than the limit of {max_bytes:,} bytes "
                                  "(BACKFILL_API_MAX_UPLOAD_BYTES)")
            if time.monotonic() > deadline:
                raise FileProblem("url_timeout", "data_file_url took longer than the time limit to download "
                                  "(BACKFILL_API_FETCH_TIMEOUT_S)")
            out.write(block)
    return written
