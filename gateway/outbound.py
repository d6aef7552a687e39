"""The outbound-URL policy: which URLs a caller may make the gateway call (webhooks,
and later A2A push notifications), decided on the parsed URL, never on its text.

A URL is allowed when its scheme, host and port equal those of an allowed entry
exactly (``http://localhost`` is port 80 only) and its path, as the client will
send it (dot segments, ``..`` and ``%2e%2e`` alike, resolved), lies under the
entry's path. Refused whatever the entries say:

- user-info (``http://a:b@host/``): the classic way to make a prefix check and
  the connecting client disagree about the host;
- whitespace, control characters and backslashes, which parsers split differently;
- a dot segment left after that resolution (none is, today: a guard in case the
  URL library stops resolving them);
- the gateway's own listeners (its HTTP, gRPC and admin ports) on any name of this
  machine: loopback (``127.0.0.0/8``, ``::1``, ``localhost``), the unspecified
  addresses (``0.0.0.0``, ``::``), the bound hosts, the host name and its
  addresses; numeric hosts count in every spelling a resolver accepts
  (``2130706433``, ``127.1``, ``[::ffff:127.0.0.1]``).

A host *name* in an allowed entry is trusted to resolve where the operator says;
the policy does not resolve names (a resolver answer could differ on connect).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote

from yarl import URL

from gateway.model import InvalidRequest

_MAX_URL_LENGTH = 2048
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
_SCHEMES = ("http", "https")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, canonical host and port (the scheme's default when the URL names none)."""

    scheme: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    origin: Origin
    # The path as the client will send it (percent-encoded, dot segments resolved).
    path: str
    url: URL


def canonical_host(host: str) -> str:
    """Lower case, no trailing dot, IP addresses in their one standard spelling
    (numeric IPv4 forms a resolver accepts, such as ``127.1``, become dotted quads)."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if re.fullmatch(r"[0-9a-fx.]+", host):  # maybe a numeric form (0x7f.1, 2130706433)
            try:
                return socket.inet_ntoa(socket.inet_aton(host))
            except OSError:
                return host
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def parse_url(text: str, what: str = "the URL") -> ParsedUrl:
    """Parse an absolute http(s) URL the way the client will use it; raises ValueError."""
    if len(text) > _MAX_URL_LENGTH:
        raise ValueError(f"{what} is longer than {_MAX_URL_LENGTH} characters")
    if _UNSAFE.search(text):
        raise ValueError(f"{what} contains whitespace, a control character or a backslash")
    try:
        url = URL(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not a valid URL: {exc}") from None
    scheme = url.scheme.lower()
    if scheme not in _SCHEMES or not url.raw_host:
        raise ValueError(f"{what} must be an absolute http:// or https:// URL")
    if "@" in (url.raw_authority or ""):
        raise ValueError(f"{what} must not carry user-info ('user:password@' before the host)")
    if any(unquote(segment) in (".", "..") for segment in url.raw_path.split("/")):
        raise ValueError(f"{what} must not contain '.' or '..' path segments")
    port = url.port
    if port is None:  # pragma: no cover - yarl fills in the default of http and https
        raise ValueError(f"{what} names no port")
    return ParsedUrl(Origin(scheme, canonical_host(url.raw_host), port), url.raw_path or "/", url)


def _under(path: str, prefix: str) -> bool:
    if prefix in ("", "/") or path == prefix:
        return True
    return path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def _split_address(address: str) -> tuple[str, int] | None:
    host, _, port = address.rpartition(":")
    return (canonical_host(host), int(port)) if port.isdigit() and int(port) else None


@cache
def _machine_hosts() -> frozenset[str]:
    """Names and addresses this machine answers to, beyond loopback (looked up once)."""
    names = {socket.gethostname(), socket.getfqdn()}
    hosts = {canonical_host(n) for n in names if n}
    for name in names:
        try:
            hosts.update(canonical_host(str(info[4][0])) for info in socket.getaddrinfo(name, None))
        except OSError:
            continue
    return frozenset(hosts)


def is_this_machine(host: str) -> bool:
    """Whether ``host`` (canonical) names this machine: loopback, unspecified, its own names."""
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in _machine_hosts()
    return address.is_loopback or address.is_unspecified or host in _machine_hosts()


class OutboundUrlPolicy:
    """Decides whether a caller-supplied URL may be called; see the module docstring.

    ``setting`` names the configuration list the messages point to;
    ``own_listeners`` returns the gateway's listener addresses (``host:port``) as
    bound at the moment of the check.
    """

    def __init__(
        self,
        allowed: Sequence[str],
        setting: str,
        own_listeners: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.setting = setting
        self.rules = [parse_url(entry, f"the entry {entry!r} of {setting}") for entry in allowed]
        self.own_listeners = own_listeners
        if self.rules:
            _machine_hosts()  # resolve this machine's names now (at startup), not inside a request

    def _own(self) -> tuple[set[int], set[str]]:
        ports: set[int] = set()
        hosts: set[str] = set()
        for address in self.own_listeners():
            if (split := _split_address(address)) is not None:
                hosts.add(split[0])
                ports.add(split[1])
        return ports, hosts

    def check(self, url: str, what: str = "the URL") -> str:
        """``url`` as the client will send it; raises InvalidRequest when it is not allowed."""
        if not self.rules:
            raise InvalidRequest(
                f"this gateway calls no caller-supplied URLs here: list the allowed ones in {self.setting}"
            )
        shown = repr(url[:200])
        try:
            parsed = parse_url(url, f"{what} {shown}")
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        ports, hosts = self._own()
        if parsed.origin.port in ports and (parsed.origin.host in hosts or is_this_machine(parsed.origin.host)):
            raise InvalidRequest(f"{what} {shown} points at one of the gateway's own listeners; it never calls itself")
        for rule in self.rules:
            if rule.origin == parsed.origin and _under(parsed.path, rule.path):
                return str(parsed.url)
        raise InvalidRequest(
            f"{what} {shown} is not allowed: its scheme, host and port must equal those of an entry "
            f"of {self.setting}, and its path lie under the entry's path"
        )


def check_allowed_entry(entry: str, setting: str) -> str:
    """Config validation of one allowed entry: an http(s) URL without user-info, query or fragment."""
    parsed = parse_url(entry, f"the entry {entry!r} of {setting}")
    if parsed.url.raw_query_string or parsed.url.raw_fragment:
        raise ValueError(f"the entry {entry!r} of {setting} must not have a query or fragment")
    return entry
