#!/usr/bin/env python3
"""A Hotline client in another language, written from the documented wire contract only.

Run by tests/tests/python_client.rs against a real `hotline serve`:

    wire_client.py --gen DIR --tcp HOST:PORT --ws HOST:PORT

DIR holds `flatc --python --gen-object-api` output for wire/schema/hotline.fbs. The contract
it checks (hotline.fbs header, wire/src/frame.rs):
- TCP/TLS: a frame is a FlatBuffers size-prefixed buffer, built with FinishSizePrefixed and
  read as a size-prefixed root: its 8-byte fields are aligned counting the 4-byte prefix.
- WebSocket: one binary message is one standard finished buffer (Finish, no prefix), its
  8-byte fields aligned from the message's first byte.

Every server frame is read strictly: every scalar and offset is checked for bounds and
for alignment to its size relative to the start of the buffer the root was read from,
which is what a verifying FlatBuffers library (C++, Rust, ...) insists on. Each frame is
unpacked whole through the object API, so every field present is read, and so checked.
Exit status 0 when everything held, 1 with the reason otherwise.
"""

import argparse
import base64
import importlib
import os
import socket
import struct
import sys
import types

import flatbuffers
import flatbuffers.encode
import flatbuffers.table
import flatbuffers.util

WAIT_S = 10.0
FRAME_HEADER_BYTES = 4
PROTOCOL_VERSION = 1


class ContractError(Exception):
    """The server's bytes break the documented contract."""


# --- strict reading ---------------------------------------------------------------------

_plain_get = flatbuffers.encode.Get


def _strict_get(packer_type, buf, head):
    """Every read of the generated code and the runtime goes through here."""
    size = packer_type.size
    if head < 0 or head + size > len(buf):
        raise ContractError(f"read of {size} bytes at {head} is outside the {len(buf)}-byte buffer")
    if head % size != 0:
        raise ContractError(f"{size}-byte value at position {head} is unaligned")
    return _plain_get(packer_type, buf, head)


def _strict_string(self, off):
    start = off + _strict_get(flatbuffers.packer.uoffset, self.Bytes, off)
    length = _strict_get(flatbuffers.packer.uoffset, self.Bytes, start)
    data = start + FRAME_HEADER_BYTES
    if data + length + 1 > len(self.Bytes) or self.Bytes[data + length] != 0:
        raise ContractError(f"string at {start} of {length} bytes overruns or lacks its terminator")
    return bytes(self.Bytes[data:data + length])


flatbuffers.encode.Get = _strict_get
flatbuffers.table.Table.String = _strict_string


# The generated modules this client uses; another client built on it (soak_churn.py) adds its own.
GENERATED_NAMES = ("Body", "ConversationKind", "ErrorCode", "Frame", "Hello", "Login", "Ping", "Pong", "Register", "Send")


def load_generated(gen_dir, names=GENERATED_NAMES):
    """Imports the flatc output in `gen_dir` as `fb.<Type>` modules."""
    global fb
    sys.path.insert(0, gen_dir)
    fb = types.SimpleNamespace(**{n: importlib.import_module(f"hotline.wire.fb.{n}") for n in names})
    return fb


def read_frame(buf, size_prefixed):
    """Reads one server frame strictly: a size-prefixed root, or a standard root."""
    buf = bytes(buf)
    if size_prefixed:
        prefix = _strict_get(flatbuffers.packer.uoffset, buf, 0)
        if prefix != len(buf) - FRAME_HEADER_BYTES:
            raise ContractError(f"size prefix {prefix} but {len(buf) - FRAME_HEADER_BYTES} bytes follow")
        buf, offset = flatbuffers.util.RemoveSizePrefix(buf, 0)
    else:
        offset = 0
    root = fb.Frame.Frame.GetRootAs(buf, offset)
    return fb.Frame.FrameT.InitFromObj(root)


def encode(frame, size_prefixed):
    builder = flatbuffers.Builder(256)
    root = frame.Pack(builder)
    if size_prefixed:
        builder.FinishSizePrefixed(root)
    else:
        builder.Finish(root)
    return bytes(builder.Output())


def frame_of(request_id, body_type, body):
    return fb.Frame.FrameT(requestId=request_id, bodyType=body_type, body=body)


# --- transports -------------------------------------------------------------------------

def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ContractError(f"the server closed the connection ({len(data)} of {n} bytes read)")
        data += chunk
    return data


class Tcp:
    size_prefixed = True

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT_S)

    def send_frame(self, frame):
        self.send_raw(encode(frame, size_prefixed=True))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_bytes(self):
        header = recv_exact(self.sock, FRAME_HEADER_BYTES)
        (length,) = struct.unpack("<I", header)
        return header + recv_exact(self.sock, length)


class WebSocket:
    size_prefixed = False

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += recv_exact(self.sock, 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ContractError(f"WebSocket upgrade refused: {head!r}")

    def send_frame(self, frame):
        self.send_message(0x2, encode(frame, size_prefixed=False))

    def send_message(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv_bytes(self):
        """The next binary message (a whole one: fragments joined); pings answered."""
        message = b""
        while True:
            first, second = recv_exact(self.sock, 2)
            fin, opcode, n = first & 0x80, first & 0x0F, second & 0x7F
            if second & 0x80:
                raise ContractError("the server masked a frame")
            if n == 126:
                (n,) = struct.unpack("!H", recv_exact(self.sock, 2))
            elif n == 127:
                (n,) = struct.unpack("!Q", recv_exact(self.sock, 8))
            payload = recv_exact(self.sock, n)
            if opcode == 0x9:
                self.send_message(0xA, payload)
            elif opcode == 0x8:
                raise ContractError(f"the server closed the WebSocket: {payload!r}")
            elif opcode in (0x0, 0x2):
                message += payload
                if fin:
                    return message
            elif opcode != 0xA:
                raise ContractError(f"unexpected WebSocket opcode {opcode}")


# --- the protocol -----------------------------------------------------------------------

class Peer:
    """One connection, speaking the protocol over `transport`."""

    def __init__(self, transport, name):
        self.t = transport
        self.name = name
        self.request_id_next = 1
        self.pushes = []

    def request(self, body_type, body):
        request_id = self.request_id_next
        self.request_id_next += 1
        self.t.send_frame(frame_of(request_id, body_type, body))
        return request_id

    def next_frame(self):
        frame = read_frame(self.t.recv_bytes(), self.t.size_prefixed)
        if frame.bodyType == fb.Body.Body.Ping:
            pong = fb.Pong.PongT(nonce=frame.body.nonce)
            self.t.send_frame(frame_of(frame.requestId, fb.Body.Body.Pong, pong))
            return self.next_frame()
        return frame

    def reply(self, request_id, what):
        """The reply to `request_id`; pushes (request id 0) are kept for later."""
        while True:
            frame = self.next_frame()
            if frame.requestId == request_id:
                return frame
            if frame.requestId != 0:
                raise ContractError(f"{self.name} {what}: reply to request {frame.requestId} unexpected")
            self.pushes.append(frame)

    def expect(self, request_id, body_type, what):
        frame = self.reply(request_id, what)
        if frame.bodyType != body_type:
            detail = ""
            if frame.bodyType == fb.Body.Body.Error:
                detail = f": Error {frame.body.code} {frame.body.message!r}"
            raise ContractError(f"{self.name} {what}: body type {frame.bodyType}, expected {body_type}{detail}")
        return frame.body

    def expect_error(self, request_id, code, what):
        frame = self.reply(request_id, what)
        if frame.bodyType != fb.Body.Body.Error or frame.body.code != code:
            raise ContractError(f"{self.name} {what}: expected Error code {code}, got {frame.bodyType} {vars(frame.body)}")
        return frame.body

    def hello(self):
        body = fb.Hello.HelloT(versionMin=1, versionMax=PROTOCOL_VERSION, clientName="python-contract-test")
        ok = self.expect(self.request(fb.Body.Body.Hello, body), fb.Body.Body.HelloOk, "Hello")
        if ok.version != PROTOCOL_VERSION or ok.limits is None or ok.limits.frameBytesMax == 0:
            raise ContractError(f"HelloOk: {vars(ok)}")

    def register_and_login(self, username, password):
        register = fb.Register.RegisterT(username=username, password=password)
        registered = self.expect(self.request(fb.Body.Body.Register, register), fb.Body.Body.RegisterOk, "Register")
        login = fb.Login.LoginT(username=username, password=password, deviceName=f"{username}-py")
        ok = self.expect(self.request(fb.Body.Body.Login, login), fb.Body.Body.LoginOk, "Login")
        if ok.userId != registered.userId or ok.deviceId == 0 or len(ok.token or []) != 32:
            raise ContractError(f"LoginOk {vars(ok)} after RegisterOk {vars(registered)}")
        return ok.userId

    def deliver(self):
        while not self.pushes:
            frame = self.next_frame()
            if frame.requestId != 0:
                raise ContractError(f"{self.name}: unexpected reply to request {frame.requestId}")
            self.pushes.append(frame)
        frame = self.pushes.pop(0)
        if frame.bodyType != fb.Body.Body.Deliver:
            raise ContractError(f"{self.name}: pushed body type {frame.bodyType}, expected Deliver")
        return frame.body


def converse(make_transport, label, suffix):
    # Anything but Hello first is InvalidState; Ping included.
    early = Peer(make_transport(), f"{label} early")
    ping = early.request(fb.Body.Body.Ping, fb.Ping.PingT(nonce=9))
    early.expect_error(ping, fb.ErrorCode.ErrorCode.InvalidState, "Ping before Hello")

    alice, bob = Peer(make_transport(), f"{label} alice"), Peer(make_transport(), f"{label} bob")
    alice.hello()
    bob.hello()
    alice_id = alice.register_and_login(f"alice_{suffix}", "alice-password-1")
    bob_id = bob.register_and_login(f"bob_{suffix}", "bob-password-1")
    text = f"hello bob over {label}".encode()
    send = fb.Send.SendT(clientMsgId=77, to=bob_id, payload=list(text))
    ack = alice.expect(alice.request(fb.Body.Body.Send, send), fb.Body.Body.SendAck, "Send")
    if ack.clientMsgId != 77 or ack.messageId == 0 or ack.inboxSeq == 0:
        raise ContractError(f"SendAck {vars(ack)}")
    got = bob.deliver()
    if (got.messageId, got.sender, bytes(got.payload), got.clientMsgId) != (ack.messageId, alice_id, text, 77):
        raise ContractError(f"Deliver {vars(got)} does not match SendAck {vars(ack)}")
    if got.conversation.kind != fb.ConversationKind.ConversationKind.Direct or got.conversation.id != alice_id:
        raise ContractError(f"Deliver conversation {vars(got.conversation)}, expected Direct({alice_id})")
    print(f"{label}: Hello, Register, Login, Send, SendAck, Deliver ok (message {ack.messageId})")
    return alice


def a_standard_buffer_behind_a_length_is_not_a_tcp_frame(alice):
    """The negative side of the TCP contract: a standard finished buffer behind a length
    prefix has its 8-byte fields at 4 mod 8 counting the prefix, so a verifying server
    refuses it (MalformedFrame, request id 0) and the connection stays usable."""
    standard = encode(frame_of(4242, fb.Body.Body.Ping, fb.Ping.PingT(nonce=5)), size_prefixed=False)
    alice.t.send_raw(struct.pack("<I", len(standard)) + standard)
    alice.expect_error(0, fb.ErrorCode.ErrorCode.MalformedFrame, "a standard buffer behind a length")
    pong = alice.expect(alice.request(fb.Body.Body.Ping, fb.Ping.PingT(nonce=6)), fb.Body.Body.Pong, "Ping after it")
    if pong.nonce != 6:
        raise ContractError(f"Pong {vars(pong)}")
    print("tcp: a standard buffer behind a plain length is refused as MalformedFrame")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen", required=True, help="flatc --python --gen-object-api output")
    parser.add_argument("--tcp", required=True)
    parser.add_argument("--ws", required=True)
    args = parser.parse_args()
    load_generated(args.gen)
    suffix = os.urandom(4).hex()
    try:
        alice = converse(lambda: Tcp(args.tcp), "tcp", f"t{suffix}")
        a_standard_buffer_behind_a_length_is_not_a_tcp_frame(alice)
        converse(lambda: WebSocket(args.ws), "ws", f"w{suffix}")
    except (ContractError, OSError) as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print("contract held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
