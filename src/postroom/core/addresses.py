"""The domains developers address mail to: `.test`, `.example` and `localhost` (RFC 2606,
RFC 6761). email-validator refuses them, rightly for mail that leaves the machine; a developer
sending to a local SMTP server needs them. Whether they are accepted is the operator's choice
(POSTROOM_DEVELOPER_DOMAINS; on in development), made per request by the API
(app.DeveloperDomainsMiddleware) and read where an address is validated, which has no settings
of its own: pydantic validators are plain functions of the value."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

DEVELOPER_DOMAINS = ("test", "example", "localhost")

# Outside a request (tests, internal validation) there is no operator's choice to apply: taken.
_allowed: ContextVar[bool] = ContextVar("developer_domains_allowed", default=True)


def is_developer_domain(domain: str) -> bool:
    name = domain.lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in DEVELOPER_DOMAINS)


def developer_domains_allowed() -> bool:
    return _allowed.get()


@contextmanager
def developer_domains(allowed: bool) -> Iterator[None]:
    """Within the block (and the tasks it starts), developer domains are accepted or not."""
    token = _allowed.set(allowed)
    try:
        yield
    finally:
        _allowed.reset(token)
