"""Which hosts a tenant's SMTP credential may reach: public addresses only, unless the operator
allows more (POSTROOM_DESTINATIONS__ALLOW). Without this a credential for 127.0.0.1, 10.x or
169.254.169.254 would turn the delivery worker into a scanner and relay inside the operator's
network.

A host is judged twice: its literal address (in any spelling the resolver accepts: `127.1`,
`0x7f000001`, `2130706433`, `::ffff:127.0.0.1`) when the credential is stored, and every address
a name resolves to when the worker connects, so a name that later resolves elsewhere gains
nothing."""

import ipaddress
import re
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "POSTROOM_DESTINATIONS__ALLOW"

# NAT64 (RFC 6052) carries an IPv4 address in its last 32 bits: judged by that address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# What inet_aton reads as an IPv4 address besides the dotted quad: 1 to 4 parts, each
# decimal, octal (leading 0) or hex (0x). Anything else is a name (or not an address at all).
_NUMERIC_IPV4 = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells, if it is one (brackets around IPv6 allowed), else None."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if _NUMERIC_IPV4.match(bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _is_public(embedded)
    # is_global alone lets multicast (224/4) through; the rest spell out what is meant.
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


class DestinationPolicy:
    """Public addresses, plus the networks and host names the operator allows."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for entry in allow:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if literal_address(entry) is not None or not re.match(r"^[A-Za-z0-9.\-]+$", entry):
                    raise ValueError(
                        f"{SETTING}: {entry!r} is neither a network nor a host name"
                    ) from None
                names.add(entry.lower().rstrip("."))
        self._networks = tuple(networks)
        self._names = frozenset(names)

    def allows_address(self, address: IPAddress) -> bool:
        if _is_public(address):
            return True
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(a in network for a in candidates for network in self._networks)

    def allows_name(self, host: str) -> bool:
        """Whether the operator allowed this host name itself (whatever it resolves to)."""
        return host.lower().rstrip(".") in self._names

    def refusal(self, host: str) -> str | None:
        """Why `host` may not be used, if it is an address the policy refuses; None for an
        allowed address and for a name (names are judged when they are resolved)."""
        address = literal_address(host)
        if address is None or self.allows_address(address):
            return None
        return refused_text(host)


def refused_text(host: str) -> str:
    return f"{host} is not an allowed destination ({SETTING})"
