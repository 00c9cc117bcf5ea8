//! Bad input: every malformed, oversized or out-of-place request gets its exact error code
//! (echoing the request id where there is one), costs at most the offending connection,
//! and disturbs no other client. And a client that never reads holds up nobody else.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hotline_tests::{assert_dense, numbered, payload, payload_number, Client, Server, REPLY_WAIT_DEFAULT};
use hotline_wire::{
    fb, Credentials, ErrorBody, ErrorCode, Login, Message, Presence, Send, SendAck, SendFlags, Sender, Sync,
};

/// A valid length prefix (32) followed by 32 bytes that are no FlatBuffer: the root offset
/// alone (0xFFFF_FFFF) points far outside the frame.
fn garbage_frame() -> Vec<u8> {
    let mut bytes = 32u32.to_le_bytes().to_vec();
    bytes.extend([0xFF; 32]);
    bytes
}

/// A well-formed frame whose body is union member 200, which no Hotline version defines.
fn unknown_body_frame(request_id: u64) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let body = fb::Ping::create(&mut fbb, &fb::PingArgs { nonce: 7 });
    let frame = fb::Frame::create(
        &mut fbb,
        &fb::FrameArgs {
            request_id,
            body_type: fb::Body(200),
            body: Some(body.as_union_value()),
        },
    );
    fbb.finish_size_prefixed(frame, None);
    fbb.finished_data().to_vec()
}

/// Garbage after a valid length: MalformedFrame (request id 0, nothing could be read), and
/// the connection keeps working, state included.
fn check_garbage_body(addr: SocketAddr, username: &str) {
    let (mut client, _) = Client::new_user(addr, username);
    client.raw_write(&garbage_frame());
    assert_eq!(client.expect_error(REPLY_WAIT_DEFAULT), (0, ErrorCode::MalformedFrame));
    client.ping();
    let page = client.sync(0, 0);
    assert!(page.messages.is_empty(), "still logged in, with an empty inbox");
}

/// An unknown union member: UnknownBody echoing the request id; the connection stays.
fn check_unknown_body(addr: SocketAddr, username: &str) {
    let (mut client, _) = Client::new_user(addr, username);
    client.raw_write(&unknown_body_frame(4242));
    assert_eq!(client.expect_error(REPLY_WAIT_DEFAULT), (4242, ErrorCode::UnknownBody));
    client.ping();
}

/// A length prefix over the limit: FrameTooLarge (request id 0), then the server closes.
fn check_oversized_prefix(addr: SocketAddr, len: u32) {
    let mut client = Client::connect(addr);
    client.hello();
    client.raw_write(&len.to_le_bytes());
    assert_eq!(
        client.expect_error(REPLY_WAIT_DEFAULT),
        (0, ErrorCode::FrameTooLarge),
        "length prefix {len:#x}"
    );
    assert!(
        client.is_closed_by_server(Duration::from_secs(5)),
        "length prefix {len:#x}: the stream cannot be trusted after it, yet the server kept it open"
    );
}

/// Requests before Hello, and before Login: InvalidState echoing the request id, Ping
/// included. `username` is registered here, so the early Login's credentials are right
/// and only its timing is wrong.
fn check_requests_out_of_order(addr: SocketAddr, username: &str) {
    let password = Client::password_for(username);
    Client::register_user(addr, username);

    let mut before_hello = Client::connect(addr);
    let ping = before_hello.raw_request(&Message::Ping(hotline_wire::Ping { nonce: 3 }));
    assert_eq!(
        before_hello.expect_error(REPLY_WAIT_DEFAULT),
        (ping, ErrorCode::InvalidState),
        "Ping before Hello"
    );
    let login = before_hello.raw_request(&Message::Login(Login {
        credentials: Credentials::Password {
            username,
            password: &password,
        },
        device_name: "early",
    }));
    assert_eq!(
        before_hello.expect_error(REPLY_WAIT_DEFAULT),
        (login, ErrorCode::InvalidState),
        "Login before Hello"
    );

    // Separate connections: a server may close a connection after a request out of order.
    let mut before_login = Client::connect(addr);
    before_login.hello();
    let send = before_login.raw_request(&Message::Send(Send {
        client_msg_id: 1,
        to: 1,
        payload: b"too early",
        flags: SendFlags::NONE,
        group: 0,
        kind: hotline_wire::MessageKind::NORMAL,
        refers_to: 0,
    }));
    assert_eq!(
        before_login.expect_error(REPLY_WAIT_DEFAULT),
        (send, ErrorCode::InvalidState),
        "Send before Login"
    );

    let mut sync_before_login = Client::connect(addr);
    sync_before_login.hello();
    let sync = sync_before_login.raw_request(&Message::Sync(Sync { after_seq: 0, limit: 0 }));
    assert_eq!(
        sync_before_login.expect_error(REPLY_WAIT_DEFAULT),
        (sync, ErrorCode::InvalidState),
        "Sync before Login"
    );
}

/// Sends to nobody: NoSuchUser for an id that does not exist, InvalidRequest for id 0. The
/// refused sends take no seq.
fn check_send_to_nobody(addr: SocketAddr, username: &str) {
    let (mut client, login) = Client::new_user(addr, username);
    assert_eq!(client.send(999_999_999, 1, b"to nobody"), Err(ErrorCode::NoSuchUser));
    assert_eq!(client.send(0, 2, b"to id 0"), Err(ErrorCode::InvalidRequest));
    let ack = client
        .send(login.user_id, 3, b"to myself")
        .expect("a valid send afterwards");
    assert_eq!(ack.inbox_seq, 1, "the refused sends took no seqs");
}

/// A payload one byte over the limit: PayloadTooLarge echoing the request id, nothing
/// stored. A payload exactly at the limit goes through intact.
fn check_payload_limit(addr: SocketAddr, sender_name: &str, recipient_name: &str) {
    let (mut sender, _) = Client::new_user(addr, sender_name);
    let (mut recipient, r) = Client::new_user(addr, recipient_name);
    let max = hotline_wire::PAYLOAD_BYTES_MAX_DEFAULT as usize;
    let over = vec![0xAB; max + 1];
    let request = sender.raw_request(&Message::Send(Send {
        client_msg_id: 1,
        to: r.user_id,
        payload: &over,
        flags: SendFlags::NONE,
        group: 0,
        kind: hotline_wire::MessageKind::NORMAL,
        refers_to: 0,
    }));
    assert_eq!(
        sender.expect_error(REPLY_WAIT_DEFAULT),
        (request, ErrorCode::PayloadTooLarge)
    );
    let at_limit = vec![0xCD; max];
    let ack = sender.send(r.user_id, 2, &at_limit).expect("a payload at the limit");
    assert_eq!(ack.inbox_seq, 1, "the refused send took no seq");
    let d = recipient.expect_deliver();
    assert_eq!((d.inbox_seq, d.client_msg_id), (1, 2));
    assert!(d.payload == at_limit, "the 64 KiB payload arrived altered");
}

#[test]
fn a_garbage_body_is_malformed_frame_and_the_connection_survives() {
    let server = Server::start();
    check_garbage_body(server.addr(), "garbage");
}

#[test]
fn an_unknown_body_type_is_unknown_body_echoing_the_request_id() {
    let server = Server::start();
    check_unknown_body(server.addr(), "unknown");
}

#[test]
fn an_oversized_length_prefix_is_frame_too_large_then_closed() {
    let server = Server::start();
    check_oversized_prefix(server.addr(), u32::MAX);
    check_oversized_prefix(server.addr(), hotline_wire::FRAME_BYTES_MAX_DEFAULT + 1);
}

#[test]
fn requests_before_hello_or_login_are_invalid_state() {
    let server = Server::start();
    check_requests_out_of_order(server.addr(), "early");
}

/// The exact bytes of a size-prefixed `Ping` frame, built with the FlatBuffers runtime
/// alone (no Hotline encoder), as a client from the schema would.
fn ping_frame_bytes(request_id: u64, nonce: u64) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let body = fb::Ping::create(&mut fbb, &fb::PingArgs { nonce });
    let frame = fb::Frame::create(
        &mut fbb,
        &fb::FrameArgs {
            request_id,
            body_type: fb::Body::Ping,
            body: Some(body.as_union_value()),
        },
    );
    fbb.finish_size_prefixed(frame, None);
    fbb.finished_data().to_vec()
}

/// Reads one whole stream frame (length prefix included) from `stream`.
fn read_stream_frame(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut frame = vec![0u8; hotline_wire::FRAME_HEADER_BYTES];
    stream.read_exact(&mut frame).expect("a length prefix from the server");
    let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
    frame.resize(hotline_wire::FRAME_HEADER_BYTES + len, 0);
    stream
        .read_exact(&mut frame[hotline_wire::FRAME_HEADER_BYTES..])
        .expect("the frame body");
    frame
}

/// Regression: a Ping before Hello was answered with a Pong, though anything but Hello
/// first is `Error{InvalidState}`. Byte level: a raw socket, frames verified as
/// size-prefixed FlatBuffers; after Hello the same Ping bytes get their Pong.
#[test]
fn regression_ping_before_hello_is_invalid_state_not_pong() {
    use std::io::Write;
    let server = Server::start();
    let mut stream = std::net::TcpStream::connect(server.addr()).expect("connect");
    stream
        .set_read_timeout(Some(REPLY_WAIT_DEFAULT))
        .expect("a read timeout");
    stream.write_all(&ping_frame_bytes(31, 99)).expect("write the Ping");
    let reply = read_stream_frame(&mut stream);
    let frame = fb::size_prefixed_root_as_frame(&reply).expect("a verified size-prefixed frame");
    assert_eq!(frame.request_id(), 31, "the Error echoes the Ping's request id");
    let error = frame.body_as_error().unwrap_or_else(|| {
        panic!(
            "Ping before Hello answered with body {:?}, not Error",
            frame.body_type()
        )
    });
    assert_eq!(error.code(), fb::ErrorCode::InvalidState, "{:?}", error.message());

    // The same connection, after Hello: the same bytes get their Pong.
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let client_name = fbb.create_string("bytes");
    let body = fb::Hello::create(
        &mut fbb,
        &fb::HelloArgs {
            version_min: hotline_wire::PROTOCOL_VERSION_MIN,
            version_max: hotline_wire::PROTOCOL_VERSION,
            client_name: Some(client_name),
        },
    );
    let hello = fb::Frame::create(
        &mut fbb,
        &fb::FrameArgs {
            request_id: 32,
            body_type: fb::Body::Hello,
            body: Some(body.as_union_value()),
        },
    );
    fbb.finish_size_prefixed(hello, None);
    stream.write_all(fbb.finished_data()).expect("write the Hello");
    let reply = read_stream_frame(&mut stream);
    let frame = fb::size_prefixed_root_as_frame(&reply).expect("a verified size-prefixed frame");
    assert_eq!((frame.request_id(), frame.body_type()), (32, fb::Body::HelloOk));
    stream.write_all(&ping_frame_bytes(33, 100)).expect("write the Ping");
    let reply = read_stream_frame(&mut stream);
    let frame = fb::size_prefixed_root_as_frame(&reply).expect("a verified size-prefixed frame");
    assert_eq!(frame.request_id(), 33);
    let pong = frame
        .body_as_pong()
        .unwrap_or_else(|| panic!("Ping after Hello answered with body {:?}, not Pong", frame.body_type()));
    assert_eq!(pong.nonce(), 100);
}

#[test]
fn sending_to_a_user_that_does_not_exist_is_no_such_user() {
    let server = Server::start();
    check_send_to_nobody(server.addr(), "lonely");
}

#[test]
fn a_payload_over_the_limit_is_payload_too_large() {
    let server = Server::start();
    check_payload_limit(server.addr(), "big-sender", "big-recipient");
}

#[test]
fn bad_input_on_some_connections_disturbs_no_other_client() {
    const MESSAGES: u64 = 200;
    let server = Server::start();
    let addr = server.addr();
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    // Healthy traffic throughout.
    let traffic = thread::spawn(move || alice.send_all(b.user_id, &numbered("ok", 1..=MESSAGES, 0), 4));

    check_garbage_body(addr, "garbage");
    check_unknown_body(addr, "unknown");
    check_oversized_prefix(addr, u32::MAX);
    check_oversized_prefix(addr, hotline_wire::FRAME_BYTES_MAX_DEFAULT + 1);
    check_requests_out_of_order(addr, "early");
    check_send_to_nobody(addr, "lonely");
    check_payload_limit(addr, "big-sender", "big-recipient");

    let acks = traffic.join().expect("the healthy sender failed");
    let delivered = bob.expect_delivers(MESSAGES as usize);
    assert_dense(&delivered, 1, "bob's deliveries during the bad input");
    for (d, ack) in delivered.iter().zip(&acks) {
        assert_eq!(d.message_id, ack.message_id);
    }

    // A pair that connects afterwards works as on a fresh server.
    let (mut carol, c) = Client::new_user(addr, "carol");
    let (mut dave, d) = Client::new_user(addr, "dave");
    let ack = carol.send(d.user_id, 1, b"still fine").expect("carol sends");
    assert_eq!(ack.inbox_seq, 1);
    let got = dave.expect_deliver();
    assert_eq!(
        (got.inbox_seq, got.sender, got.payload.as_slice()),
        (1, c.user_id, &b"still fine"[..])
    );
    dave.send(c.user_id, 1, b"and back").expect("dave replies");
    assert_eq!(carol.expect_deliver().inbox_seq, 2);
}

#[test]
fn a_client_that_never_reads_does_not_delay_other_deliveries() {
    const FLOOD: u64 = 2_000;
    const FLOOD_PAYLOAD_BYTES: usize = 4 << 10;
    const FLOOD_ACKED_BEFORE_PROBES: u64 = 200;
    const PROBES: u64 = 50;
    // Bounds the probe loop: the flood takes seconds, this is over half a minute of probing.
    const PROBES_MAX: u64 = 3_000;
    const PROBE_INTERVAL: Duration = Duration::from_millis(10);
    // A correctness bound, not a benchmark: a delivery held up behind the stalled client
    // would take until that client read again, which here is never during the probes.
    const PROBE_LATENCY_MAX: Duration = Duration::from_secs(1);

    let server = Server::options().cores(2).start();
    let addr = server.addr();
    // Logged in, then never read from until the very end.
    let (stalled, stalled_login) = Client::new_user(addr, "stalled");
    let (mut sender, _) = Client::new_user(addr, "sender");
    let (mut receiver, r) = Client::new_user(addr, "receiver");

    let flood = numbered("flood", 1..=FLOOD, FLOOD_PAYLOAD_BYTES);
    let flood_acked = Arc::new(AtomicU64::new(0));
    let flooder = {
        let flood_acked = Arc::clone(&flood_acked);
        let to = stalled_login.user_id;
        thread::spawn(move || {
            let (mut flooder, _) = Client::new_user(addr, "flooder");
            flooder.send_pipelined(to, &flood, 32, |_, reply| {
                if reply.is_ok() {
                    flood_acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while flood_acked.load(Ordering::SeqCst) < FLOOD_ACKED_BEFORE_PROBES && !flooder.is_finished() {
        assert!(Instant::now() < deadline, "the flood made no progress in 30 s");
        thread::sleep(Duration::from_millis(1));
    }

    // Probe until the flood is over (at least PROBES times), so probes also run once the
    // stalled connection's socket buffers are full, which is when blocking would show.
    // A server that blocked on the stalled socket would also hold up the probe's SendAck:
    // the probe sender's wait is then what fails, naming the probe's client_msg_id.
    sender.set_wait(PROBE_LATENCY_MAX * 2);
    let mut latency_max = Duration::ZERO;
    let mut probes = 0;
    while probes < PROBES || !flooder.is_finished() {
        probes += 1;
        assert!(probes <= PROBES_MAX, "the flood outlasted {PROBES_MAX} probes");
        let sent_at = Instant::now();
        let ack = sender
            .send(r.user_id, probes, &payload("probe", probes, 0))
            .expect("probe send");
        let d = receiver
            .next_deliver(PROBE_LATENCY_MAX * 2)
            .unwrap_or_else(|| panic!("probe {probes} was not delivered within {:?}", PROBE_LATENCY_MAX * 2));
        let latency = sent_at.elapsed();
        assert_eq!((d.inbox_seq, d.message_id), (probes, ack.message_id));
        assert!(
            latency < PROBE_LATENCY_MAX,
            "probe {probes} took {latency:?} to arrive ({} of {FLOOD} flood messages acknowledged)",
            flood_acked.load(Ordering::SeqCst)
        );
        latency_max = latency_max.max(latency);
        thread::sleep(PROBE_INTERVAL);
    }

    let flooded = flooder.join().expect("the flood thread panicked");
    assert!(!flooded.closed, "the flooder's connection closed");
    let flood_acks = flooded.acks();
    assert_eq!(flood_acks.len() as u64, FLOOD, "every flood message acknowledged");
    eprintln!("{probes} probes during the flood, slowest {latency_max:?}");

    // The stalled client reads again: everything arrives, in order, without gaps, either
    // on the same connection or, if the server dropped it, after a token login.
    let mut stalled = stalled;
    let mut got = Vec::new();
    while (got.len() as u64) < FLOOD {
        match stalled.next_deliver(REPLY_WAIT_DEFAULT) {
            Some(d) => got.push(d),
            None => break,
        }
    }
    assert_dense(&got, 1, "the stalled connection once it read again");
    if (got.len() as u64) < FLOOD {
        assert!(
            stalled.closed_reason().is_some(),
            "the stalled connection stayed open but stopped delivering after {} of {FLOOD}",
            got.len()
        );
        let (mut resumed, login) = Client::resume(addr, &stalled_login.token);
        assert!(
            login.device_cursor <= got.len() as u64,
            "cursor {} is past what the device received",
            login.device_cursor
        );
        got.truncate(usize::try_from(login.device_cursor).expect("fits usize"));
        let rest = resumed.expect_delivers(usize::try_from(FLOOD - login.device_cursor).expect("fits usize"));
        assert_dense(&rest, login.device_cursor + 1, "the resumed device's catch-up");
        got.extend(rest);
    }
    assert_eq!(got.len() as u64, FLOOD);
    let mut seen = vec![false; FLOOD as usize];
    for d in &got {
        let (_, n) = payload_number(&d.payload).expect("a flood payload");
        let index = usize::try_from(n - 1).expect("fits usize");
        assert!(!seen[index], "flood message {n} delivered twice");
        seen[index] = true;
        assert_eq!(d.payload.len(), FLOOD_PAYLOAD_BYTES);
        assert_eq!(d.message_id, flood_acks[index].1.message_id, "flood message {n}");
    }
}

/// A body only servers send (the wire table's `Sender::Server`: a reply, a push, an
/// `Error`, a body without fields) is InvalidRequest echoing the request id; the
/// connection stays.
#[test]
fn a_body_only_servers_send_is_invalid_request_and_the_connection_survives() {
    let server = Server::start();
    let (mut client, _) = Client::new_user(server.addr(), "impostor");
    let bodies = [
        Message::SendAck(SendAck::default()),
        Message::Done,
        Message::Error(ErrorBody {
            code: ErrorCode::Internal,
            message: "from a client",
            retry_after_ms: 0,
        }),
        Message::Presence(Presence::default()),
    ];
    for body in &bodies {
        assert_eq!(body.message_type().sender(), Sender::Server, "{}", body.name());
        let request_id = client.raw_request(body);
        assert_eq!(
            client.expect_error(REPLY_WAIT_DEFAULT),
            (request_id, ErrorCode::InvalidRequest),
            "{} from a client",
            body.name()
        );
    }
    client.ping();
}
