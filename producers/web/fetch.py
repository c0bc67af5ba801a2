"""Downloading an import's ``data_file_url`` without letting it reach inside the network.

A URL given to the HTTP service is fetched by the service's machine, which may see what the
caller cannot: the cloud's metadata address (169.254.169.254), Redis on loopback, the private
network. So the download:

- takes only ``http`` and ``https``, and no URL with a space or a control character in it;
- resolves the host itself, refuses it when any of its addresses is not a public one (loopback,
  private, link-local, shared, reserved, multicast, unspecified; an IPv6 address is also checked
  as the IPv4 address it carries: mapped, 6to4, Teredo, NAT64, IPv4-compatible), unless the
  operator's allowlist (``BACKFILL_API_FETCH_ALLOW``: names, addresses, CIDRs, separated by commas
  or spaces; anything else refuses to start) names the host or the address;
- connects to the very address it checked (no second lookup that a rebinding DNS could answer
  differently), sending the name as the Host header and, for https, as the TLS server name the
  certificate is checked against;
- follows at most :data:`MAX_REDIRECTS` redirects, each one checked like the first URL;
- sends a URL's ``user:password@`` as HTTP Basic auth (to that URL's host only: not across a
  redirect to another), and never shows it: what is stored, logged and said of the URL is
  :func:`redact`'s form, without the password and the values of signed query strings;
- stops at the size limit and at the time limit, which covers the whole exchange: connecting, the
  headers (a server sending a header line a second is cut off too) and the body (the DNS lookup
  is left to the system's resolver and its own timeout); a body that ends short of its
  Content-Length is refused, not imported in part.

Every refusal is a :class:`worker.errors.FileProblem` with a stable code: the import fails with
that message, as for a file that cannot be read.
"""
from __future__ import annotations

import base64
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
import urllib.parse
from pathlib import Path

from producers.text import problem_in
from worker.errors import ConfigError, FileProblem

MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: A host name of the allowlist: labels of letters, digits, - and _ (no scheme, port, path or wildcard).
_HOST_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?", re.IGNORECASE)
#: NAT64's prefixes (RFC 6052, RFC 8215): an IPv4 address in the last 32 bits.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
#: Query parameters whose values are secrets (signed URLs: S3, GCS, Azure SAS, CloudFront; tokens, keys),
#: matched in the lowered name.
_SECRET_PARAMS = re.compile(r"sig|token|key|secret|pass|auth|credential|session|policy|code|hash|hmac")


def parse_allow(text: str) -> tuple[frozenset[str], tuple[Network, ...]]:
    """The allowlist setting: (host names, networks), its entries separated by commas or spaces.
    Addresses are one-address networks. Raises ConfigError for an entry that is none of those (a URL,
    a port, a wildcard, a semicolon-separated list), so that a typo does not allow nothing silently."""
    names, networks = set(), []
    for entry in re.split(r"[\s,]+", text.strip()):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if not _HOST_NAME.fullmatch(entry):
                raise ConfigError(f"BACKFILL_API_FETCH_ALLOW: {entry!r} is not a host name, an address or a network "
                                  "(CIDR); separate entries with commas or spaces") from None
            names.add(entry.lower().rstrip("."))
    return frozenset(names), tuple(networks)


def carried(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, where traffic to it ends up: mapped (::ffff:a.b.c.d),
    6to4 (2002:AABB:CCDD::), Teredo (its server and its client), NAT64 (64:ff9b::a.b.c.d) and the
    deprecated IPv4-compatible form (::a.b.c.d). Pure."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if any(address in network for network in _NAT64) or (address.packed[:12] == bytes(12) and int(address) > 0xFFFF):
        found.append(ipaddress.IPv4Address(address.packed[-4:]))
    return [ipv4 for ipv4 in found if ipv4 is not None]


def forbidden(address: Address) -> str | None:
    """Why ``address`` may not be fetched from ("loopback", "private"...), or None for a public one. An
    IPv6 address that carries an IPv4 one is refused when either is (the IPv4 named: "loopback,
    carrying 127.0.0.1"); a mapped one (::ffff:a.b.c.d) is the IPv4 address itself. Pure."""
    for ipv4 in carried(address):
        why = _kind(ipv4)
        if why:
            mapped = isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
            return why if mapped else f"{why}, carrying {ipv4}"
    return None if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped else _kind(address)


def _kind(address: Address) -> str | None:
    for kind in ("loopback", "unspecified", "link_local", "private", "multicast", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "not public"


def redact(url: str) -> str:
    """``url`` as it may be stored, logged and shown: without ``user:password@``, its fragment, and the
    values of query parameters that hold secrets (``sig``, ``X-Amz-Signature``, ``token``, ``key``...,
    kept as ``REDACTED``). Pure."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}={'REDACTED' if _SECRET_PARAMS.search(urllib.parse.unquote(name).lower()) else value}" if sep else name
        for name, sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _basic_auth(parts: urllib.parse.SplitResult) -> dict[str, str]:
    """The Authorization header of a URL's ``user:password@`` (percent-decoded), or none."""
    if parts.username is None:
        return {}
    pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def check_url(url: str) -> urllib.parse.SplitResult:
    """``url`` split, when it is an http(s) URL with a host; raises FileProblem otherwise. Pure."""
    for position, char in enumerate(url, 1):
        if char.isspace() or problem_in(char):
            raise FileProblem("url_invalid", f"data_file_url has a space or a control character (U+{ord(char):04X}) at "
                              f"position {position}: percent-encode it (a space is %20)")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FileProblem("url_scheme", f"data_file_url must be an http or https URL, not {parts.scheme or 'none'}:")
    if not parts.hostname:
        raise FileProblem("url_invalid", f"data_file_url {redact(url)!r} has no host")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise FileProblem("url_invalid", f"data_file_url {redact(url)!r} has a port that is not a number") from None
    return parts


def resolve(host: str, port: int, allow: tuple[frozenset[str], tuple[Network, ...]]) -> str:
    """The address to connect to for ``host``: every address it resolves to must be allowed."""
    names, networks = allow
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FileProblem("url_unreachable", f"data_file_url host {host!r} does not resolve ({exc.strerror})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found]
    if host.lower().rstrip(".") not in names:
        for address in addresses:
            why = forbidden(address)
            if why and not any(address in network for network in networks):
                article = "an" if why[0] in "aeiou" else "a"
                why, _, ipv4 = why.partition(", carrying ")
                inside = f" (it carries {ipv4})" if ipv4 else ""
                raise FileProblem("url_forbidden", f"data_file_url host {host!r} is {address}, {article} {why} address{inside}: "
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
        self.address, self.tls = address, context

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def fetch(url: str, dest: Path, *, max_bytes: int, timeout_s: float, allow: str = "",
          context: ssl.SSLContext | None = None) -> int:
    """Download ``url`` into ``dest`` under the rules above; the bytes written. Raises FileProblem."""
    allowed = parse_allow(allow)
    deadline = time.monotonic() + timeout_s
    credentials = urllib.parse.urlsplit(url)
    for _ in range(MAX_REDIRECTS + 1):
        parts = check_url(url)
        if parts.username is not None:
            credentials = parts
        elif (parts.scheme, parts.hostname, parts.port) != (credentials.scheme, credentials.hostname, credentials.port):
            credentials = parts  # another host: the password is not sent there
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = resolve(parts.hostname, port, allowed)  # type: ignore[arg-type]  # check_url refused a URL without a host before
        left = deadline - time.monotonic()
        if left <= 0:
            raise FileProblem("url_timeout", f"data_file_url did not answer in time ({timeout_s:g} s)")
        connection: http.client.HTTPConnection = (
            _PinnedTLS(parts.hostname, address, port, left, context or ssl.create_default_context())  # type: ignore[arg-type]  # check_url refused a URL without a host before
            if parts.scheme == "https" else _Pinned(parts.hostname, address, port, left))  # type: ignore[arg-type]  # check_url refused a URL without a host before
        # Each socket operation is bounded by the time left, but a server that sends a byte now and then
        # never lets one time out: at the deadline the socket is shut, whatever is under way.
        cut = _Cutoff(connection, left)
        try:
            target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
            connection.request("GET", target, headers={"User-Agent": "backfill", "Accept-Encoding": "identity",
                                                       **_basic_auth(credentials)})
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
            size = _save(response, dest, max_bytes, deadline)
            if cut.fired:  # (the socket shut at the deadline reads as the end of the body)
                raise TimeoutError
            return size
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if cut.fired or isinstance(exc, (TimeoutError, socket.timeout)):
                raise FileProblem("url_timeout", f"data_file_url did not answer in time ({timeout_s:g} s, "
                                  "BACKFILL_API_FETCH_TIMEOUT_S)") from None
            raise FileProblem("url_unreachable", f"data_file_url could not be read: {exc}") from None
        finally:
            cut.cancel()
            connection.close()
    raise FileProblem("url_redirects", f"data_file_url redirected more than {MAX_REDIRECTS} times")


class _Cutoff:
    """Shuts a connection's socket after ``seconds`` (a blocked read then returns): the whole exchange's
    time limit. ``fired`` says it did."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.connection, self.fired = connection, False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = self.connection.sock
        if sock is not None:
            try:
                # the plain socket's shutdown, also under TLS (SSLSocket's own would tear its state down
                # under the reading thread's feet)
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self.timer.cancel()


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
    if response.length:  # the server closed before the length it announced: a part of a file is no file
        raise FileProblem("url_unreachable", f"data_file_url ended after {written:,} bytes, {response.length:,} "
                          "short of its Content-Length")
    return written
