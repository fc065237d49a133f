#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/: valid frames of every
kind, plus a few near-misses. Re-run after a protocol change; libFuzzer adds
its own finds next to these (those are not committed)."""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")


def mp(v):
    """A tiny MessagePack encoder (maps, arrays, str, int, bool, nil, float)."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if 0 <= v < 2**32:
            return b"\xce" + struct.pack(">I", v)
        if 0 <= v < 2**64:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


FRAMES = [
    {"type": "join", "room": "lobby", "ref": 1},
    {"type": "leave", "room": "lobby", "ref": "r2"},
    {"type": "send", "to": "bob", "content": {"text": "hi", "n": [1, 2.5, None, True]}, "ref": 3},
    {"type": "publish", "room": "org:1.chat", "content": "hello"},
    {"type": "broadcast", "content": None},
    {"type": "ack", "id": "0190b0c8-0000-7000-8000-000000000000"},
    {"type": "ack", "ids": ["a", "b", "c"]},
    {"type": "typing", "to": "bob"},
    {"type": "typing", "room": "lobby"},
    {"type": "presence", "user": "bob", "ref": 9},
    {"type": "presence", "room": "lobby"},
    {"type": "ping", "ref": "p"},
    {"type": "refresh", "token": "eyJhbGciOiJIUzI1NiJ9.e30.x"},
    {"type": "nope"},
    {"ref": 1},
]


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(header, claims, secret=b"fuzz-secret"):
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)


def main():
    for i, f in enumerate(FRAMES):
        write("decode_json", f"frame{i:02}.json", json.dumps(f).encode())
        write("decode_msgpack", f"frame{i:02}.mp", mp(f))
    write("decode_json", "nested", b'{"type":"send","to":"b","content":' + b"[" * 200)
    write("decode_json", "dupkey", b'{"type":"join","type":"leave","room":"r"}')
    write("decode_msgpack", "hugearray", b"\x81\xa4type\xdd\xff\xff\xff\xff")
    write("decode_msgpack", "hugemap", b"\xdf\xff\xff\xff\xff")
    write("decode_msgpack", "hugestr", b"\x81\xa4type\xdb\xff\xff\xff\xff")
    # Deep nesting: the decoders must stay within a tokio worker's stack.
    write("decode_msgpack", "deep", b"\x83\xa4type\xa4send\xa2to\xa3bob\xa7content" + b"\x91" * 3000 + b"\xc0")
    write("bus_envelope", "deep", b"\x82\xa6origin\xa2n1\xa5event" + b"\x91" * 3000 + b"\xc0")

    msg = {"id": "0190b0c8-0000-7000-8000-000000000000", "kind": "direct", "from": "alice",
           "to": "bob", "content": {"x": 1}, "time": 1700000000000}
    envelopes = [
        {"origin": "n1", "event": {"t": "message", "message": msg, "accepted_ms": 1700000000000}},
        {"origin": "n1", "event": {"t": "message", "message": dict(msg, kind="room", to=None, room="r"),
                                   "accepted_ms": 1}},
        {"origin": "n2", "event": {"t": "presence", "room": "r", "event": "join", "user": "bob"}},
        {"origin": "n2", "event": {"t": "typing", "from": "a", "to": "b", "room": None}},
        {"origin": "n3", "event": {"t": "receipt", "to": "a", "id": "m1", "by": "b"}},
        {"origin": "n3", "event": {"t": "disconnect", "user": "bob", "code": 1008}},
    ]
    for i, e in enumerate(envelopes):
        write("bus_envelope", f"env{i}.mp", mp(e))

    now = 1_900_000_000
    good = {"sub": "alice", "exp": now, "iss": "https://issuer.example", "aud": "wsgate"}
    tokens = [
        jwt({"alg": "HS256", "typ": "JWT"}, good),
        jwt({"alg": "HS256", "typ": "JWT"}, dict(good, caps=["broadcast"], rooms=["team-*"], nbf=1, iat=1)),
        jwt({"alg": "none", "typ": "JWT"}, good).rsplit(".", 1)[0] + ".",
        jwt({"alg": "RS256", "typ": "JWT"}, good),
        jwt({"alg": "HS256"}, {"sub": "a b", "exp": 1}),
        "not.a.token",
    ]
    for i, t in enumerate(tokens):
        write("token", f"tok{i}", t.encode())

    bodies = [
        {"to": "bob", "content": {"text": "hi"}},
        {"to": "bob", "content": "x", "from": "billing"},
        {"room": "lobby", "content": [1, 2, 3]},
        {"broadcast": True, "content": None},
        {"to": "bob", "room": "lobby", "content": 1},
        {"to": "bob", "content": 1, "extra": True},
    ]
    for i, b in enumerate(bodies):
        write("api_publish_body", f"body{i}.json", json.dumps(b).encode())

    def frame(opcode, payload, fin=True, mask=b"\x01\x02\x03\x04"):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            head = bytes([b0, 0x80 | n])
        elif n < 65536:
            head = bytes([b0, 0x80 | 126]) + struct.pack(">H", n)
        else:
            head = bytes([b0, 0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        return head + mask + masked

    write("ws_frames", "text", frame(1, b'{"type":"ping"}'))
    write("ws_frames", "binary", frame(2, mp({"type": "ping"})))
    write("ws_frames", "fragmented", frame(1, b'{"type"', fin=False) + frame(0, b':"ping"}'))
    write("ws_frames", "ping_pong_close", frame(9, b"hi") + frame(10, b"") + frame(8, b"\x03\xe8bye"))
    write("ws_frames", "bad_utf8", frame(1, b"\xff\xfe"))
    write("ws_frames", "huge_len", bytes([0x82, 0xFF]) + struct.pack(">Q", 2**62) + b"\x00\x00\x00\x00")
    return 0


if __name__ == "__main__":
    sys.exit(main())
