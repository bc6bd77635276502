"""Webhook signatures made the way each provider's documentation describes, by code of our own.

Tests, harnesses and the e2e fakes sign with these, never with `providers.*`: a signing
mistake in a provider module then fails its tests instead of passing everywhere.
Each function follows the documented algorithm step by step (see the README's table of
documentation versions); `tests/providers/test_signatures.py` pins them to known answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def kie_headers(hmac_key: str, task_id: str, timestamp: int | None = None) -> dict[str, str]:
    """docs.kie.ai "Webhook Security Verification": base64(HMAC-SHA256(taskId + "." + timestamp, key))."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    data_to_sign = (task_id + "." + stamp).encode("utf-8")
    digest = hmac.new(hmac_key.encode("utf-8"), data_to_sign, hashlib.sha256).digest()
    return {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": base64.b64encode(digest).decode("ascii")}


def fal_headers(
    key: Ed25519PrivateKey, request_id: str, body: bytes, user_id: str = "user-1", timestamp: int | None = None
) -> dict[str, str]:
    """docs.fal.ai "Verifying your webhook": ED25519 over the four lines, signature in hex."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    message = "\n".join([request_id, user_id, stamp, hashlib.sha256(body).hexdigest()]).encode("utf-8")
    return {
        "x-fal-webhook-request-id": request_id,
        "x-fal-webhook-user-id": user_id,
        "x-fal-webhook-timestamp": stamp,
        "x-fal-webhook-signature": key.sign(message).hex(),
    }


def standard_webhook_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks (Replicate's "Verify webhooks"): the key is the base64 after `whsec_`;
    `v1,` + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed_content = msg_id.encode() + b"." + stamp.encode() + b"." + body
    signature = base64.b64encode(hmac.new(key, signed_content, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": f"v1,{signature}"}


def local_headers(secret: str, task_id: str, timestamp: int | None = None) -> dict[str, str]:
    """The local provider's own scheme (README): hex HMAC-SHA256 over `task_id.timestamp`."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{task_id}.{stamp}".encode(), hashlib.sha256).hexdigest()
    return {"x-local-timestamp": stamp, "x-local-signature": digest}
