"""Which local addresses the SFU's ICE agent offers as host candidates (a process-wide setting).

aioice (under aiortc) gathers host candidates from every interface except loopback, and has no
option to choose. `OPENROOMS_MEDIA_ICE_HOSTS` (a comma-separated list of IP addresses, set by the
composition root from the config) replaces that list: `127.0.0.1` makes a single-machine setup
(or a test run in a network namespace with only `lo`) reachable by a browser started with
`--allow-loopback-in-peer-connection`; a public address pins the candidates of a multi-homed host.
Unset: aioice's own choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import aioice.ice


def use_ice_host_addresses(addresses: Sequence[str]) -> None:
    """Gather host candidates on exactly `addresses` (empty: aioice's default)."""
    if not addresses:
        return
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses
