"""Live transports, one per mail service configuration, kept while their configuration holds
(so an SMTP pool outlives a batch) and replaced when it changes."""

from collections.abc import Callable, Hashable

from postroom.delivery.transports.base import Transport


class TransportRegistry:
    def __init__(self, default: Transport) -> None:
        self.default = default
        self._live: dict[Hashable, tuple[Hashable, Transport]] = {}
        self._retired: list[Transport] = []

    def get(self, key: Hashable, version: Hashable, build: Callable[[], Transport]) -> Transport:
        """The transport for `key`, built anew when `version` (e.g. an updated_at) changes."""
        live = self._live.get(key)
        if live is not None and live[0] == version:
            return live[1]
        if live is not None:
            # Sends may still be running on it; it is closed with the registry.
            self._retired.append(live[1])
        transport = build()
        self._live[key] = (version, transport)
        return transport

    async def aclose(self) -> None:
        transports = [self.default, *self._retired, *(t for _, t in self._live.values())]
        self._live.clear()
        self._retired.clear()
        for transport in transports:
            await transport.aclose()
