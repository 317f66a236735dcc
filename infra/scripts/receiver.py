#!/usr/bin/env python3
"""A webhook receiver for trying the platform out: prints every delivery and checks its
signatures with nothing but Python's standard library.

    python3 infra/scripts/receiver.py --secret my-signing-secret [--port 8000]

It checks X-Hub-Signature (HMAC-SHA1), X-Hub-Signature-256 (HMAC-SHA256) and the
Standard Webhooks `webhook-signature` (base64 HMAC-SHA256 of "id.timestamp.body"),
and answers 200.

With --access it plays the product's access check instead (WEBHOOKS_ACCESS_CHECK_URL):

    python3 infra/scripts/receiver.py --access --secret whsec_... [--allow 1,7] [--port 8001]

Each question, {"deployment", "event_id", "object_id", "resource_url", "users": [...]},
must carry a valid `webhook-signature` under the installation's secret (--secret, the
WEBHOOKS_ACCESS_CHECK_SECRET), or it is answered 401. The answer, {"visible_to": [...]},
names the users asked about that --allow lists, or all of them without --allow; each
question and answer is printed. --port 0 takes a free port (printed).
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import sys
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
    ok = standard_signature_valid(secret, headers, body)
    lines.append(f"  webhook-signature: {'valid' if ok else 'INVALID, stale or missing'}")
    return lines


def standard_signature_valid(secret: bytes, headers, body: bytes) -> bool:
    """`webhook-signature` holds a v1 signature of "id.timestamp.body" under the secret's
    standard key, and `webhook-timestamp` is within 5 minutes of now."""
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    try:
        fresh = abs(time.time() - int(ts)) < 300
    except ValueError:
        return False
    signed = f"{msg_id}.{ts}.".encode() + body
    want = "v1," + base64.b64encode(hmac.new(standard_key(secret), signed, hashlib.sha256).digest()).decode()
    offered = headers.get("webhook-signature", "").split()
    return fresh and any(hmac.compare_digest(o, want) for o in offered)


def answer_question(question, allow: set[str] | None) -> dict:
    """The access check's answer: the users asked about that `allow` names (by their
    decimal spelling, so 7 and "7" are the same user), or all of them."""
    users = question["users"]
    if not isinstance(users, list):
        raise ValueError("users is not a list")
    named = [u for u in users if allow is None or str(u) in allow]
    return {"visible_to": named}


# What the platform itself sets on every delivery; anything else is the subscription's own
# `headers` (and User-Agent, which they may replace).
PLATFORM_HEADERS = {
    "host", "content-length", "content-type", "accept", "x-accelo-event", "webhook-id",
    "webhook-timestamp", "webhook-signature", "x-hub-signature", "x-hub-signature-256",
}


class AccessHandler(http.server.BaseHTTPRequestHandler):
    """The product's access-check endpoint; `secret` and `allow` are set by main."""

    secret = b""
    allow: set[str] | None = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(f"\naccess check {self.headers.get('webhook-id')}")
        print(f"  body: {body.decode(errors='replace')}")
        if not standard_signature_valid(self.secret, self.headers, body):
            print("  webhook-signature: INVALID, stale or missing: 401")
            self.reply(401, {"error": "invalid signature"})
            return
        try:
            answer = answer_question(json.loads(body), self.allow)
        except (ValueError, KeyError, TypeError) as e:
            print(f"  not a question ({e}): 400")
            self.reply(400, {"error": "not a question"})
            return
        print(f"  webhook-signature: valid\n  answer: {json.dumps(answer)}")
        self.reply(200, answer)

    def reply(self, status: int, tree: dict):
        data = json.dumps(tree).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, help="where to listen (default 8000; 8001 with --access; 0 for a free port)")
    parser.add_argument("--secret", default="", help="the subscription's secret, to check signatures (with --access: the access check's whsec_ secret)")
    parser.add_argument("--access", action="store_true", help="answer as the product's access-check endpoint")
    parser.add_argument("--allow", help="with --access: the user ids to name, comma-separated (default: every user asked about)")
    args = parser.parse_args()
    secret = args.secret.encode()
    # Each line as it is printed, also into a pipe.
    sys.stdout.reconfigure(line_buffering=True)

    if args.access:
        if not secret:
            parser.error("--access needs --secret, the access check's whsec_ secret")
        AccessHandler.secret = secret
        if args.allow is not None:
            AccessHandler.allow = {u.strip() for u in args.allow.split(",") if u.strip()}
        port = 8001 if args.port is None else args.port
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), AccessHandler)
        print(f"listening on http://127.0.0.1:{server.server_address[1]}/access")
        server.serve_forever()
    elif args.allow is not None:
        parser.error("--allow applies only with --access")

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

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 8000 if args.port is None else args.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/hook")
    server.serve_forever()


if __name__ == "__main__":
    main()
