// A Hotline client session over WebSocket, on the TypeScript code `flatc --ts` generates from
// wire/schema/hotline.fbs (web/src/generated, kept fresh by `scripts/gen-wire --check`).
//
// One binary WebSocket message carries exactly one Frame (no length prefix). Requests get a
// request id and return a Promise settled by the reply that echoes it; an Error frame
// rejects it with a HotlineError. Server pushes (Deliver) go to `onDeliver`; a server Ping
// is answered automatically.
//
// Early delivery: a message may arrive before the server fsynced it. `durableSeq` is the
// inbox seq up to which the server has said everything is durable (from each Deliver's
// watermark, `Durable` pushes, SendAcks and history pages); acknowledge only up to it
// (`ackable`). An app that keeps messages across sessions drops those it got above
// `durableSeq` when a later login answers another `epoch`: the server restarted and sends
// again whatever survived.
//
// Use:
//   const s = await HotlineSession.connect("ws://127.0.0.1:7701/");
//   await s.register("alice", "secret");              // if registration is open
//   const me = await s.login("alice", "secret", "browser");
//   s.onDeliver = (m) => { ...; s.ack(m.inboxSeq); };
//   const ack = await s.send(bobId, new TextEncoder().encode("hi"));
//   const page = await s.sync(0n, 100);

import * as flatbuffers from "flatbuffers";
import {
  Ack,
  Body,
  ConversationKind,
  Deliver,
  Durable,
  Error as ErrorBody,
  ErrorCode,
  Frame,
  Hello,
  HelloOk,
  Login,
  LoginOk,
  MessageKind,
  Logout,
  Ping,
  Pong,
  Register,
  RegisterOk,
  Send,
  SendAck,
  Sync,
  SyncPage,
  SendFlags,
  AckOk,
  ConversationList,
  ConversationRef,
  Conversations,
  MarkRead,
  ReadPosition,
} from "./generated/hotline/wire/fb.js";

export { ErrorCode };

/** Protocol versions this client speaks (wire::PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION). */
export const PROTOCOL_VERSION_MIN = 1;
export const PROTOCOL_VERSION = 1;
/** `request_id == 0`: a server push, or a request that wants no reply. */
export const REQUEST_ID_NONE = 0n;

/** A typed failure the server answered a request with. */
export class HotlineError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfterMs = 0,
  ) {
    super(`${ErrorCode[code] ?? code}: ${message}`);
  }
}

/** What `login` returns. `token` resumes this device later (`loginToken`). */
export interface LoggedIn {
  userId: bigint;
  deviceId: bigint;
  token: Uint8Array;
  inboxSeq: bigint;
  deviceCursor: bigint;
  /** The server's epoch, bumped at every start (see the header). */
  epoch: bigint;
}

/** One inbox entry: a live push, catch-up after login, or a history page entry. */
export interface Message {
  messageId: bigint;
  /** The other party: for a direct message, the peer's user id. */
  conversation: { kind: ConversationKind; id: bigint };
  sender: bigint;
  senderDevice: bigint;
  inboxSeq: bigint;
  timestampUs: bigint;
  payload: Uint8Array;
  clientMsgId: bigint;
  /** The receiving user's durable watermark when this was sent. */
  durableSeq: bigint;
}

export interface Acked {
  clientMsgId: bigint;
  messageId: bigint;
  inboxSeq: bigint;
  timestampUs: bigint;
}

export interface Page {
  messages: Message[];
  inboxSeq: bigint;
  more: boolean;
}

/** A conversation seen from this user: `kind` and `id` as in `Message.conversation`. */
export interface ConversationId {
  kind: ConversationKind;
  id: bigint;
}

/** This user's read position in one conversation (stored by the server, shared by devices). */
export interface ReadState {
  conversation: ConversationId;
  /** The inbox seq read up to (never moves backwards). */
  readSeq: bigint;
  /** Messages from others in the conversation after `readSeq`. */
  unread: bigint;
  /** The conversation's newest inbox seq. */
  lastSeq: bigint;
}

interface Pending {
  resolve: (frame: Frame) => void;
  reject: (e: unknown) => void;
}

/** A client session over one WebSocket. */
export class HotlineSession {
  /** Called for every Deliver the server pushes. */
  onDeliver: (m: Message) => void = () => {};
  /** Called when another device of this user moved a read position (a `ReadPosition` push). */
  onReadPosition: (r: ReadState) => void = () => {};
  /** Called when the durable watermark moved (a `Durable` push). */
  onDurable: (inboxSeq: bigint) => void = () => {};
  /** Every inbox entry up to this seq is durable; the ones above are tentative. */
  durableSeq = 0n;
  /** The server announced an epoch: it delivers early, and `durableSeq` is what it said. */
  private earlyDelivery = false;
  /** Called once when the connection ends (with the server's last error, if any). */
  onClose: (why: string) => void = () => {};
  /** The server's limits from HelloOk. */
  payloadBytesMax = 0;

  private nextRequestId = 1n;
  private nextClientMsgId = BigInt(Date.now()) * 1000n;
  private readonly pending = new Map<bigint, Pending>();
  private closed = false;
  private lastError = "";

  private constructor(private readonly ws: WebSocket) {
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => this.receive(new Uint8Array(ev.data as ArrayBuffer));
    ws.onclose = (ev) => this.finish(this.lastError || `connection closed (${ev.code})`);
    ws.onerror = () => this.finish(this.lastError || "connection failed");
  }

  /** Opens the WebSocket and completes Hello. */
  static async connect(url: string, clientName = "hotline-web"): Promise<HotlineSession> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot open ${url}`));
    });
    const session = new HotlineSession(ws);
    const reply = await session.request((b) => {
      const name = b.createString(clientName);
      return [Body.Hello, Hello.createHello(b, PROTOCOL_VERSION_MIN, PROTOCOL_VERSION, name)];
    });
    const ok = reply.body(new HelloOk()) as HelloOk;
    session.payloadBytesMax = ok.limits()?.payloadBytesMax() ?? 0;
    return session;
  }

  /** Creates an account; resolves to its user id. */
  async register(username: string, password: string): Promise<bigint> {
    const reply = await this.request((b) => {
      const u = b.createString(username);
      const p = b.createString(password);
      return [Body.Register, Register.createRegister(b, u, p)];
    });
    return (reply.body(new RegisterOk()) as RegisterOk).userId();
  }

  /** Logs in with a password on a new device. */
  async login(username: string, password: string, deviceName: string): Promise<LoggedIn> {
    return this.loginWith((b) => {
      const u = b.createString(username);
      const p = b.createString(password);
      const d = b.createString(deviceName);
      Login.startLogin(b);
      Login.addUsername(b, u);
      Login.addPassword(b, p);
      Login.addDeviceName(b, d);
      return Login.endLogin(b);
    });
  }

  /** Resumes the device a token was issued to. */
  async loginToken(token: Uint8Array, deviceName: string): Promise<LoggedIn> {
    return this.loginWith((b) => {
      const t = Login.createTokenVector(b, token);
      const d = b.createString(deviceName);
      Login.startLogin(b);
      Login.addToken(b, t);
      Login.addDeviceName(b, d);
      return Login.endLogin(b);
    });
  }

  private async loginWith(build: (b: flatbuffers.Builder) => flatbuffers.Offset): Promise<LoggedIn> {
    const reply = await this.request((b) => [Body.Login, build(b)]);
    const ok = reply.body(new LoginOk()) as LoginOk;
    this.earlyDelivery = ok.epoch() !== 0n;
    // The device's cursor covers only durable entries; an older server's are all durable.
    this.durableSeq = this.earlyDelivery ? ok.deviceCursor() : ok.inboxSeq();
    return {
      userId: ok.userId(),
      deviceId: ok.deviceId(),
      token: ok.tokenArray()?.slice() ?? new Uint8Array(),
      inboxSeq: ok.inboxSeq(),
      deviceCursor: ok.deviceCursor(),
      epoch: ok.epoch(),
    };
  }

  /** Sends an opaque payload to a user; resolves once it is durable. */
  async send(to: bigint, payload: Uint8Array): Promise<Acked> {
    const clientMsgId = this.nextClientMsgId++;
    const reply = await this.request((b) => {
      const p = Send.createPayloadVector(b, payload);
      return [Body.Send, Send.createSend(b, clientMsgId, to, p, 0 as SendFlags, 0n, MessageKind.Normal, 0n)];
    });
    const ack = reply.body(new SendAck()) as SendAck;
    // Acknowledged after the fsync of the own copy, and of everything before it.
    this.learnDurable(ack.inboxSeq());
    return {
      clientMsgId: ack.clientMsgId(),
      messageId: ack.messageId(),
      inboxSeq: ack.inboxSeq(),
      timestampUs: ack.timestampUs(),
    };
  }

  /** Acknowledges everything up to `upToSeq`. `confirmed`: wait until the cursor is durable. */
  async ack(upToSeq: bigint, confirmed = false): Promise<void> {
    const build = (b: flatbuffers.Builder): [Body, flatbuffers.Offset] => [Body.Ack, Ack.createAck(b, upToSeq)];
    if (confirmed) {
      const reply = await this.request(build);
      reply.body(new AckOk());
    } else {
      this.write(REQUEST_ID_NONE, build);
    }
  }

  /** How far a device holding everything up to `heldSeq` may acknowledge: only what is
   * also durable (`durableSeq`). */
  ackable(heldSeq: bigint): bigint {
    return heldSeq < this.durableSeq ? heldSeq : this.durableSeq;
  }

  private learnDurable(seq: bigint): void {
    if (seq > this.durableSeq) this.durableSeq = seq;
  }

  /** One page of this user's inbox after `afterSeq`. */
  async sync(afterSeq: bigint, limit: number): Promise<Page> {
    const reply = await this.request((b) => [Body.Sync, Sync.createSync(b, afterSeq, limit)]);
    const page = reply.body(new SyncPage()) as SyncPage;
    const messages: Message[] = [];
    for (let i = 0; i < page.messagesLength(); i++) {
      const d = page.messages(i);
      if (d) messages.push(toMessage(d));
    }
    // The server reads only durable entries.
    this.learnDurable(page.inboxSeq());
    return { messages, inboxSeq: page.inboxSeq(), more: page.more() };
  }

  /** Marks `conversation` read up to its inbox entry `upToSeq`; every device of this user
   * sees the new position (the others through `onReadPosition`). */
  async markRead(conversation: ConversationId, upToSeq: bigint): Promise<ReadState> {
    const reply = await this.request((b) => {
      MarkRead.startMarkRead(b);
      MarkRead.addConversation(b, ConversationRef.createConversationRef(b, conversation.kind, conversation.id));
      MarkRead.addUpToSeq(b, upToSeq);
      return [Body.MarkRead, MarkRead.endMarkRead(b)];
    });
    return toReadState(reply.body(new ReadPosition()) as ReadPosition);
  }

  /** Every conversation of this user with its read position and unread count. */
  async conversations(): Promise<ReadState[]> {
    const all: ReadState[] = [];
    let after: ConversationId = { kind: ConversationKind.Direct, id: 0n };
    for (;;) {
      const from = after;
      const reply = await this.request((b) => {
        Conversations.startConversations(b);
        Conversations.addAfter(b, ConversationRef.createConversationRef(b, from.kind, from.id));
        return [Body.Conversations, Conversations.endConversations(b)];
      });
      const list = reply.body(new ConversationList()) as ConversationList;
      for (let i = 0; i < list.conversationsLength(); i++) {
        const r = list.conversations(i);
        if (r) all.push(toReadState(r));
      }
      if (!list.more() || all.length === 0) return all;
      after = all[all.length - 1].conversation;
    }
  }

  /** Revokes this device's token and closes. */
  async logout(): Promise<void> {
    await this.request((b) => {
      Logout.startLogout(b);
      return [Body.Logout, Logout.endLogout(b)];
    });
  }

  close(): void {
    this.ws.close();
  }

  private request(build: (b: flatbuffers.Builder) => [Body, flatbuffers.Offset]): Promise<Frame> {
    if (this.closed) return Promise.reject(new Error(this.lastError || "connection closed"));
    const requestId = this.nextRequestId++;
    const promise = new Promise<Frame>((resolve, reject) => this.pending.set(requestId, { resolve, reject }));
    this.write(requestId, build);
    return promise;
  }

  private write(requestId: bigint, build: (b: flatbuffers.Builder) => [Body, flatbuffers.Offset]): void {
    const b = new flatbuffers.Builder(256);
    const [type, body] = build(b);
    b.finish(Frame.createFrame(b, requestId, type, body));
    this.ws.send(b.asUint8Array() as Uint8Array<ArrayBuffer>);
  }

  private receive(bytes: Uint8Array): void {
    const frame = Frame.getRootAsFrame(new flatbuffers.ByteBuffer(bytes));
    const requestId = frame.requestId();
    const type = frame.bodyType();
    if (type === Body.Deliver) {
      const m = toMessage(frame.body(new Deliver()) as Deliver);
      this.learnDurable(this.earlyDelivery ? m.durableSeq : m.inboxSeq);
      this.onDeliver(m);
      return;
    }
    if (type === Body.Durable) {
      const seq = (frame.body(new Durable()) as Durable).inboxSeq();
      this.learnDurable(seq);
      this.onDurable(seq);
      return;
    }
    if (type === Body.ReadPosition && requestId === REQUEST_ID_NONE) {
      this.onReadPosition(toReadState(frame.body(new ReadPosition()) as ReadPosition));
      return;
    }
    if (type === Body.Ping) {
      const nonce = (frame.body(new Ping()) as Ping).nonce();
      this.write(REQUEST_ID_NONE, (b) => [Body.Pong, Pong.createPong(b, nonce)]);
      return;
    }
    if (type === Body.Error) {
      const e = frame.body(new ErrorBody()) as ErrorBody;
      const error = new HotlineError(e.code(), e.message() ?? "", e.retryAfterMs());
      this.lastError = error.message;
      const waiter = this.pending.get(requestId);
      if (waiter) {
        this.pending.delete(requestId);
        waiter.reject(error);
      }
      return;
    }
    const waiter = this.pending.get(requestId);
    if (waiter) {
      this.pending.delete(requestId);
      waiter.resolve(frame);
    }
  }

  private finish(why: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.pending.values()) waiter.reject(new Error(why));
    this.pending.clear();
    this.onClose(why);
  }
}

function toMessage(d: Deliver): Message {
  const conversation = d.conversation();
  return {
    messageId: d.messageId(),
    conversation: {
      kind: conversation?.kind() ?? ConversationKind.Direct,
      id: conversation?.id() ?? 0n,
    },
    sender: d.sender(),
    senderDevice: d.senderDevice(),
    inboxSeq: d.inboxSeq(),
    timestampUs: d.timestampUs(),
    payload: d.payloadArray()?.slice() ?? new Uint8Array(),
    clientMsgId: d.clientMsgId(),
    durableSeq: d.durableSeq(),
  };
}

function toReadState(r: ReadPosition): ReadState {
  const conversation = r.conversation();
  return {
    conversation: { kind: conversation?.kind() ?? ConversationKind.Direct, id: conversation?.id() ?? 0n },
    readSeq: r.readSeq(),
    unread: r.unread(),
    lastSeq: r.lastSeq(),
  };
}
