#!/usr/bin/env python3
"""Print a `[[sasl.scram_user]]` block for samsa's config file.

The password is read from stdin (or prompted for on a terminal) and only its SCRAM keys
are printed (RFC 5802: SaltedPassword = PBKDF2-HMAC(password, salt, iterations),
StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword,
"Server Key")), so the password never lands in the config or the data directory.

    printf '%s' "$PASSWORD" | scripts/scram-credential.py alice SCRAM-SHA-256 >> samsa.toml
"""

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import sys

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


def credential(password: bytes, mechanism: str, iterations: int, salt: bytes) -> dict:
    h = HASHES[mechanism]
    salted = hashlib.pbkdf2_hmac(h, password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    return {
        "salt": salt,
        "stored_key": hashlib.new(h, client_key).digest(),
        "server_key": hmac.new(salted, b"Server Key", h).digest(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("user")
    parser.add_argument("mechanism", choices=sorted(HASHES))
    parser.add_argument("--iterations", type=int, default=4096, help="4096..16384 (default 4096)")
    args = parser.parse_args()
    if not 4096 <= args.iterations <= 16384:
        parser.error("iterations must be between 4096 and 16384")
    password = getpass.getpass() if sys.stdin.isatty() else sys.stdin.read().rstrip("\n")
    if not password:
        parser.error("empty password")
    c = credential(password.encode(), args.mechanism, args.iterations, os.urandom(24))
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    print("[[sasl.scram_user]]")
    print(f'name = "{args.user}"')
    print(f'mechanism = "{args.mechanism}"')
    print(f'salt = "{b64(c["salt"])}"')
    print(f"iterations = {args.iterations}")
    print(f'stored_key = "{b64(c["stored_key"])}"')
    print(f'server_key = "{b64(c["server_key"])}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
