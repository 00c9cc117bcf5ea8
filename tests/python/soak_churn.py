#!/usr/bin/env python3
"""The churn client of scripts/soak: logins and logouts, offline catch-up and presence,
every message checked, against a real `hotline serve`.

    soak_churn.py --gen DIR --tcp HOST:PORT --duration SECONDS --status FILE
                  [--sleepers N] [--cycle-s S] [--logout-every N] [--seed S]

Built on wire_client.py (its TCP transport and strict frame reading); DIR holds `flatc
--python --gen-object-api` output for wire/schema/hotline.fbs.

Cast, registered afresh at start: a talker T, a watcher W and N sleepers, all members of
one group G that T owns; W subscribes to the sleepers' presence. One cycle (at most one per
--cycle-s) takes the next sleeper S offline: a plain disconnect that keeps its token, or,
every --logout-every-th cycle, a Logout that revokes it. While S is away T sends it direct
messages and sends group messages to G; W must see S go offline. S logs back in (by token:
the same device resumes after its cursor; after a Logout by password: a new device, which
receives the whole inbox), the catch-up is checked, T sends live messages, and W must see S
come back. The online users receive the group messages live meanwhile.

What is checked: T sends one message at a time and waits for its SendAck, so this client
knows every inbox exactly (the order of an inbox is the order of the acks). Every Deliver
to S, W and the sleepers is checked against it: inbox seq dense and in order (the one after
the highest held), message id the expected one. A login's inbox head must be the expected
length, its device cursor between the last confirmed Ack and what the device held. At the
end every inbox is read whole with Sync and compared entry by entry.

Counters (cumulative): lost = acknowledged messages that did not arrive (a gap in the seqs,
a catch-up or live delivery that never came, or missing from the final Sync); duplicated =
a seq delivered twice on one login; errors = protocol failures (an Error frame, a wrong
reply, a timeout, a refused send, a wrong message at a seq, a bad login); after one the cast
is dropped and a fresh one registered (resets), and what its users had not received yet is
counted as unverified, not as lost. A request refused with Overloaded is no error: it is
sent again after the back-off the server asks for, and counted (overloaded). Presence:
expected changes, seen, and missing (not seen within PRESENCE_WAIT_S; the server coalesces
to one publication per user per second).

FILE is rewritten atomically after every cycle with the counters as one JSON object
(scripts/soak reads it each minute). Exit status 0 when nothing was lost, duplicated or
unverified and no error happened; 1 otherwise; 2 if the cast could not be set up.
"""

import argparse
import json
import os
import random
import select
import signal
import sys
import time

import wire_client as wc

# The generated modules this client needs beyond wire_client's own.
NAMES = wc.GENERATED_NAMES + (
    "Ack", "AckOk", "Deliver", "Done", "Durable", "Error", "GroupAddMember", "GroupCreate",
    "GroupCreated", "GroupRole", "LoginOk", "Logout", "LogoutOk", "Persistence", "Presence",
    "PresenceSubscribe", "SendAck", "Sync", "SyncPage",
)

# How long one request may wait for its reply.
REQUEST_WAIT_S = 10.0
# How long a catch-up after login may take to deliver the whole backlog.
CATCHUP_WAIT_S = 15.0
# How long live messages may take to arrive, and the durable watermark to cover them.
SETTLE_WAIT_S = 5.0
# How long a presence change may take to reach the watcher (coalescing window: 1 s).
PRESENCE_WAIT_S = 5.0
# How long the final drain waits for every outstanding delivery.
FINAL_WAIT_S = 15.0
# Messages T sends per cycle: direct to S and to the group while S is away, then live.
OFFLINE_DIRECT = 5
OFFLINE_GROUP = 2
LIVE_DIRECT = 3
LIVE_GROUP = 1
# A request refused with Overloaded (the server did nothing with it) is sent again, the same
# (a Send keeps its client_msg_id), after the retry_after_ms it names, clamped to these
# bounds, at most OVERLOADED_RETRIES_MAX times; each refusal is counted (overloaded).
OVERLOADED_RETRIES_MAX = 50
OVERLOADED_BACKOFF_MS_MIN = 10
OVERLOADED_BACKOFF_MS_MAX = 1_000
# Error texts kept per kind, and distinct kinds kept, so the status file stays bounded;
# error lines printed to stderr, so its log does too.
ERROR_KINDS_MAX = 20
ERROR_LINES_MAX = 200
# After this many resets (an error each) the client stops: something is badly wrong.
RESETS_MAX = 20
# Most entries one Sync page asks for (the server clamps to its own maximum).
SYNC_PAGE_LIMIT = 0


class ChurnError(Exception):
    """The server did something this client did not expect; the cast is reset."""


class Stats:
    FIELDS = ("cycles", "logins_token", "logins_password", "logouts", "disconnects", "sent",
              "delivered", "caught_up", "lost", "duplicated", "errors", "resets", "unverified",
              "presence_expected", "presence_seen", "presence_missing", "catchup_n",
              "catchup_ms_sum", "catchup_ms_max", "synced_checked", "overloaded")

    def __init__(self):
        for f in self.FIELDS:
            setattr(self, f, 0)
        self.error_kinds = {}
        self.started = time.time()
        self.finished = False

    def error(self, kind, detail):
        self.errors += 1
        if kind in self.error_kinds or len(self.error_kinds) < ERROR_KINDS_MAX:
            entry = self.error_kinds.setdefault(kind, {"count": 0, "first": detail})
            entry["count"] += 1
        if self.errors <= ERROR_LINES_MAX:
            print(f"soak_churn: {kind}: {detail}", file=sys.stderr, flush=True)
        elif self.errors == ERROR_LINES_MAX + 1:
            print("soak_churn: more errors: only counted from here on", file=sys.stderr, flush=True)

    def write(self, path):
        doc = {f: getattr(self, f) for f in self.FIELDS}
        doc.update(error_kinds=self.error_kinds, elapsed_s=round(time.time() - self.started, 1),
                   finished=self.finished)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)


class Conn:
    """One TCP connection; reads whole frames, answers the server's Pings."""

    def __init__(self, addr):
        self.t = wc.Tcp(addr)
        self.request_id_next = 1

    def send(self, body_type, body, reply=True):
        request_id = 0
        if reply:
            request_id = self.request_id_next
            self.request_id_next += 1
        self.t.send_frame(wc.frame_of(request_id, body_type, body))
        return request_id

    def readable(self, timeout):
        ready, _, _ = select.select([self.t.sock], [], [], max(0.0, timeout))
        return bool(ready)

    def read(self):
        """The next frame (its first byte is there: the rest follows within wc.WAIT_S);
        None for a Ping, which is answered here."""
        frame = wc.read_frame(self.t.recv_bytes(), size_prefixed=True)
        if frame.bodyType == wc.fb.Body.Body.Ping:
            pong = wc.fb.Pong.PongT(nonce=frame.body.nonce)
            self.t.send_frame(wc.frame_of(frame.requestId, wc.fb.Body.Body.Pong, pong))
            return None
        return frame

    def close(self):
        self.t.sock.close()


class Actor:
    """One user with one device (a new one after each Logout), and what its inbox must hold."""

    def __init__(self, churn, name, verify):
        self.churn = churn
        self.stats = churn.stats
        self.name = name
        self.username = f"soak_{churn.tag}_{name}"
        self.password = f"pw-{churn.tag}-{name}-{random.getrandbits(64):016x}"
        self.verify = verify
        self.user_id = 0
        self.token = None
        self.conn = None
        # Expected message ids of the inbox, index seq - 1 (verified actors only).
        self.inbox = []
        # Highest seq held in order since this login; durable watermark; confirmed cursor.
        self.held = 0
        self.durable = 0
        self.acked = 0
        # Highest seq this device held before it went offline (its cursor cannot pass it).
        self.held_offline = 0
        self.catching_up = False
        # Watcher only: user id -> online, as the last Presence said.
        self.presence = {}

    # --- requests -----------------------------------------------------------------------

    def call(self, body_type, body, expect, what):
        """Sends a request and returns its reply's body (pushes meanwhile are handled);
        Overloaded refusals are retried (see OVERLOADED_RETRIES_MAX)."""
        for _ in range(OVERLOADED_RETRIES_MAX):
            reply = self.call_once(body_type, body, expect, what)
            if reply is not None:
                return reply
        raise ChurnError(f"{self.name} {what}: refused Overloaded {OVERLOADED_RETRIES_MAX} times in a row")

    def call_once(self, body_type, body, expect, what):
        """The reply's body, or None if the server refused it with Overloaded (after the
        back-off it asked for)."""
        B = wc.fb.Body.Body
        request_id = self.conn.send(body_type, body)
        deadline = time.monotonic() + REQUEST_WAIT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChurnError(f"{self.name} {what}: no reply within {REQUEST_WAIT_S:.0f} s")
            if not self.conn.readable(left):
                continue
            frame = self.conn.read()
            if frame is None:
                continue
            if frame.requestId == request_id:
                if frame.bodyType == B.Error and frame.body.code == wc.fb.ErrorCode.ErrorCode.Overloaded:
                    self.stats.overloaded += 1
                    wait_ms = min(max(frame.body.retryAfterMs, OVERLOADED_BACKOFF_MS_MIN), OVERLOADED_BACKOFF_MS_MAX)
                    time.sleep(wait_ms / 1000)
                    return None
                if frame.bodyType != expect:
                    detail = ""
                    if frame.bodyType == B.Error:
                        detail = f": Error code {frame.body.code} {frame.body.message!r}"
                    raise ChurnError(f"{self.name} {what}: body type {frame.bodyType}, expected {expect}{detail}")
                return frame.body
            if frame.requestId != 0:
                raise ChurnError(f"{self.name} {what}: a reply to request {frame.requestId} unexpected")
            self.on_push(frame)

    def connect(self, addr):
        self.conn = Conn(addr)
        hello = wc.fb.Hello.HelloT(versionMin=1, versionMax=wc.PROTOCOL_VERSION, clientName="hotline-soak-churn")
        self.call(wc.fb.Body.Body.Hello, hello, wc.fb.Body.Body.HelloOk, "Hello")

    def register(self, addr):
        self.connect(addr)
        reg = wc.fb.Register.RegisterT(username=self.username, password=self.password)
        self.user_id = self.call(wc.fb.Body.Body.Register, reg, wc.fb.Body.Body.RegisterOk, "Register").userId
        self.login_on_open_connection()

    def login(self, addr):
        self.connect(addr)
        self.login_on_open_connection()

    def login_on_open_connection(self):
        B = wc.fb.Body.Body
        by_token = self.token is not None
        if by_token:
            body = wc.fb.Login.LoginT(token=list(self.token), deviceName=f"{self.name}-soak")
            self.stats.logins_token += 1
        else:
            body = wc.fb.Login.LoginT(username=self.username, password=self.password, deviceName=f"{self.name}-soak")
            self.stats.logins_password += 1
        ok = self.call(B.Login, body, B.LoginOk, "Login by token" if by_token else "Login by password")
        if ok.token:
            self.token = bytes(ok.token)
        if ok.userId != self.user_id:
            raise ChurnError(f"{self.name}: LoginOk user {ok.userId}, expected {self.user_id}")
        if not self.verify:
            return
        cursor = ok.deviceCursor
        if by_token and not (self.acked <= cursor <= self.held_offline):
            raise ChurnError(f"{self.name}: token login cursor {cursor} outside [confirmed ack {self.acked}, held {self.held_offline}]")
        if not by_token and cursor != 0:
            raise ChurnError(f"{self.name}: a new device's cursor is {cursor}, expected 0 (the whole inbox)")
        if ok.inboxSeq != len(self.inbox):
            if ok.inboxSeq < len(self.inbox):
                self.stats.lost += len(self.inbox) - ok.inboxSeq
            raise ChurnError(f"{self.name}: LoginOk inbox head {ok.inboxSeq}, {len(self.inbox)} messages acknowledged to it")
        self.held = cursor
        self.acked = cursor
        self.catching_up = cursor < len(self.inbox)

    def ack_confirmed(self):
        """Acks (confirmed) what is held and durable; the cursor must land there."""
        up_to = min(self.held, self.durable)
        if up_to <= self.acked:
            return
        ok = self.call(wc.fb.Body.Body.Ack, wc.fb.Ack.AckT(upToSeq=up_to), wc.fb.Body.Body.AckOk, "Ack")
        if ok.deviceCursor < up_to:
            raise ChurnError(f"{self.name}: AckOk cursor {ok.deviceCursor} below the acked {up_to}")
        self.acked = ok.deviceCursor

    def ack_plain(self):
        """A fire-and-forget Ack of what is held and durable (the server stores it ~1 s later)."""
        up_to = min(self.held, self.durable)
        if self.conn is not None and up_to > self.acked:
            self.conn.send(wc.fb.Body.Body.Ack, wc.fb.Ack.AckT(upToSeq=up_to), reply=False)

    def go_offline(self, logout):
        self.churn.pump([self], lambda: self.settled(), SETTLE_WAIT_S)
        self.ack_confirmed()
        self.held_offline = self.held
        if logout:
            B = wc.fb.Body.Body
            self.call(B.Logout, wc.fb.Logout.LogoutT(), B.LogoutOk, "Logout")
            self.token = None
            self.acked = 0
            self.held_offline = 0
            self.stats.logouts += 1
        else:
            self.stats.disconnects += 1
        self.conn.close()
        self.conn = None

    def settled(self):
        return self.held >= len(self.inbox) and self.durable >= self.held

    def behind(self):
        return max(0, len(self.inbox) - self.held) if self.verify else 0

    # --- pushes -------------------------------------------------------------------------

    def on_push(self, frame):
        B = wc.fb.Body.Body
        body = frame.body
        if frame.bodyType == B.Deliver:
            self.on_deliver(body)
        elif frame.bodyType == B.Durable:
            self.durable = max(self.durable, body.inboxSeq)
        elif frame.bodyType == B.Presence:
            self.presence[body.userId] = bool(body.online)
        elif frame.bodyType == B.Error:
            raise ChurnError(f"{self.name}: pushed Error code {body.code} {body.message!r}")

    def on_deliver(self, d):
        self.durable = max(self.durable, d.durableSeq)
        if not self.verify:
            raise ChurnError(f"{self.name}: a Deliver (seq {d.inboxSeq}) to a user that is sent nothing")
        seq = d.inboxSeq
        if seq <= self.held:
            self.stats.duplicated += 1
            return
        if seq > len(self.inbox):
            raise ChurnError(f"{self.name}: Deliver seq {seq} beyond the {len(self.inbox)} messages sent to it")
        if seq != self.held + 1:
            self.stats.lost += seq - self.held - 1
            self.stats.error("gap", f"{self.name}: Deliver seq {seq} after {self.held}")
        if d.messageId != self.inbox[seq - 1]:
            self.stats.error("wrong message", f"{self.name}: seq {seq} is message {d.messageId}, expected {self.inbox[seq - 1]}")
        self.held = seq
        self.stats.delivered += 1
        if self.catching_up:
            self.stats.caught_up += 1
            if self.held >= len(self.inbox):
                self.catching_up = False

    def check_whole_inbox(self):
        """Reads the whole inbox with Sync and compares it with what was acknowledged."""
        B = wc.fb.Body.Body
        after, seen = 0, 0
        while True:
            page = self.call(B.Sync, wc.fb.Sync.SyncT(afterSeq=after, limit=SYNC_PAGE_LIMIT), B.SyncPage, "Sync")
            for d in page.messages or []:
                seen += 1
                if d.inboxSeq != after + 1 or d.inboxSeq > len(self.inbox) or d.messageId != self.inbox[d.inboxSeq - 1]:
                    self.stats.error("final sync", f"{self.name}: entry seq {d.inboxSeq} message {d.messageId} after seq {after}")
                    return
                after = d.inboxSeq
                self.stats.synced_checked += 1
            if not page.more or not page.messages:
                break
        if after < len(self.inbox):
            self.stats.lost += len(self.inbox) - after
            self.stats.error("final sync", f"{self.name}: inbox ends at {after}, {len(self.inbox)} acknowledged")


class Churn:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.stop = False
        self.generation = 0
        self.client_msg_id = 0
        self.cast()

    def cast(self):
        """A fresh set of users (the first, or after an error dropped the previous one)."""
        self.generation += 1
        self.tag = f"{self.args.seed:x}g{self.generation}"
        self.talker = Actor(self, "t", verify=False)
        self.watcher = Actor(self, "w", verify=True)
        self.sleepers = [Actor(self, f"s{i}", verify=True) for i in range(self.args.sleepers)]
        self.group_id = 0

    def everyone(self):
        return [self.talker, self.watcher] + self.sleepers

    def online(self):
        return [a for a in self.everyone() if a.conn is not None]

    def set_up(self):
        B = wc.fb.Body.Body
        for actor in self.everyone():
            actor.register(self.args.tcp)
        create = wc.fb.GroupCreate.GroupCreateT(name=f"soak-{self.tag}", persistence=wc.fb.Persistence.Persistence.Archive)
        self.group_id = self.talker.call(B.GroupCreate, create, B.GroupCreated, "GroupCreate").groupId
        for member in [self.watcher] + self.sleepers:
            add = wc.fb.GroupAddMember.GroupAddMemberT(groupId=self.group_id, userId=member.user_id, role=wc.fb.GroupRole.GroupRole.Member)
            self.talker.call(B.GroupAddMember, add, B.Done, "GroupAddMember")
        ids = [s.user_id for s in self.sleepers]
        self.watcher.call(B.PresenceSubscribe, wc.fb.PresenceSubscribe.PresenceSubscribeT(userIds=ids), B.Done, "PresenceSubscribe")
        self.pump([self.watcher], lambda: all(self.watcher.presence.get(i) is True for i in ids), PRESENCE_WAIT_S)
        for i in ids:
            self.expect_presence(i, True, wait=False)

    # --- traffic ------------------------------------------------------------------------

    def send(self, to=None):
        """T sends one message (direct to `to`, else to the group) and waits for its SendAck."""
        B = wc.fb.Body.Body
        self.client_msg_id += 1
        payload = list(f"soak {self.tag} {self.client_msg_id}".encode())
        if to is not None:
            body = wc.fb.Send.SendT(clientMsgId=self.client_msg_id, to=to.user_id, payload=payload)
            recipients = [to]
        else:
            body = wc.fb.Send.SendT(clientMsgId=self.client_msg_id, group=self.group_id, payload=payload)
            recipients = [self.watcher] + self.sleepers
        ack = self.talker.call(B.Send, body, B.SendAck, "Send")
        if ack.clientMsgId != self.client_msg_id or ack.messageId == 0:
            raise ChurnError(f"SendAck {vars(ack)} for client_msg_id {self.client_msg_id}")
        for r in recipients:
            r.inbox.append(ack.messageId)
        self.stats.sent += 1

    def pump(self, actors, done, wait_s):
        """Reads every online connection (pushes checked as they come) until done() or wait_s."""
        deadline = time.monotonic() + wait_s
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            conns = {a.conn.t.sock: a for a in actors if a.conn is not None}
            ready, _, _ = select.select(list(conns), [], [], min(left, 0.5))
            for sock in ready:
                actor = conns[sock]
                frame = actor.conn.read()
                if frame is None:
                    continue
                if frame.requestId != 0:
                    raise ChurnError(f"{actor.name}: a reply to request {frame.requestId} nobody waits for")
                actor.on_push(frame)
        return True

    def expect_presence(self, user_id, online, wait=True):
        self.stats.presence_expected += 1
        if wait:
            self.pump(self.online(), lambda: self.watcher.presence.get(user_id) is online, PRESENCE_WAIT_S)
        if self.watcher.presence.get(user_id) is online:
            self.stats.presence_seen += 1
        else:
            self.stats.presence_missing += 1
            self.stats.error("presence", f"watcher did not see user {user_id} {'online' if online else 'offline'} within {PRESENCE_WAIT_S:.0f} s")

    def cycle(self, n):
        s = self.sleepers[n % len(self.sleepers)]
        logout = n % self.args.logout_every == self.args.logout_every - 1
        s.go_offline(logout)
        for _ in range(OFFLINE_DIRECT):
            self.send(to=s)
        for _ in range(OFFLINE_GROUP):
            self.send()
        self.expect_presence(s.user_id, False)
        started = time.monotonic()
        s.login(self.args.tcp)
        if not self.pump([s], lambda: s.held >= len(s.inbox), CATCHUP_WAIT_S):
            raise ChurnError(f"{s.name}: catch-up stopped at seq {s.held} of {len(s.inbox)} after {CATCHUP_WAIT_S:.0f} s")
        catchup_ms = int((time.monotonic() - started) * 1000)
        self.stats.catchup_n += 1
        self.stats.catchup_ms_sum += catchup_ms
        self.stats.catchup_ms_max = max(self.stats.catchup_ms_max, catchup_ms)
        for _ in range(LIVE_DIRECT):
            self.send(to=s)
        for _ in range(LIVE_GROUP):
            self.send()
        self.expect_presence(s.user_id, True)
        verified = [a for a in self.online() if a.verify]
        self.pump(verified, lambda: all(a.held >= len(a.inbox) for a in verified), SETTLE_WAIT_S)
        for a in verified:
            a.ack_plain()
        self.stats.cycles += 1

    def drop_cast(self, why):
        """After an error: the cast's state is no longer known; count what it had not received."""
        self.stats.error("reset", why)
        self.stats.resets += 1
        self.stats.unverified += sum(a.behind() for a in self.everyone())
        for a in self.everyone():
            if a.conn is not None:
                try:
                    a.conn.close()
                except OSError:
                    pass
                a.conn = None
        self.cast()

    def finish(self):
        """Final drain: everything outstanding must arrive, and every inbox must read back whole."""
        verified = [a for a in self.everyone() if a.verify and a.conn is not None]
        self.pump(verified, lambda: all(a.held >= len(a.inbox) for a in verified), FINAL_WAIT_S)
        for a in verified:
            if a.behind():
                self.stats.lost += a.behind()
                self.stats.error("final drain", f"{a.name}: {a.behind()} acknowledged messages never delivered")
        for a in verified:
            a.check_whole_inbox()

    def run(self):
        deadline = time.monotonic() + self.args.duration
        try:
            self.set_up()
        except (ChurnError, OSError, wc.ContractError) as e:
            print(f"soak_churn: cannot set up the cast: {e}", file=sys.stderr)
            return 2
        n = 0
        while not self.stop and time.monotonic() < deadline:
            cycle_end = time.monotonic() + self.args.cycle_s
            try:
                self.cycle(n)
                # The rest of the cycle: keep reading (live group traffic, Pings).
                self.pump(self.online(), lambda: time.monotonic() >= cycle_end, max(0.0, cycle_end - time.monotonic()))
            except (ChurnError, OSError, wc.ContractError) as e:
                self.drop_cast(f"cycle {n}: {e}")
                if self.stats.resets > RESETS_MAX:
                    print(f"soak_churn: {RESETS_MAX} resets: giving up", file=sys.stderr)
                    break
                try:
                    self.set_up()
                except (ChurnError, OSError, wc.ContractError) as e2:
                    self.stats.error("setup", str(e2))
                    break
            n += 1
            self.stats.write(self.args.status)
        try:
            self.finish()
        except (ChurnError, OSError, wc.ContractError) as e:
            self.drop_cast(f"final check: {e}")
        self.stats.finished = True
        self.stats.write(self.args.status)
        s = self.stats
        print(f"soak_churn: cycles {s.cycles} logins {s.logins_token} by token, {s.logins_password} by password, "
              f"logouts {s.logouts}, disconnects {s.disconnects}; sent {s.sent} delivered {s.delivered} "
              f"(catch-up {s.caught_up}); final sync checked {s.synced_checked}; lost {s.lost} "
              f"duplicated {s.duplicated} unverified {s.unverified}; presence {s.presence_seen}/{s.presence_expected} "
              f"seen; errors {s.errors} resets {s.resets}", flush=True)
        bad = s.lost or s.duplicated or s.unverified or s.errors
        return 1 if bad else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen", required=True, help="flatc --python --gen-object-api output")
    parser.add_argument("--tcp", required=True, help="the server's HOST:PORT")
    parser.add_argument("--duration", type=float, required=True, help="seconds of cycles before the final check")
    parser.add_argument("--status", required=True, help="JSON file of the counters, rewritten every cycle")
    parser.add_argument("--sleepers", type=int, default=4)
    parser.add_argument("--cycle-s", type=float, default=3.0, help="shortest time per cycle")
    parser.add_argument("--logout-every", type=int, default=10, help="every Nth cycle logs out instead of disconnecting")
    parser.add_argument("--seed", type=lambda s: int(s, 0), default=None, help="names the users (default: random)")
    args = parser.parse_args()
    if args.sleepers < 1 or args.logout_every < 1 or args.duration <= 0:
        parser.error("--sleepers, --logout-every and --duration must be positive")
    if args.seed is None:
        args.seed = random.SystemRandom().getrandbits(32)
    random.seed(args.seed)
    print(f"soak_churn: seed {args.seed:#x}", flush=True)
    wc.load_generated(args.gen, NAMES)
    churn = Churn(args)

    def on_term(_signum, _frame):
        churn.stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    return churn.run()


if __name__ == "__main__":
    sys.exit(main())
