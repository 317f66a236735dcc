#!/usr/bin/env python3
"""A webhook receiver for trying the platform out: prints every delivery and checks its
signatures with nothing but Python's standard library.

    python3 infra/scripts/receiver.py --secret my-signing-secret [--port 8000]

It checks X-Hub-Signature (HMAC-SHA1), X-Hub-Signature-256 (HMAC-SHA256) and the
Standard Webhooks `webhook-signature` (base64 HMAC-SHA256 of "id.timestamp.body"),
and answers 200.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import time


def standard_key(secret: bytes) -> bytes:
    """The key of `webhook-signature`: for a `whsec_` secret the bytes its base64 encodes,
    as the Standard Webhooks libraries read it; any other secret is its own bytes."""
    if secret.startswith(b"whsec_"):
        try:
            decoded = base64.b64decode(secret[len(b"whsec_"):], validate=True)
            if decoded:
                return decoded
        except ValueError:
            pass
    return secret


def check(secret: bytes, headers, body: bytes) -> list[str]:
    """The X-Hub-* headers are keyed by the secret exactly as shown (GitHub's way, a
    string); webhook-signature by its standard key."""
    lines = []
    expected = {
        "X-Hub-Signature": "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
    }
    for name, want in expected.items():
        got = headers.get(name)
        lines.append(f"  {name}: {'valid' if got and hmac.compare_digest(got, want) else 'INVALID or missing'}")
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "0")
    signed = f"{msg_id}.{ts}.".encode() + body
    want = "v1," + base64.b64encode(hmac.new(standard_key(secret), signed, hashlib.sha256).digest()).decode()
    offered = headers.get("webhook-signature", "").split()
    fresh = abs(time.time() - int(ts)) < 300
    ok = any(hmac.compare_digest(o, want) for o in offered) and fresh
    lines.append(f"  webhook-signature: {'valid' if ok else 'INVALID, stale or missing'}")
    return lines


# What the platform itself sets on every delivery; anything else is the subscription's own
# `headers` (and User-Agent, which they may replace).
PLATFORM_HEADERS = {
    "host", "content-length", "content-type", "accept", "x-accelo-event", "webhook-id",
    "webhook-timestamp", "webhook-signature", "x-hub-signature", "x-hub-signature-256",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--secret", default="", help="the subscription's secret, to check signatures")
    args = parser.parse_args()
    secret = args.secret.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            print(f"\n{self.headers.get('X-Accelo-Event')} delivery {self.headers.get('webhook-id')}")
            print(f"  Content-Type: {self.headers.get('Content-Type')}")
            for name, value in self.headers.items():
                if name.lower() not in PLATFORM_HEADERS:
                    print(f"  {name}: {value}")
            print(f"  body: {body.decode(errors='replace')}")
            if secret:
                print("\n".join(check(secret, self.headers, body)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_):
            pass

    print(f"listening on http://127.0.0.1:{args.port}/hook")
    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
