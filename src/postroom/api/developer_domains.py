"""Each request validates addresses with the operator's choice about developer domains
(core/addresses.py; POSTROOM_DEVELOPER_DOMAINS)."""

from starlette.types import ASGIApp, Receive, Scope, Send

from postroom.core.addresses import developer_domains


class DeveloperDomainsMiddleware:
    def __init__(self, app: ASGIApp, allowed: bool) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with developer_domains(self.allowed):
            await self.app(scope, receive, send)
