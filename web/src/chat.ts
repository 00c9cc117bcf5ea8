// The web chat page: log in (or create an account), see conversations with unread counts,
// send and receive in real time, history after a reload. Plain DOM, no framework; the
// protocol is the generated TypeScript client behind HotlineSession.
//
// Conventions of this page (the server never reads payloads): a payload is UTF-8 JSON
// {"text": ..., "from": username}; anything else is shown as UTF-8 text. The page shows
// direct conversations. The device token is kept in localStorage, so a reload resumes the
// same device. Read positions are the server's (MarkRead, Conversations, ReadPosition
// pushes), so unread counts survive a reload and follow the user across devices.

import { HotlineError, HotlineSession, type Message, type ReadState } from "./session.js";
import { ConversationKind } from "./generated/hotline/wire/fb.js";

interface Entry {
  seq: bigint;
  mine: boolean;
  from: string;
  text: string;
}

interface Conversation {
  peer: bigint;
  name: string;
  entries: Map<bigint, Entry>;
}

const SYNC_PAGE_MESSAGES = 256;
const TOKEN_KEY = "hotline.token";
const USERNAME_KEY = "hotline.username";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

let session: HotlineSession | null = null;
let me = { userId: 0n, username: "" };
let open: bigint | null = null;
let ackedSeq = 0n;
const conversations = new Map<bigint, Conversation>();
/** The server's read position per direct conversation (peer user id → inbox seq). */
const readSeqs = new Map<bigint, bigint>();

function status(text: string): void {
  $("status").textContent = text;
}

function wsUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
}

function readSeq(peer: bigint): bigint {
  return readSeqs.get(peer) ?? 0n;
}

/** Takes a read position the server reported (never moving one backwards). */
function learnRead(r: ReadState): void {
  if (r.conversation.kind !== ConversationKind.Direct) return;
  if (r.readSeq > readSeq(r.conversation.id)) readSeqs.set(r.conversation.id, r.readSeq);
}

function decode(payload: Uint8Array): { text: string; from?: string } {
  const raw = decoder.decode(payload);
  try {
    const parsed = JSON.parse(raw) as { text?: unknown; from?: unknown };
    if (typeof parsed.text === "string") {
      return { text: parsed.text, from: typeof parsed.from === "string" ? parsed.from : undefined };
    }
  } catch {
    // Not this page's format: show it as text.
  }
  return { text: raw };
}

function conversation(peer: bigint): Conversation {
  let c = conversations.get(peer);
  if (!c) {
    c = { peer, name: `user ${peer}`, entries: new Map() };
    conversations.set(peer, c);
  }
  return c;
}

/** Adds an inbox entry (live push, catch-up or history); a seq seen before is ignored. */
function add(m: Message): void {
  if (m.conversation.kind !== ConversationKind.Direct) return; // groups: not on this page
  const c = conversation(m.conversation.id);
  if (c.entries.has(m.inboxSeq)) return;
  const mine = m.sender === me.userId;
  const body = decode(m.payload);
  if (!mine && body.from) c.name = body.from;
  c.entries.set(m.inboxSeq, {
    seq: m.inboxSeq,
    mine,
    from: mine ? me.username : body.from ?? `user ${m.sender}`,
    text: body.text,
  });
}

function unread(c: Conversation): number {
  const read = readSeq(c.peer);
  let n = 0;
  for (const e of c.entries.values()) if (!e.mine && e.seq > read) n++;
  return n;
}

/** Marks everything shown in `c` read, on the server (so other devices follow). */
function markRead(c: Conversation): void {
  const last = lastSeq(c);
  if (!session || last <= readSeq(c.peer)) return;
  readSeqs.set(c.peer, last);
  session
    .markRead({ kind: ConversationKind.Direct, id: c.peer }, last)
    .then((r) => {
      learnRead(r);
      render();
    })
    .catch(() => {});
}

function render(): void {
  const list = $("convs");
  list.replaceChildren();
  const ordered = [...conversations.values()].sort((a, b) => Number(lastSeq(b) - lastSeq(a)));
  for (const c of ordered) {
    const li = document.createElement("li");
    li.className = "conv" + (c.peer === open ? " open" : "");
    li.dataset.peer = c.peer.toString();
    li.dataset.lastSeq = lastSeq(c).toString();
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.name;
    const badge = document.createElement("span");
    badge.className = "unread";
    const n = c.peer === open ? 0 : unread(c);
    badge.textContent = n > 0 ? String(n) : "";
    li.append(name, badge);
    li.onclick = () => openConversation(c.peer);
    list.append(li);
  }
  const messages = $("messages");
  messages.replaceChildren();
  if (open === null) return;
  const c = conversation(open);
  $("title").textContent = `${c.name} (user ${c.peer})`;
  const entries = [...c.entries.values()].sort((a, b) => (a.seq < b.seq ? -1 : 1));
  for (const e of entries) {
    const li = document.createElement("li");
    li.className = e.mine ? "mine" : "theirs";
    li.dataset.seq = e.seq.toString();
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = e.from;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = e.text;
    li.append(who, text);
    messages.append(li);
  }
  messages.scrollTop = messages.scrollHeight;
}

function lastSeq(c: Conversation): bigint {
  let max = 0n;
  for (const seq of c.entries.keys()) if (seq > max) max = seq;
  return max;
}

function openConversation(peer: bigint): void {
  open = peer;
  markRead(conversation(peer));
  ($("text") as HTMLInputElement).disabled = false;
  ($("send-btn") as HTMLButtonElement).disabled = false;
  render();
  $("text").focus();
}

/** Acknowledges the highest inbox seq held that the server said is durable, so the
 * server's cursor follows this device (never over an entry delivered before its fsync). */
function ackHeld(): void {
  let max = ackedSeq;
  for (const c of conversations.values()) {
    const seq = lastSeq(c);
    if (seq > max) max = seq;
  }
  const seq = session ? session.ackable(max) : 0n;
  if (session && seq > ackedSeq) {
    ackedSeq = seq;
    void session.ack(seq).catch(() => {});
  }
}

async function start(login: (s: HotlineSession) => Promise<{ userId: bigint; token: Uint8Array }>, username: string): Promise<void> {
  const s = await HotlineSession.connect(wsUrl());
  s.onDeliver = (m) => {
    add(m);
    if (m.conversation.id === open) markRead(conversation(open));
    render();
    ackHeld();
  };
  s.onReadPosition = (r) => {
    learnRead(r);
    render();
  };
  s.onDurable = () => ackHeld();
  s.onClose = (why) => {
    if (session === s) {
      session = null;
      $("me").textContent = `${me.username}: disconnected (${why}); reload to reconnect`;
    }
  };
  const logged = await login(s);
  session = s;
  me = { userId: logged.userId, username };
  localStorage.setItem(TOKEN_KEY, toHex(logged.token));
  localStorage.setItem(USERNAME_KEY, username);
  $("me").textContent = `${username} (user ${logged.userId})`;
  $("me").dataset.userId = logged.userId.toString();
  $("login-form").hidden = true;
  $("chat").hidden = false;
  $("logout-btn").hidden = false;
  // History: every page of the inbox; live pushes meanwhile are merged by seq.
  let after = 0n;
  for (;;) {
    const page = await s.sync(after, SYNC_PAGE_MESSAGES);
    for (const m of page.messages) {
      add(m);
      after = m.inboxSeq;
    }
    if (!page.more || page.messages.length === 0) break;
  }
  for (const r of await s.conversations()) learnRead(r);
  render();
  ackHeld();
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function describe(e: unknown): string {
  return e instanceof HotlineError || e instanceof Error ? e.message : String(e);
}

async function withPassword(register: boolean): Promise<void> {
  const username = ($("username") as HTMLInputElement).value.trim();
  const password = ($("password") as HTMLInputElement).value;
  if (!username || !password) return status("username and password, please");
  status("");
  try {
    await start(async (s) => {
      if (register) await s.register(username, password);
      return s.login(username, password, navigator.userAgent.slice(0, 60));
    }, username);
  } catch (e) {
    status(describe(e));
  }
}

async function send(): Promise<void> {
  const input = $("text") as HTMLInputElement;
  const text = input.value;
  if (!session || open === null || !text) return;
  const to = open;
  input.value = "";
  try {
    const payload = encoder.encode(JSON.stringify({ text, from: me.username }));
    const ack = await session.send(to, payload);
    conversation(to).entries.set(ack.inboxSeq, { seq: ack.inboxSeq, mine: true, from: me.username, text });
    markRead(conversation(to));
    render();
    ackHeld();
  } catch (e) {
    input.value = text;
    $("title").textContent = `not sent: ${describe(e)}`;
  }
}

$("login-form").onsubmit = (ev) => {
  ev.preventDefault();
  void withPassword(false);
};
$("register-btn").onclick = () => void withPassword(true);
$("composer").onsubmit = (ev) => {
  ev.preventDefault();
  void send();
};
$("new-chat").onsubmit = (ev) => {
  ev.preventDefault();
  const raw = ($("new-peer") as HTMLInputElement).value.trim();
  if (/^[0-9]+$/.test(raw) && raw !== "0") openConversation(BigInt(raw));
};
$("logout-btn").onclick = async () => {
  try {
    await session?.logout();
  } catch {
    // Logged out or gone either way.
  }
  localStorage.removeItem(TOKEN_KEY);
  location.reload();
};

// A reload resumes the device this browser logged in before.
const savedToken = localStorage.getItem(TOKEN_KEY);
const savedName = localStorage.getItem(USERNAME_KEY);
if (savedToken && savedName) {
  start((s) => s.loginToken(fromHex(savedToken), "browser"), savedName).catch((e) => {
    localStorage.removeItem(TOKEN_KEY);
    status(`please log in again (${describe(e)})`);
  });
}
