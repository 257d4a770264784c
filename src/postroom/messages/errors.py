"""The messages domain's own conflicts: each has its own problem type, so a client can tell a
message being sent from one already settled without reading the detail."""

from postroom.errors import Conflict


class MessageBeingSent(Conflict):
    slug, title = "message-being-sent", "Message being sent"


class MessageSettled(Conflict):
    """The message is `sent` or `failed`: nothing about its sending can change."""

    slug, title = "message-settled", "Message already sent or failed"


class MessageIsDraft(Conflict):
    slug, title = "message-is-draft", "Message is a draft"


class MessageNotSent(Conflict):
    """The message is in `outbox`: it has not been sent (or failed) yet."""

    slug, title = "message-not-sent", "Message not sent yet"
