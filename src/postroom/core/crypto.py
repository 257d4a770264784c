"""Encryption at rest for stored secrets (credential passwords and API keys): Fernet, keyed by
HKDF from the configured secret, so any string of enough entropy can serve as the secret."""

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


class SecretBox:
    def __init__(self, secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"postroom stored secrets"
        ).derive(secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._tag_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"postroom url tags"
        ).derive(secret.encode())

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("stored secret cannot be decrypted with this secret key") from None

    def tag(self, purpose: str, value: str, length: int = 32) -> str:
        """An unguessable, stable token for `value` (URL- and local-part-safe: lower-case
        base32), e.g. the secret part of a credential's inbound URL. Only this secret makes it;
        `verify_tag` checks one in constant time."""
        mac = hmac.new(self._tag_key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.b32encode(mac).decode().rstrip("=").lower()[:length]

    def verify_tag(self, purpose: str, value: str, tag: str, length: int = 32) -> bool:
        return hmac.compare_digest(self.tag(purpose, value, length).encode(), tag.encode())

    def __repr__(self) -> str:
        return "SecretBox(…)"


def load_or_create_secret(data_dir: Path) -> str:
    """The secret kept in the data directory, generated (readable by this user only) once."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    log.warning(
        "generated a secret key for stored credentials; back it up, or set POSTROOM_SECRET_KEY",
        extra={"path": str(path)},
    )
    return secret
