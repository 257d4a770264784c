"""The hosted one-click unsubscribe link of a message (RFC 8058): `/unsubscribe/<message
id>/<tag>`, the tag an HMAC of the message id that only this installation's secret makes, so a
link for a message cannot be forged."""

from postroom.core.crypto import SecretBox

TAG_PURPOSE = "unsubscribe"
TAG_LENGTH = 26  # 130 bits


def unsubscribe_path(box: SecretBox, message_id: str) -> str:
    return f"unsubscribe/{message_id}/{box.tag(TAG_PURPOSE, message_id, TAG_LENGTH)}"


def genuine(box: SecretBox, message_id: str, tag: str) -> bool:
    return len(tag) == TAG_LENGTH and box.verify_tag(TAG_PURPOSE, message_id, tag, TAG_LENGTH)
