#!/usr/bin/env python3
"""A stand-in auth API for credstore's task-registration tests (SPEC §7).

It is a real HTTP server on 127.0.0.1 (a free port chosen by the OS, printed
as "PORT <n>" on the first line of stdout). Every registration is checked
with libsodium (PyNaCl), an Ed25519 implementation independent of credstore's:

    POST /v1/agent/<runtime>/task/register
    {"timestamp": "<RFC 3339, seconds, Z>", "signature": base64(sign("<runtime>:<ts>"))}

A request that is not exactly that, or whose signature does not verify
against --public-key, gets 401. The answer's shape is chosen by the runtime
id, so one token per shape exercises the client:

    rt-plain        200 {"task_id": ...}
    rt-camel        200 {"taskId": ...}
    rt-sealed       200 {"encrypted_task_id": base64(crypto_box_seal(...))}
    rt-sealed-camel 200 {"encryptedTaskId": ...}
    rt-bad-seal     200 {"encrypted_task_id": base64(random bytes)}
    rt-empty        200 {}
    rt-not-json     200 text
    rt-400          400 with a 600-character body, then "TAIL-MARKER"
    rt-503          503 with a 5000-character body
    rt-hang         never answers (the client must time out)
    rt-slow         200 {"task_id": ...} after 0.5 s (for the race test)

The sealed box is made by libsodium to the X25519 key that libsodium derives
from the Ed25519 public key (crypto_sign_ed25519_pk_to_curve25519), so a
successful open checks credstore's key conversion too.

GET /count/<runtime> answers {"count": n}: how many registrations for that
runtime id passed the signature check.

Needs: Python 3 and PyNaCl (pip install pynacl). The test stops it by PID.
"""

import argparse
import base64
import binascii
import datetime
import json
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import nacl.exceptions
    import nacl.public
    import nacl.signing
    import nacl.utils
except ImportError:
    sys.stderr.write("authapi_server.py needs PyNaCl: pip install pynacl\n")
    sys.exit(3)

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
PATH_RE = re.compile(r"^/v1/agent/([^/]+)/task/register$")
COUNT_RE = re.compile(r"^/count/([^/]+)$")

COUNTS = {}
COUNTS_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    verify_key = None  # nacl.signing.VerifyKey, set in main()
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, why):
        self.answer(401, json.dumps({"error": why}))

    def do_GET(self):
        m = COUNT_RE.match(self.path)
        if not m:
            return self.answer(404, "{}")
        runtime = urllib.parse.unquote(m.group(1))
        with COUNTS_LOCK:
            n = COUNTS.get(runtime, 0)
        self.answer(200, json.dumps({"count": n}))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        m = PATH_RE.match(self.path)
        if not m:
            return self.answer(404, json.dumps({"error": "no such path"}))
        runtime = urllib.parse.unquote(m.group(1))
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self.refuse("content type is not application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            return self.refuse("body is not JSON")
        if not isinstance(body, dict) or set(body) != {"timestamp", "signature"}:
            return self.refuse("body must be exactly {timestamp, signature}")
        ts, sig_b64 = body["timestamp"], body["signature"]
        if not isinstance(ts, str) or not TS_RE.match(ts):
            return self.refuse("timestamp is not RFC 3339 seconds with Z")
        when = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
        if abs(time.time() - when.timestamp()) > 300:
            return self.refuse("timestamp is not within 5 minutes of now")
        try:
            sig = base64.b64decode(sig_b64, validate=True)
        except (binascii.Error, TypeError):
            return self.refuse("signature is not standard base64")
        if len(sig) != 64:
            return self.refuse("signature is not 64 bytes")
        try:
            self.verify_key.verify(f"{runtime}:{ts}".encode(), sig)
        except nacl.exceptions.BadSignatureError:
            return self.refuse("bad signature")
        with COUNTS_LOCK:
            COUNTS[runtime] = COUNTS.get(runtime, 0) + 1
        self.respond_for(runtime)

    def sealed(self, plaintext):
        pk = self.verify_key.to_curve25519_public_key()
        return base64.b64encode(nacl.public.SealedBox(pk).encrypt(plaintext)).decode()

    def respond_for(self, runtime):
        if runtime == "rt-plain":
            return self.answer(200, json.dumps({"task_id": "task-plain-1"}))
        if runtime == "rt-camel":
            return self.answer(200, json.dumps({"taskId": "task-camel-1"}))
        if runtime == "rt-sealed":
            return self.answer(200, json.dumps({"encrypted_task_id": self.sealed(b"task-sealed-1")}))
        if runtime == "rt-sealed-camel":
            return self.answer(200, json.dumps({"encryptedTaskId": self.sealed(b"task-sealed-2")}))
        if runtime == "rt-bad-seal":
            junk = base64.b64encode(nacl.utils.random(80)).decode()
            return self.answer(200, json.dumps({"encrypted_task_id": junk}))
        if runtime == "rt-empty":
            return self.answer(200, "{}")
        if runtime == "rt-not-json":
            return self.answer(200, "hello", "text/plain")
        if runtime == "rt-400":
            return self.answer(400, "E" * 600 + "TAIL-MARKER", "text/plain")
        if runtime == "rt-503":
            return self.answer(503, "S" * 5000, "text/plain")
        if runtime == "rt-hang":
            time.sleep(3600)
            return None
        if runtime == "rt-slow":
            time.sleep(0.5)
            return self.answer(200, json.dumps({"task_id": "task-slow-1"}))
        return self.answer(404, json.dumps({"error": "unknown runtime"}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--public-key", required=True, help="agent Ed25519 public key, hex")
    args = p.parse_args()
    Handler.verify_key = nacl.signing.VerifyKey(bytes.fromhex(args.public_key))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
