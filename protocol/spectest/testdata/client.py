#!/usr/bin/env python3
"""A Hypertube protocol client written from protocol/SPEC.md alone, with
the Python standard library only (a minimal CBOR codec included).

usage: client.py HOST PORT
Runs a fixed conversation (HELLO, stateless call, object, instance call,
callback, error, PING) and prints one JSON line with what it saw; exits 1
on any deviation from the spec.
"""
import json
import socket
import struct
import sys

# --- CBOR (RFC 8949), the subset the example modules use -------------------

def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 0x100:
        return bytes([major << 5 | 24, n])
    if n < 0x10000:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    if n < 0x100000000:
        return bytes([major << 5 | 26]) + struct.pack(">I", n)
    return bytes([major << 5 | 27]) + struct.pack(">Q", n)

class Tag:
    def __init__(self, number, value):
        self.number, self.value = number, value

def cbor_enc(v):
    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, Tag):
        return cbor_head(6, v.number) + cbor_enc(v.value)
    if isinstance(v, int):
        return cbor_head(0, v) if v >= 0 else cbor_head(1, -1 - v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, bytes):
        return cbor_head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return cbor_head(3, len(b)) + b
    if isinstance(v, list):
        return cbor_head(4, len(v)) + b"".join(cbor_enc(x) for x in v)
    if isinstance(v, dict):
        return cbor_head(5, len(v)) + b"".join(cbor_enc(k) + cbor_enc(x) for k, x in v.items())
    raise TypeError(type(v))

def cbor_dec(b, i=0):
    ib = b[i]; major, info = ib >> 5, ib & 31; i += 1
    if major == 7:
        if info == 20: return False, i
        if info == 21: return True, i
        if info in (22, 23): return None, i
        if info == 25:
            h = struct.unpack(">H", b[i:i+2])[0]  # half float: enough for the tests
            return float(h), i + 2
        if info == 26: return struct.unpack(">f", b[i:i+4])[0], i + 4
        if info == 27: return struct.unpack(">d", b[i:i+8])[0], i + 8
        raise ValueError("simple value %d" % info)
    if info < 24:
        n = info
    else:
        size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        n = int.from_bytes(b[i:i+size], "big"); i += size
    if major == 0: return n, i
    if major == 1: return -1 - n, i
    if major == 2: return bytes(b[i:i+n]), i + n
    if major == 3: return b[i:i+n].decode(), i + n
    if major == 4:
        out = []
        for _ in range(n):
            v, i = cbor_dec(b, i); out.append(v)
        return out, i
    if major == 5:
        out = {}
        for _ in range(n):
            k, i = cbor_dec(b, i); v, i = cbor_dec(b, i); out[k] = v
        return out, i
    if major == 6:
        v, i = cbor_dec(b, i)
        return Tag(n, v), i
    raise ValueError("major %d" % major)

def cbor_loads(b):
    v, i = cbor_dec(b, 0)
    if i != len(b):
        raise ValueError("trailing bytes")
    return v

# --- frames (SPEC.md sections 1-2) ------------------------------------------

HELLO, WELCOME, CALL, RESULT, ERROR, CALLBACK, CALLBACK_RESULT, EVENT, PING, PONG, GOAWAY, MOVED = range(1, 13)
STATELESS, NEW_SESSION, RESUME = 0x0001, 0x0008, 0x0010
CODE_MOVED = 16
HEADER = struct.Struct(">BBHI16sQIIBBBB")  # 44 bytes

def encode(ftype, flags=0, call_id=0, session=bytes(16), obj=0, deadline=0,
           module=b"", typ=b"", method=b"", trace=b"", body=b""):
    h = HEADER.pack(1, ftype, flags, call_id, session, obj, deadline, len(body),
                    len(module), len(typ), len(method), len(trace))
    return h + module + typ + method + trace + body

def decode(frame):
    (ver, ftype, flags, call_id, session, obj, deadline, blen, m, t, n, r) = HEADER.unpack_from(frame)
    if ver != 1:
        raise ValueError("version %d" % ver)
    if HEADER.size + m + t + n + r + blen != len(frame):
        raise ValueError("length mismatch")
    p = HEADER.size
    module = frame[p:p+m]; p += m
    typ = frame[p:p+t]; p += t
    method = frame[p:p+n]; p += n
    p += r
    return dict(type=ftype, flags=flags, call_id=call_id, session=session, object=obj,
                module=module, typ=typ, method=method, body=frame[p:p+blen])

def error_body(b):
    code, mlen = struct.unpack_from(">HH", b)
    msg = b[4:4+mlen].decode()
    (tlen,) = struct.unpack_from(">H", b, 4 + mlen)
    return code, msg, b[6+mlen:6+mlen+tlen].decode()

class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=10)
        self.buf = b""

    def send(self, frame):
        self.s.sendall(struct.pack(">I", len(frame)) + frame)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        (n,) = struct.unpack(">I", self._read(4))
        return decode(self._read(n))

def fail(msg):
    print(json.dumps({"ok": False, "error": msg}))
    sys.exit(1)

def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = Conn(host, port)
    seen = {}

    c.send(encode(HELLO, body=cbor_enc({"client": "spec-python/1"})))
    w = c.recv()
    if w["type"] != WELCOME or w["session"] == bytes(16):
        fail("expected WELCOME with a session id, got %r" % w)
    seen["server"] = cbor_loads(w["body"]).get("server")

    def call(call_id, module, typ, method, args, flags=0, obj=0):
        c.send(encode(CALL, flags=flags, call_id=call_id, obj=obj, module=module, typ=typ,
                      method=method, body=cbor_enc(args)))
        while True:
            f = c.recv()
            if f["type"] == CALLBACK:
                # Answer with the argument times ten.
                (arg,) = cbor_loads(f["body"])
                c.send(encode(CALLBACK_RESULT, call_id=f["call_id"], session=f["session"],
                              obj=f["object"], body=cbor_enc(arg * 10)))
                continue
            if f["call_id"] != call_id:
                fail("reply for call %d while waiting for %d" % (f["call_id"], call_id))
            return f

    r = call(1, b"orders@1", b"Orders", b"GetOrder", ["o-1"], flags=STATELESS)
    if r["type"] != RESULT:
        fail("GetOrder: %r" % (error_body(r["body"]),))
    order = cbor_loads(r["body"])
    if order.get("id") != "o-1":
        fail("GetOrder returned %r" % order)
    seen["order_gateway"] = order.get("gateway")

    r = call(2, b"cart@1", b"Cart", b"$new", [])
    if r["type"] != RESULT or r["object"] == 0:
        fail("$new: %r" % r)
    cart = r["object"]
    r = call(3, b"cart@1", b"Cart", b"AddItem", ["apple", 120], obj=cart)
    added = cbor_loads(r["body"]) if r["type"] == RESULT else None
    if not added or added.get("total") != 120:
        fail("AddItem: %r" % (added or error_body(r["body"]),))
    seen["cart_gateway"] = added.get("gateway")

    r = call(4, b"ticker@1", b"Ticker", b"Each", [3, Tag(61000, 7)])
    if r["type"] != RESULT or cbor_loads(r["body"]) != 30:
        fail("Each with a callback: %r" % r)

    r = call(5, b"orders@1", b"Orders", b"Nope", [], flags=STATELESS)
    if r["type"] != ERROR:
        fail("unknown method answered %r" % r)
    code, msg, _ = error_body(r["body"])
    if code != 5:
        fail("unknown method: code %d (%s), want NOT_FOUND (5)" % (code, msg))

    c.send(encode(PING, call_id=99, body=b"hi"))
    p = c.recv()
    if p["type"] != PONG or p["call_id"] != 99 or p["body"] != b"hi":
        fail("PING answered %r" % p)

    # Section 6, malformed input: a frame whose header declares more body
    # than the frame holds is answered BAD_FRAME under its call id, and the
    # connection goes on (its size was known).
    bad = bytearray(encode(CALL, flags=STATELESS, call_id=6, module=b"orders@1", typ=b"Orders",
                           method=b"GetOrder", body=cbor_enc(["o-1"])))
    struct.pack_into(">I", bad, 40, len(bad))  # body length field
    c.send(bytes(bad))
    r = c.recv()
    if r["type"] != ERROR or r["call_id"] != 6 or error_body(r["body"])[0] != 1:
        fail("a frame with a wrong body length: %r, want ERROR BAD_FRAME (1) for call 6" % (r,))
    r = call(7, b"orders@1", b"Orders", b"GetOrder", ["o-2"], flags=STATELESS)
    if r["type"] != RESULT:
        fail("a call after a bad frame: %r" % (error_body(r["body"]),))

    # Section 6: a reply larger than the max_frame this client announced
    # is not sent; the call gets ERROR TOO_LARGE, the connection goes on.
    small = Conn(host, port)
    small.send(encode(HELLO, body=cbor_enc({"client": "spec-python/1", "max_frame": 300})))
    if small.recv()["type"] != WELCOME:
        fail("HELLO with max_frame 300 was not welcomed")
    small.send(encode(CALL, flags=STATELESS, call_id=1, module=b"orders@1", typ=b"Orders",
                      method=b"ListOrders", body=cbor_enc([10])))
    r = small.recv()
    if r["type"] != ERROR or r["call_id"] != 1 or error_body(r["body"])[0] != 2:
        fail("a reply over the announced max_frame: %r, want ERROR TOO_LARGE (2) for call 1" % (r,))
    small.send(encode(CALL, flags=STATELESS, call_id=2, module=b"orders@1", typ=b"Orders",
                      method=b"GetOrder", body=cbor_enc(["o-1"])))
    r = small.recv()
    if r["type"] != RESULT or len(r["body"]) > 300:
        fail("a small reply after a refused large one: %r" % (r,))
    seen["limits"] = "ok"

    seen["ok"] = True
    print(json.dumps(seen))

def handoff():
    """SPEC.md section 7, Handoff, as a direct client sees it: the gateway
    holding our cart drains and hands the session over; it sends a MOVED
    frame naming the new gateway's address, where the session goes on with
    HELLO RESUME."""
    host, port = sys.argv[2], int(sys.argv[3])
    c = Conn(host, port)
    c.send(encode(HELLO, body=cbor_enc({"client": "spec-python/1"})))
    w = c.recv()
    if w["type"] != WELCOME:
        fail("expected WELCOME, got %r" % w)
    session = w["session"]
    first = cbor_loads(w["body"]).get("server")

    def call(conn, call_id, method, args, obj):
        conn.send(encode(CALL, call_id=call_id, obj=obj, module=b"cart@1", typ=b"Cart", method=method,
                         body=cbor_enc(args)))
        while True:
            f = conn.recv()
            if f["type"] in (RESULT, ERROR) and f["call_id"] == call_id:
                return f
            if f["type"] not in (GOAWAY, EVENT):
                fail("unexpected %r while waiting for call %d" % (f, call_id))

    r = call(c, 1, b"$new", [], 0)
    if r["type"] != RESULT or r["object"] == 0:
        fail("$new: %r" % r)
    cart = r["object"]
    r = call(c, 2, b"AddItem", ["apple", 120], cart)
    if r["type"] != RESULT:
        fail("AddItem: %r" % (error_body(r["body"]),))
    print("ready", flush=True)
    sys.stdin.readline()  # the test drained the gateway meanwhile

    # The draining gateway tells a direct client whose connection's session
    # moved at once: a MOVED frame with the ERROR MOVED body (the new
    # gateway's address in the exception field), before it exits.
    while True:
        f = c.recv()
        if f["type"] == MOVED and f["session"] == session:
            break
        if f["type"] not in (GOAWAY, EVENT):
            fail("unexpected %r while waiting for MOVED" % (f,))
    code, msg, target = error_body(f["body"])
    if code != CODE_MOVED or not target.startswith("tcp://"):
        fail("MOVED: code %d (%s), target %r; want MOVED (16) and tcp://host:port" % (code, msg, target))
    thost, tport = target[len("tcp://"):].rsplit(":", 1)
    c2 = Conn(thost, int(tport))
    c2.send(encode(HELLO, flags=RESUME, session=session, body=cbor_enc({"client": "spec-python/1"})))
    w2 = c2.recv()
    if w2["type"] != WELCOME or w2["session"] != session:
        fail("HELLO RESUME at %s: %r" % (target, w2))
    r = call(c2, 1, b"Total", [], cart)
    total = cbor_loads(r["body"]) if r["type"] == RESULT else None
    if not total or total.get("total") != 120:
        fail("Total at %s: %r" % (target, total or error_body(r["body"])))
    print(json.dumps({"ok": True, "server": first, "cart_gateway": total.get("gateway"), "moved_message": msg}))

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "handoff":
        handoff()
    else:
        main()
