"""Known answers for every webhook signature scheme, from the documented algorithms.

Each vector is worked out here with hashlib/hmac/base64 (or `cryptography` for ED25519),
never with `providers.*`, and then checked two ways: our signing helpers (used by the
harnesses and the e2e fakes) reproduce it, and the provider under test accepts it and
refuses it with one byte changed. A mistake in a provider's verification therefore fails
here even though the fakes and the provider would agree with each other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.contract import JobStatus, WebhookRejected
from core.db import Database
from providers.fal import FalProvider
from providers.kie import KieProvider
from providers.local import LocalProvider
from providers.replicate import ReplicateProvider
from tests.providers.fixtures import load
from tests.providers.harness_fal import jwk
from tests.providers.signing import fal_headers, kie_headers, local_headers, standard_webhook_headers

STAMP = 1_900_000_000


def flip(text: str) -> str:
    """The same signature with its first character changed."""
    return ("A" if text[0] != "A" else "B") + text[1:]


# KIE.ai: base64(HMAC-SHA256(key, taskId + "." + timestamp)) (docs.kie.ai, webhook verification)
KIE_KEY, KIE_TASK = "kie-doc-key", "task_nanobanana_1765178625768"
KIE_SIGNATURE = "YFpc+2ba/50SJhrJA97xX0iR6ODdZqECs8AcOLX+tCE="


def test_kie_vector_is_the_documented_algorithm() -> None:
    by_hand = hmac.new(KIE_KEY.encode(), f"{KIE_TASK}.{STAMP}".encode(), hashlib.sha256).digest()
    assert base64.b64encode(by_hand).decode() == KIE_SIGNATURE
    assert kie_headers(KIE_KEY, KIE_TASK, STAMP) == {
        "X-Webhook-Timestamp": str(STAMP),
        "X-Webhook-Signature": KIE_SIGNATURE,
    }


@pytest.mark.parametrize("signature", [KIE_SIGNATURE, flip(KIE_SIGNATURE)], ids=["known answer", "one byte off"])
async def test_kie_provider_accepts_the_known_answer_only(signature: str) -> None:
    body = load("kie", "callback_success")
    async with httpx.AsyncClient() as http:
        kie = KieProvider(api_key="k", base_url="https://kie.test", http=http, hmac_key=KIE_KEY, clock=lambda: STAMP)
        headers = {"X-Webhook-Timestamp": str(STAMP), "X-Webhook-Signature": signature}
        if signature != KIE_SIGNATURE:
            with pytest.raises(WebhookRejected) as caught:
                await kie.parse_webhook(headers, json.dumps(body).encode())
            assert caught.value.status_code == 401
            return
        update = await kie.parse_webhook(headers, json.dumps(body).encode())
    assert (update.task_id, update.verified) == (KIE_TASK, True)


# Fal.ai: ED25519 over "request_id\nuser_id\ntimestamp\nsha256_hex(body)", hex (docs.fal.ai, webhooks).
# The key is RFC 8032's test 1, so its public half is a published value too.
FAL_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
FAL_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
FAL_BODY = b"{}"
FAL_BODY_SHA256 = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
FAL_SIGNATURE = (
    "2c486715349a82db70012f88bd5fa3252b1369259a070c785e1a677a564eadb4"
    "1362f6bddb2802fbf2030ec458bd6c3b695f5d39db0b86325c9154bbdae37606"
)
FAL_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(FAL_SEED))


def test_fal_vector_is_the_documented_algorithm() -> None:
    assert hashlib.sha256(FAL_BODY).hexdigest() == FAL_BODY_SHA256
    assert jwk(FAL_KEY)["x"] == base64.urlsafe_b64encode(bytes.fromhex(FAL_PUBLIC)).rstrip(b"=").decode()
    message = b"r1\nuser-1\n" + str(STAMP).encode() + b"\n" + FAL_BODY_SHA256.encode()
    assert FAL_KEY.sign(message).hex() == FAL_SIGNATURE  # ED25519 is deterministic
    assert fal_headers(FAL_KEY, "r1", FAL_BODY, timestamp=STAMP)["x-fal-webhook-signature"] == FAL_SIGNATURE


@respx.mock
@pytest.mark.parametrize("good", [True, False], ids=["known answer", "one byte off"])
async def test_fal_provider_accepts_the_known_answer_only(good: bool) -> None:
    """Signed over the vector's body `{}`: a good signature gets past verification to the body check (400)."""
    respx.get("https://keys.test/jwks.json").respond(json={"keys": [jwk(FAL_KEY)]})
    headers = {
        "x-fal-webhook-request-id": "r1",
        "x-fal-webhook-user-id": "user-1",
        "x-fal-webhook-timestamp": str(STAMP),
        "x-fal-webhook-signature": FAL_SIGNATURE if good else flip(FAL_SIGNATURE),
    }
    async with httpx.AsyncClient() as http:
        fal = FalProvider(api_key="k", queue_url="https://fal.test", jwks_url="https://keys.test/jwks.json", http=http)
        fal.clock = lambda: STAMP
        with pytest.raises(WebhookRejected) as caught:
            await fal.parse_webhook(headers, FAL_BODY)
    assert caught.value.status_code == (400 if good else 401)


# Replicate (Standard Webhooks): key = base64-decoded secret after "whsec_";
# "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)). The vector is the one
# the Standard Webhooks specification publishes.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID, SW_STAMP, SW_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_standard_webhooks_vector_is_the_documented_algorithm() -> None:
    key = base64.b64decode(SW_SECRET.removeprefix("whsec_"))
    by_hand = hmac.new(key, f"{SW_ID}.{SW_STAMP}.".encode() + SW_BODY, hashlib.sha256).digest()
    assert "v1," + base64.b64encode(by_hand).decode() == SW_SIGNATURE
    assert standard_webhook_headers(SW_SECRET, SW_ID, SW_BODY, SW_STAMP)["webhook-signature"] == SW_SIGNATURE


@respx.mock
@pytest.mark.parametrize("good", [True, False], ids=["signed by hand", "one byte off"])
async def test_replicate_provider_accepts_a_hand_signed_delivery_only(good: bool) -> None:
    """The library checks the clock itself, so the vector is signed by hand for now."""
    body = json.dumps(load("replicate", "prediction_succeeded")).encode()
    stamp = str(int(time.time()))
    key = base64.b64decode(SW_SECRET.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"{SW_ID}.{stamp}.".encode() + body, hashlib.sha256).digest())
    headers = {
        "webhook-id": SW_ID,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + (signature.decode() if good else flip(signature.decode())),
    }
    respx.get("https://replicate.test/v1/webhooks/default/secret").respond(json={"key": SW_SECRET})
    async with httpx.AsyncClient() as http:
        replicate = ReplicateProvider(api_token="r8_k", base_url="https://replicate.test", http=http)
        if not good:
            with pytest.raises(WebhookRejected):
                await replicate.parse_webhook(headers, body)
            return
        update = await replicate.parse_webhook(headers, body)
    assert (update.task_id, update.status) == ("gm3qorzdhgbfurvjtvhg6dckhu", JobStatus.COMPLETED)


# The local provider (our own scheme, README): hex HMAC-SHA256 over "task_id.timestamp".
LOCAL_SIGNATURE = "714ecf1ac6457fa67297fa50a0d7757e0e0f97093b9fa91ba152d6afdbe66bbc"


def test_local_vector_is_the_documented_algorithm() -> None:
    by_hand = hmac.new(b"local-secret", f"task-1.{STAMP}".encode(), hashlib.sha256).hexdigest()
    assert by_hand == LOCAL_SIGNATURE
    assert local_headers("local-secret", "task-1", STAMP)["x-local-signature"] == LOCAL_SIGNATURE


@pytest.mark.parametrize("good", [True, False], ids=["known answer", "one byte off"])
async def test_local_provider_accepts_a_hand_signed_callback_only(good: bool) -> None:
    stamp = str(int(time.time()))
    digest = hmac.new(b"local-secret", f"task-1.{stamp}".encode(), hashlib.sha256).hexdigest()
    headers = {"x-local-timestamp": stamp, "x-local-signature": digest if good else flip(digest)}
    body = json.dumps({"task_id": "task-1", "status": "running", "result_urls": [], "error": None}).encode()
    async with httpx.AsyncClient() as http:
        local = LocalProvider(db=Database("sqlite://"), own_url="http://app", http=http, secret="local-secret")
        if not good:
            with pytest.raises(WebhookRejected):
                await local.parse_webhook(headers, body)
            return
        update = await local.parse_webhook(headers, body)
    assert update.task_id == "task-1"
