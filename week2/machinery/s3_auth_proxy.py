"""The auth proxy of scenario 3's S3 server: which access key ID exists, and the secret to check it by.

`rclone serve s3 --auth-proxy PROGRAM` runs PROGRAM for each access key ID that requests are signed
with, giving it `{"user": "<access key ID>", "client_ip": "..."}` on stdin, and reads on stdout the
backend that key ID stores to and the secret its signatures must be made with. This one knows a
single key pair, the generated one, and stores to the bucket folder; any other key ID gets no secret,
so rclone refuses its requests. With an auth proxy rclone also answers an unsigned request
403 AccessDenied, as S3 does for a private bucket (with `--auth-key` it answers 400).

The key pair and the folder come through the environment `servers._start_s3` gives rclone, which
rclone passes on. Standard library only: it runs as a program of its own (`python -I`).
"""

from __future__ import annotations

import hmac
import json
import os
import sys
from collections.abc import Mapping

ACCESS_KEY_ID = "WEEK2_S3_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "WEEK2_S3_SECRET_ACCESS_KEY"
ROOT = "WEEK2_S3_ROOT"


def answer(request: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """The backend rclone is to use for `request`; with the secret only for the generated key ID."""
    backend = {"type": "local", "_root": env[ROOT]}
    asked = str(request.get("user", "")).encode()
    if hmac.compare_digest(asked, env[ACCESS_KEY_ID].encode()):
        backend["_secret_access_key"] = env[SECRET_ACCESS_KEY]
    return backend


def main() -> None:
    json.dump(answer(json.load(sys.stdin), os.environ), sys.stdout)


if __name__ == "__main__":
    main()
