"""The per-message bounce address (the SMTP envelope sender, so the Return-Path):
`bounces+<message id>.<tag>@<bounce domain>`, where the tag is an HMAC of the message id that
only this installation's secret makes, so an address for a message cannot be forged."""

import re

from postroom.core.crypto import SecretBox

LOCAL_PREFIX = "bounces+"
TAG_PURPOSE = "bounce"
TAG_LENGTH = 16  # 80 bits of lower-case base32: the local part stays within RFC 5321's 64
# A message id as core/ids.py makes them (a prefix and a ULID); nothing else is looked up.
_MESSAGE_ID = re.compile(r"[a-z_]{1,20}[0-9A-Z]{26}")
_TAG = re.compile(rf"[a-z2-7]{{{TAG_LENGTH}}}")


def bounce_address(box: SecretBox, message_id: str, domain: str) -> str:
    tag = box.tag(TAG_PURPOSE, message_id, TAG_LENGTH)
    return f"{LOCAL_PREFIX}{message_id}.{tag}@{domain}"


def message_of(box: SecretBox, address: str, domain: str) -> str | None:
    """The message id an address made by `bounce_address` stands for; None for any other
    address (another domain or mailbox, a tag that does not match)."""
    local, at, address_domain = address.strip().removeprefix("<").removesuffix(">").rpartition("@")
    if not at or address_domain.lower().rstrip(".") != domain.lower().rstrip("."):
        return None
    if not local.lower().startswith(LOCAL_PREFIX):
        return None
    message_id, dot, tag = local[len(LOCAL_PREFIX) :].rpartition(".")
    # The tag is lower-case base32; a relay that changed its case has not changed its value.
    tag = tag.lower()
    if not dot or not _MESSAGE_ID.fullmatch(message_id) or not _TAG.fullmatch(tag):
        return None
    if not box.verify_tag(TAG_PURPOSE, message_id, tag, TAG_LENGTH):
        return None
    return message_id
