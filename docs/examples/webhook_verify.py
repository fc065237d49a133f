"""Verifies wsgate's X-Wsgate-Signature (docs/webhooks.md). Standard library only."""
import hashlib
import hmac
import os
import sys
import time


def verify(secret: bytes, header: str, body: bytes, window: int = 300) -> bool:
    """True when `header` signs `body` (the exact bytes) under `secret`,
    with a timestamp at most `window` seconds from now."""
    parts = dict(p.split("=", 1) for p in (header or "").split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > window:  # replay window
        return False
    want = hmac.new(secret, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want.encode(), parts.get("v1", "").encode())


if __name__ == "__main__":
    # python3 webhook_verify.py HEADER BODY_FILE (secret in WSGATE_WEBHOOK_SECRET): exit 0 when valid
    with open(sys.argv[2], "rb") as f:
        ok = verify(os.environ["WSGATE_WEBHOOK_SECRET"].encode(), sys.argv[1], f.read())
    print("valid" if ok else "invalid")
    sys.exit(0 if ok else 1)
