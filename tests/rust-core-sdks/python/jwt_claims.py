"""Reading a JWT's claims without checking it: a test looks at what it was given."""

from __future__ import annotations

import base64
import json


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def video_grant(token: str) -> dict:
    return claims(token).get("video", {})
