#!/usr/bin/env python3
"""Regenerates the malformed-input corpus in this directory.

Each file is one input; its name is `<exit code>-<what it is>.<ext>`, the
exit code credstore must give for it (0: accepted). The directory names the
parser: tokens/ (agent identity JWTs), api_keys/, documents/ (the stored
form, SPEC §2: a document error is 4, its token's error 3), keychain/ (a
keychain value: a document or a bare token). No file holds a real secret or
a private key: every `agent_private_key` here is malformed; valid-shaped
tokens are minted at test time (tests/common/tokens.rs). Inputs that carry
`corpus-canary` check that errors never echo content.

Usage: python3 tests/corpus/generate.py   (rewrites the four directories)
"""
import base64, json, os, shutil

HERE = os.path.dirname(os.path.abspath(__file__))


def b64u(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


HEADER = b64u('{"alg":"EdDSA","typ":"JWT"}')
SIG = b64u(b"signature-is-not-checked-corpus")
CLAIMS = {
    "agent_runtime_id": "rt-corpus-canary",
    "agent_private_key": "AAAA",
    "account_id": "acct-corpus-canary",
    "chatgpt_user_id": "user-corpus",
    "email": "corpus@example.com",
    "plan_type": "pro",
    "iat": 1700000000,
    "exp": 4000000000,
}


def tok(payload=None, header=HEADER, sig=SIG):
    if payload is None:
        payload = CLAIMS
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    return f"{header}.{b64u(payload)}.{sig}"


def claims(**kw):
    c = dict(CLAIMS)
    for k, v in kw.items():
        if v is DROP:
            c.pop(k)
        else:
            c[k] = v
    return c


DROP = object()

tokens = {
    "empty": "",
    "whitespace-only": " \n\t\r\n",
    "one-segment": "abcdef",
    "two-segments": f"{HEADER}.{b64u('{}')}",
    "four-segments": tok() + ".x",
    "empty-header-segment": f".{b64u('{}')}.{SIG}",
    "empty-payload-segment": f"{HEADER}..{SIG}",
    "empty-signature-segment": f"{HEADER}.{b64u('{}')}.",
    "only-dots": "..",
    "padding-in-segment": f"{HEADER}=.{b64u('{}')}.{SIG}",
    "space-inside": tok()[:20] + " " + tok()[20:],
    "tab-inside": tok()[:20] + "\t" + tok()[20:],
    "cr-inside": tok()[:20] + "\r" + tok()[20:],
    "nul-inside": tok()[:20] + "\0" + tok()[20:],
    "nul-at-end": tok() + "\0",
    "non-ascii-inside": tok()[:20] + "é" + tok()[20:],
    "standard-base64-plus": tok()[:20] + "+" + tok()[20:],
    "standard-base64-slash": tok()[:20] + "/" + tok()[20:],
    "header-bad-base64-length": f"abcde.{b64u('{}')}.{SIG}",
    "payload-bad-base64-length": f"{HEADER}.abcde.{SIG}",
    "signature-bad-base64-length": f"{HEADER}.{b64u(json.dumps(CLAIMS))}.abcde",
    "header-not-json": tok(header=b64u("not json")),
    "header-json-array": tok(header=b64u('["EdDSA"]')),
    "header-json-string": tok(header=b64u('"EdDSA"')),
    "header-alg-number": tok(header=b64u('{"alg":5}')),
    "header-alg-null": tok(header=b64u('{"alg":null}')),
    "header-no-alg": tok(header=b64u('{"typ":"JWT"}')),
    "header-truncated-json": tok(header=b64u('{"alg":"Ed')),
    "payload-not-json": tok("corpus-canary not json"),
    "payload-json-array": tok('["corpus-canary"]'),
    "payload-json-string": tok('"corpus-canary"'),
    "payload-json-number": tok("12345"),
    "payload-json-null": tok("null"),
    "payload-empty-object": tok("{}"),
    "payload-duplicate-claim": tok('{"exp":1,"exp":2}'),
    "payload-trailing-garbage": tok(json.dumps(CLAIMS) + " corpus-canary"),
    "payload-truncated": tok(json.dumps(CLAIMS)[:-1]),
    "payload-with-bom": tok("\ufeff" + json.dumps(CLAIMS)),
    "payload-utf16": f"{HEADER}.{b64u(json.dumps(CLAIMS).encode('utf-16'))}.{SIG}",
    "payload-invalid-utf8": HEADER + "." + b64u(b'{"email":"\xff\xfe"}') + "." + SIG,
    "payload-lone-surrogate": tok(json.dumps(CLAIMS)[:-1] + ',"email":"\\ud800"}'),
    "payload-deeply-nested-exp": tok(json.dumps(claims(exp=DROP))[:-1] + ',"exp":' + "[" * 300 + "]" * 300 + "}"),
    "payload-deeply-nested-objects": tok("{\"a\":" * 2000 + "1" + "}" * 2000),
    "claim-exp-huge-float": tok(json.dumps(claims(exp=DROP))[:-1] + ',"exp":1e400}'),
    "claim-exp-beyond-i64": tok(json.dumps(claims(exp=DROP))[:-1] + ',"exp":9223372036854775808}'),
    "claim-exp-float": tok(claims(exp=1.5)),
    "claim-exp-string": tok(claims(exp="4000000000")),
    "claim-iat-null": tok(claims(iat=None)),
    "claim-iat-bool": tok(claims(iat=True)),
    "claim-agent-runtime-id-empty": tok(claims(agent_runtime_id="")),
    "claim-agent-runtime-id-number": tok(claims(agent_runtime_id=7)),
    "claim-account-id-empty": tok(claims(account_id="")),
    "claim-account-id-object": tok(claims(account_id={"id": "corpus-canary"})),
    "claim-email-array": tok(claims(email=["corpus-canary"])),
    "claim-plan-type-null": tok(claims(plan_type=None)),
    "claim-user-id-number": tok(claims(chatgpt_user_id=12)),
    "claim-fedramp-string": tok(claims(chatgpt_account_is_fedramp="true")),
    "claim-fedramp-number": tok(claims(chatgpt_account_is_fedramp=1)),
    "key-not-pkcs8": tok(claims(agent_private_key="AAAA")),
    "key-not-base64": tok(claims(agent_private_key="corpus-canary not base64!")),
    "key-base64url-alphabet": tok(claims(agent_private_key="MC4CAQAwBQYDK2VwBCIEI-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-")),
    "key-empty": tok(claims(agent_private_key="")),
    "key-number": tok(claims(agent_private_key=42)),
    "key-null": tok(claims(agent_private_key=None)),
    "key-truncated-pkcs8-prefix": tok(claims(agent_private_key="MC4CAQAwBQYDK2VwBCIEIA==")),
    "key-wrong-oid-prefix": tok(claims(agent_private_key=base64.b64encode(bytes.fromhex("302e020100300506032b656f04220420") + bytes(32)).decode())),
    "trailing-crlf-bad-key": tok() + "\r\n",
    "oversize-16385-bytes": "a" * 16385,
    "oversize-jwt-shape": tok(claims(pad="x" * 13000)),
}
for name in ["agent_runtime_id", "agent_private_key", "account_id", "chatgpt_user_id",
             "email", "plan_type", "iat", "exp"]:
    tokens["missing-" + name.replace("_", "-")] = tok(claims(**{name: DROP}))

api_keys = {
    "0-simple": "sk-corpus-not-a-secret",
    "0-trailing-crlf": "sk-corpus-not-a-secret\r\n",
    "0-surrounding-whitespace": " \t sk-corpus-not-a-secret \n",
    "0-unicode": "ключ-🔑-corpus",
    "0-quotes-and-backslashes": 'sk-"corpus"\\back\\',
    "0-byte-order-mark-is-dropped": "\ufeffsk-corpus",
    "0-jwt-shape": "a.b.c",
    "0-at-limit-4096": "k" * 4096,
    "3-over-limit-4097": "k" * 4097,
    "3-empty": "",
    "3-whitespace-only": " \r\n\t ",
    "3-space-inside": "sk-corpus canary",
    "3-tab-inside": "sk-corpus\tcanary",
    "3-newline-inside": "sk-corpus\ncanary",
    "3-nul-inside": "sk-corpus\0canary",
    "3-control-0x01": "sk-corpus\x01canary",
    "3-delete-0x7f": "sk-corpus\x7fcanary",
    "3-c1-control": "sk-corpus\u0085canary",
    "3-no-break-space": "sk-corpus\u00a0canary",
    "3-line-separator": "sk-corpus\u2028canary",
    "3-ideographic-space": "sk-corpus\u3000canary",
    "3-invalid-utf8": b"sk-corpus-\xff\xfe",
    "3-overlong-utf8": b"sk-corpus-\xc0\xaf",
    "3-utf16le": "sk-corpus".encode("utf-16-le"),
}

AK = "sk-corpus-not-a-secret"
documents = {
    "4-empty": "",
    "4-whitespace-only": " \n",
    "4-null": "null",
    "4-array": '["corpus-canary"]',
    "4-string": '"corpus-canary"',
    "4-number": "42",
    "4-open-brace": "{",
    "4-empty-object": "{}",
    "4-truncated": '{"api_key":"corpus-canary',
    "4-trailing-comma": '{"api_key":"k",}',
    "4-trailing-garbage": '{"api_key":"k"} corpus-canary',
    "4-two-documents": '{"api_key":"k"}{"api_key":"corpus-canary"}',
    "4-duplicate-field": '{"api_key":"corpus-canary","api_key":"corpus-canary"}',
    "4-both-fields-no-mode": f'{{"api_key":"{AK}","agent_identity":"a.b.c"}}',
    "4-mode-unknown": '{"auth_mode":"corpus-canary","api_key":"k"}',
    "4-mode-number": '{"auth_mode":1,"api_key":"k"}',
    "4-mode-null": '{"auth_mode":null,"api_key":"k"}',
    "4-mode-names-missing-field": '{"auth_mode":"api_key","agent_identity":"a.b.c"}',
    "4-mode-agent-identity-missing": '{"auth_mode":"agent_identity","api_key":"k"}',
    "4-api-key-null": '{"api_key":null}',
    "4-api-key-number": '{"api_key":12345}',
    "4-api-key-object": '{"api_key":{"value":"corpus-canary"}}',
    "4-agent-identity-array": '{"agent_identity":["a","b","c"]}',
    "4-api-key-deeply-nested": '{"api_key":' + "[" * 5000 + "]" * 5000 + "}",
    "4-lone-surrogate-escape": '{"api_key":"\\ud800"}',
    "0-byte-order-mark": "\ufeff" + f'{{"api_key":"{AK}"}}',
    "4-utf16": f'{{"api_key":"{AK}"}}'.encode("utf-16"),
    "4-nul-between-tokens": '{"api_key":\0"k"}',
    "4-raw-nul-in-string": '{"api_key":"k\0corpus-canary"}',
    "4-comment": '// corpus-canary\n{"api_key":"k"}',
    "4-single-quotes": "{'api_key':'k'}",
    "4-invalid-utf8-in-string": b'{"api_key":"\xff\xfe"}',
    "3-api-key-empty": '{"api_key":""}',
    "3-api-key-space-inside": '{"api_key":"sk-corpus canary"}',
    "3-api-key-escaped-nul": '{"api_key":"sk-corpus\\u0000canary"}',
    "3-api-key-escaped-newline": '{"api_key":"sk-corpus\\ncanary"}',
    "3-api-key-over-limit": '{"auth_mode":"api_key","api_key":"' + "k" * 4097 + '"}',
    "3-agent-identity-not-a-jwt": '{"auth_mode":"agent_identity","agent_identity":"not.a.jwt"}',
    "3-agent-identity-empty": '{"agent_identity":""}',
    "3-agent-identity-bad-key": json.dumps({"auth_mode": "agent_identity", "agent_identity": tok()}),
    "3-agent-identity-missing-claim": json.dumps({"agent_identity": tok(claims(exp=DROP))}),
    "0-api-key": f'{{"auth_mode":"api_key","api_key":"{AK}"}}\n',
    "0-api-key-inferred": f'{{"api_key":"{AK}"}}',
    "0-unknown-fields-ignored": f'{{"api_key":"{AK}","v":2,"extra":[1,{{"a":null}}]}}',
    "0-mode-chooses-between-both": f'{{"auth_mode":"api_key","api_key":"{AK}","agent_identity":"x"}}',
    "0-escaped-unicode": '{"api_key":"sk-corpus-\\u00e9\\ud83d\\ude00"}',
    "0-pretty-printed": f'{{\n  "auth_mode": "api_key",\n  "api_key": "{AK}"\n}}\n',
    "0-leading-whitespace": f' \n\t{{"api_key":"{AK}"}}',
}

keychain = {
    "0-bare-api-key": AK,
    "0-bare-api-key-newline": AK + "\n",
    "0-document": f'{{"auth_mode":"api_key","api_key":"{AK}"}}',
    "0-document-leading-whitespace": f'  {{"api_key":"{AK}"}}',
    "3-bare-jwt-shape-garbage": "aGVh.cGF5.c2ln",
    "3-bare-jwt-bad-key": tok(),
    "3-bare-key-space-inside": "sk-corpus canary",
    "3-empty": "",
    "0-bare-two-segments-is-an-api-key": "aGVh.cGF5",
    "4-invalid-utf8": b"\xff\xfe corpus",
    "4-corrupt-json": '{"api_key":',
    "4-document-both-fields": '{"api_key":"k","agent_identity":"a.b.c"}',
}


def write(sub, files, ext, default_code=None):
    d = os.path.join(HERE, sub)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, content in files.items():
        if default_code is not None:
            name = f"{default_code}-{name}"
        data = content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
        with open(os.path.join(d, f"{name}.{ext}"), "wb") as f:
            f.write(data)


write("tokens", tokens, "jwt", 3)
write("api_keys", api_keys, "txt")
write("documents", documents, "json")
write("keychain", keychain, "val")
print(sum(map(len, [tokens, api_keys, documents, keychain])), "files")
