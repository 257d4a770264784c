"""ECDSA P-256 public keys as mail services hand them out (base64 of the DER
SubjectPublicKeyInfo, SendGrid's "verification key") and the signatures made with them."""

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

MAX_KEY_TEXT = 1_000  # a P-256 key is 124 characters of base64; PEM framing adds little
MAX_SIGNATURE_TEXT = 200  # a DER P-256 signature is at most 72 bytes


class InvalidKey(ValueError):
    pass


def load_p256_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The key in `text`: base64 DER, with or without PEM's BEGIN/END lines (people paste
    either); InvalidKey (with a message fit for the client) for anything else, another curve
    included."""
    if len(text) > MAX_KEY_TEXT:
        raise InvalidKey("too long for a P-256 public key")
    body = "".join(
        line for line in text.strip().splitlines() if not line.strip().startswith("-----")
    )
    try:
        key = load_der_public_key(base64.b64decode("".join(body.split()), validate=True))
    except (binascii.Error, ValueError) as error:
        raise InvalidKey("not a base64 DER public key (SubjectPublicKeyInfo)") from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidKey("not an ECDSA P-256 public key")
    return key


def verify_p256(key: ec.EllipticCurvePublicKey, signature_b64: str, data: bytes) -> bool:
    """Whether `signature_b64` (base64 of a DER ECDSA signature) signs `data` (SHA-256)."""
    if len(signature_b64) > MAX_SIGNATURE_TEXT:
        return False
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True
