"""Verify a webhook delivery with a plain function, in any framework (here: raw values).

    python verify.py
"""

from __future__ import annotations

from pushhub_client import WebhookRejected, verify_webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def handle(headers: dict[str, str], body: bytes, now: float | None = None) -> tuple[int, str]:
    try:
        webhook = verify_webhook(SECRET, headers, body, now=now)  # raw bytes, before any parsing
    except WebhookRejected as exc:
        return exc.status, exc.message
    return 200, f"accepted {webhook.id}: {webhook.json()}"


if __name__ == "__main__":
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    print(handle(headers, b'{"test": 2432232314}', now=1614265330))
    print(handle(headers, b'{"test": 1}', now=1614265330))
    print(handle(headers, b'{"test": 2432232314}'))
