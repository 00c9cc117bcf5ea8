//! Hostile clients: slowloris, half-open connections, thousands of connections that never
//! log in, a 4 GiB length prefix, a frame that never completes, garbage after a valid
//! frame, protocol steps out of order, token replay after logout, reaching into another
//! user's inbox, requests sent without ever reading the replies. Each test asserts the server's clear answer (the `Error` code, the close)
//! and that a well-behaved pair on the same server still gets its messages on time.
//! (`bad_input.rs` covers malformed frames one by one; this file is about attackers.)

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use hotline_tests::{Client, LoggedIn, Server, REPLY_WAIT_DEFAULT};
use hotline_wire::{Conversation, Credentials, Encoder, ErrorCode, Hello, Login, Message, Ping, Sync};

/// The server's login timeout in these tests: short, so the tests are.
const LOGIN_TIMEOUT_MS: u64 = 1_500;
/// Long enough that the well-behaved pair never idles out between checks.
const IDLE_TIMEOUT_MS: u32 = 20_000;
/// "On time": a correctness bound, not a benchmark (loopback deliveries take ~1 ms).
const ON_TIME: Duration = Duration::from_millis(500);
/// How long after the login timeout a hostile connection must be gone (sweep period and
/// close linger included).
const CLOSE_SLACK: Duration = Duration::from_secs(3);

fn server() -> Server {
    Server::options()
        .idle_timeout_ms(IDLE_TIMEOUT_MS)
        .arg("--login-timeout-ms")
        .arg(LOGIN_TIMEOUT_MS.to_string())
        .cores(2)
        .start()
}

/// A well-behaved sender and recipient on the server under attack.
struct Pair {
    alice: Client,
    alice_id: u64,
    bob: Client,
    bob_login: LoggedIn,
    sent: u64,
}

impl Pair {
    fn new(addr: SocketAddr) -> Pair {
        let (alice, a) = Client::new_user(addr, "alice");
        let (bob, bob_login) = Client::new_user(addr, "bob");
        Pair {
            alice,
            alice_id: a.user_id,
            bob,
            bob_login,
            sent: 0,
        }
    }

    /// Alice sends one message; bob must have it within [`ON_TIME`] of the send.
    fn assert_on_time(&mut self, during: &str) {
        self.sent += 1;
        let text = format!("on time #{} during {during}", self.sent);
        let start = Instant::now();
        self.alice
            .send(self.bob_login.user_id, self.sent, text.as_bytes())
            .unwrap_or_else(|code| panic!("the well-behaved send during {during} failed: {code:?}"));
        let got = self
            .bob
            .next_deliver(ON_TIME)
            .unwrap_or_else(|| panic!("bob got nothing within {ON_TIME:?} during {during}"));
        let took = start.elapsed();
        assert_eq!(got.payload, text.as_bytes(), "during {during}");
        assert_eq!(got.inbox_seq, self.sent, "bob's inbox stays dense during {during}");
        assert!(took <= ON_TIME, "delivery took {took:?} during {during}");
    }
}

fn frame(request_id: u64, message: &Message<'_>) -> Vec<u8> {
    Encoder::new().encode(request_id, message).to_vec()
}

fn hello_frame() -> Vec<u8> {
    frame(
        1,
        &Message::Hello(Hello {
            version_min: 1,
            version_max: 1,
            client_name: "hostile",
        }),
    )
}

/// Reads until EOF or a reset; `true` if that happened within `timeout`.
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).expect("set a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

#[test]
fn slowloris_trickling_a_frame_is_closed_at_the_login_timeout() {
    let server = server();
    let addr = server.addr();
    let mut pair = Pair::new(addr);
    let mut slow = Client::connect(addr);
    let hello = hello_frame();
    let start = Instant::now();
    // One byte every 100 ms: a 40-byte Hello would take seconds; the login timeout ends it.
    for (i, byte) in hello.iter().cycle().enumerate() {
        if start.elapsed() > Duration::from_millis(LOGIN_TIMEOUT_MS) + CLOSE_SLACK {
            break;
        }
        slow.raw_write(&[*byte]);
        if i % 5 == 0 {
            pair.assert_on_time("slowloris");
        }
        thread::sleep(Duration::from_millis(100));
        if slow.is_closed_by_server(Duration::from_millis(1)) {
            break;
        }
    }
    assert_eq!(slow.expect_error(Duration::from_secs(1)), (0, ErrorCode::IdleTimeout));
    assert!(
        slow.is_closed_by_server(CLOSE_SLACK),
        "the slowloris connection stayed open"
    );
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(LOGIN_TIMEOUT_MS) + CLOSE_SLACK,
        "closed only after {took:?}"
    );
    pair.assert_on_time("after slowloris");
}

#[test]
fn half_open_connections_are_closed() {
    let server = server();
    let addr = server.addr();
    let mut pair = Pair::new(addr);

    // The client half-closes after Hello (FIN sent, still reading): the server closes too.
    let mut half_closed = TcpStream::connect(addr).expect("connect");
    half_closed.write_all(&hello_frame()).expect("write Hello");
    half_closed.shutdown(Shutdown::Write).expect("half-close");
    pair.assert_on_time("a half-closed connection");
    assert!(
        closed_within(&mut half_closed, CLOSE_SLACK),
        "the server kept a half-closed connection open"
    );

    // The peer vanished without a FIN (it never sends anything again): gone at the login
    // timeout, with the error frame written first.
    let mut vanished = Client::connect(addr);
    vanished.hello();
    vanished.pause_writes();
    pair.assert_on_time("a vanished peer");
    assert_eq!(
        vanished.expect_error(Duration::from_millis(LOGIN_TIMEOUT_MS) + CLOSE_SLACK),
        (0, ErrorCode::IdleTimeout)
    );
    assert!(vanished.is_closed_by_server(CLOSE_SLACK));
    pair.assert_on_time("after the half-open connections");
}

#[test]
fn thousands_of_connections_that_never_log_in_are_closed_and_cost_nobody_else() {
    const IDLERS: usize = 2_000;
    let server = server();
    let addr = server.addr();
    let mut pair = Pair::new(addr);
    let start = Instant::now();
    let hello = hello_frame();
    let mut idlers: Vec<TcpStream> = (0..IDLERS)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("idler {i}: connect: {e}"));
            if i % 2 == 0 {
                s.write_all(&hello).expect("write Hello");
            }
            s
        })
        .collect();
    eprintln!("{IDLERS} idle connections opened in {:?}", start.elapsed());
    pair.assert_on_time("thousands of idle connections");
    thread::sleep(Duration::from_millis(LOGIN_TIMEOUT_MS / 2));
    pair.assert_on_time("thousands of idle connections, later");
    let deadline = start + Duration::from_millis(LOGIN_TIMEOUT_MS) + CLOSE_SLACK + Duration::from_secs(2);
    for (i, s) in idlers.iter_mut().enumerate() {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        assert!(
            closed_within(s, left),
            "idler {i} is still open after the login timeout"
        );
    }
    pair.assert_on_time("after the idlers were closed");
}

#[test]
fn a_4_gib_length_prefix_is_frame_too_large_and_closes_only_that_connection() {
    let server = server();
    let addr = server.addr();
    let mut pair = Pair::new(addr);
    let (mut hostile, _) = Client::new_user(addr, "mallory");
    hostile.raw_write(&u32::MAX.to_le_bytes());
    hostile.raw_write(&[0xAB; 4096]);
    assert_eq!(hostile.expect_error(REPLY_WAIT_DEFAULT), (0, ErrorCode::FrameTooLarge));
    assert!(hostile.is_closed_by_server(CLOSE_SLACK));
    pair.assert_on_time("after a 4 GiB prefix");
}

#[test]
fn a_frame_that_never_completes_is_closed_by_the_timeouts() {
    let server = Server::options()
        .idle_timeout_ms(2_000)
        .arg("--login-timeout-ms")
        .arg(LOGIN_TIMEOUT_MS.to_string())
        .start();
    let addr = server.addr();
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");

    // Before login: the login timeout.
    let mut early = Client::connect(addr);
    early.raw_write(&100u32.to_le_bytes());
    early.raw_write(&[0u8; 50]);
    early.pause_writes();
    // After login: the idle timeout (the half frame is all it ever sends; no Pong either).
    let (mut late, _) = Client::new_user(addr, "late");
    late.raw_write(&100u32.to_le_bytes());
    late.raw_write(&[0u8; 50]);
    late.pause_writes();

    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(2_000) + CLOSE_SLACK
        && !(early.is_closed_by_server(Duration::from_millis(1)) && late.is_closed_by_server(Duration::from_millis(1)))
    {
        n += 1;
        let t = Instant::now();
        alice.send(b.user_id, n, b"still here").expect("alice sends");
        assert!(bob.next_deliver(ON_TIME).is_some(), "bob missed message {n}");
        assert!(t.elapsed() <= ON_TIME, "a delivery took {:?}", t.elapsed());
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        early.expect_error(Duration::from_millis(1)),
        (0, ErrorCode::IdleTimeout)
    );
    assert!(
        early.is_closed_by_server(Duration::from_millis(1)),
        "the half frame before login stayed"
    );
    assert_eq!(late.expect_error(Duration::from_millis(1)), (0, ErrorCode::IdleTimeout));
    assert!(
        late.is_closed_by_server(Duration::from_millis(1)),
        "the half frame after login stayed"
    );
}

#[test]
fn garbage_after_a_valid_frame_answers_the_frame_then_the_error() {
    let server = server();
    let addr = server.addr();
    let mut pair = Pair::new(addr);

    // Length-valid garbage right behind a Ping: Pong, then MalformedFrame; it stays open.
    let mut client = Client::connect(addr);
    client.hello();
    let mut bytes = frame(77, &Message::Ping(Ping { nonce: 5 }));
    bytes.extend(32u32.to_le_bytes());
    bytes.extend([0xFF; 32]);
    client.raw_write(&bytes);
    assert_eq!(client.expect_error(REPLY_WAIT_DEFAULT), (0, ErrorCode::MalformedFrame));
    assert!(
        client.queued().iter().any(|e| e.request_id() == 77),
        "the valid Ping before the garbage was not answered: {:?}",
        client.queued()
    );
    client.ping();
    pair.assert_on_time("length-valid garbage");

    // Text behind a valid frame: its first 4 bytes read as a huge length: FrameTooLarge,
    // then the close (the stream cannot be resynchronised).
    let mut texty = Client::connect(addr);
    texty.hello();
    let mut bytes = frame(78, &Message::Ping(Ping { nonce: 6 }));
    bytes.extend(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    texty.raw_write(&bytes);
    assert_eq!(texty.expect_error(REPLY_WAIT_DEFAULT), (0, ErrorCode::FrameTooLarge));
    assert!(texty.is_closed_by_server(CLOSE_SLACK));
    pair.assert_on_time("text after a frame");
}

#[test]
fn protocol_steps_out_of_order_are_invalid_state() {
    let server = server();
    let addr = server.addr();
    let mut pair = Pair::new(addr);
    let password = Client::password_for("mallory");
    let (mut mallory, _) = Client::new_user(addr, "mallory");
    // A second login on a logged-in connection.
    let login = mallory.raw_request(&Message::Login(Login {
        credentials: Credentials::Password {
            username: "mallory",
            password: &password,
        },
        device_name: "twice",
    }));
    assert_eq!(
        mallory.expect_error(REPLY_WAIT_DEFAULT),
        (login, ErrorCode::InvalidState)
    );
    // Logout and Ack before login.
    let mut early = Client::connect(addr);
    early.hello();
    let logout = early.raw_request(&Message::Logout);
    assert_eq!(
        early.expect_error(REPLY_WAIT_DEFAULT),
        (logout, ErrorCode::InvalidState)
    );
    let sync = early.raw_request(&Message::Sync(Sync { after_seq: 0, limit: 0 }));
    assert_eq!(early.expect_error(REPLY_WAIT_DEFAULT), (sync, ErrorCode::InvalidState));
    // A server-only message from a client.
    let logout_ok = early.raw_request(&Message::LogoutOk);
    assert_eq!(
        early.expect_error(REPLY_WAIT_DEFAULT),
        (logout_ok, ErrorCode::InvalidRequest)
    );
    // Both connections still work.
    early.ping();
    mallory.ping();
    pair.assert_on_time("requests out of order");
}

#[test]
fn a_token_replayed_after_logout_is_refused() {
    let server = server();
    let addr = server.addr();
    let mut pair = Pair::new(addr);
    let (mut mallory, m) = Client::new_user(addr, "mallory");
    mallory.logout().expect("logout");
    for attempt in 0..3 {
        let mut replay = Client::connect(addr);
        assert_eq!(
            replay.login_token(&m.token, "replay"),
            Err(ErrorCode::InvalidCredentials),
            "replay {attempt}"
        );
        pair.assert_on_time("token replay");
    }
}

#[test]
fn nobody_can_ack_sync_or_mark_read_another_users_inbox() {
    let server = server();
    let addr = server.addr();
    let mut pair = Pair::new(addr);
    for _ in 0..5 {
        pair.assert_on_time("setup");
    }
    let bob_cursor_before = pair.bob.ack_confirmed(2);
    let (mut mallory, m) = Client::new_user(addr, "mallory");
    // Sync and Ack name no user: they act on the caller's own inbox, so bob's seqs are
    // simply not there for mallory.
    let page = mallory.sync(0, 0);
    assert!(
        page.messages.is_empty(),
        "mallory sees someone's messages: {:?}",
        page.messages
    );
    assert_eq!(page.inbox_seq, 0);
    assert_eq!(mallory.try_ack_confirmed(5), Err(ErrorCode::InvalidRequest));
    // Bob's read position in his conversation with alice cannot be moved by mallory.
    assert_eq!(
        mallory.mark_read(Conversation::Direct(pair.alice_id), 5),
        Err(ErrorCode::NoSuchMessage)
    );
    // An Ack below the cursor answers the stored cursor: still bob's own.
    assert_eq!(pair.bob.ack_confirmed(1), bob_cursor_before, "bob's cursor moved");
    let (unread, _) = pair.bob.conversations();
    assert!(
        unread.iter().all(|c| c.read_seq == 0),
        "mallory moved bob's read position: {unread:?}"
    );
    let (_, mallory_again) = Client::resume(addr, &m.token);
    assert_eq!((mallory_again.inbox_seq, mallory_again.device_cursor), (0, 0));
    pair.assert_on_time("attempts on another inbox");
}

/// Regression (found by the `engine_frames` fuzz target): a client that sent requests and
/// never read the replies made the server queue every reply, so its memory grew without
/// bound. Now a connection whose unsent output is over `--outbound-bytes-max` is read no
/// further until it drains: the client's writes block, and once it reads, every request
/// is still answered, in order.
#[test]
fn a_client_that_never_reads_its_replies_is_read_no_further() {
    /// More than the server may read from a client that reads nothing back (its outbound
    /// limit plus every socket buffer on the way, a few MiB).
    const SENT_BYTES_MAX: usize = 32 << 20;
    /// How long writes must keep blocking to count as the server no longer reading.
    const BLOCKED_FOR: Duration = Duration::from_secs(1);
    let server = Server::options().arg("--outbound-bytes-max").arg("131072").start();
    let mut s = TcpStream::connect(server.addr()).expect("connect");
    s.write_all(&hello_frame()).expect("send Hello");
    let ping = frame(2, &Message::Ping(Ping { nonce: 7 }));
    let batch = ping.repeat(4_096);
    s.set_nonblocking(true).expect("non-blocking");
    let mut sent = 0usize;
    let mut blocked_since: Option<Instant> = None;
    while sent < SENT_BYTES_MAX {
        match s.write(&batch[sent % batch.len()..]) {
            Ok(n) => {
                sent += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if blocked_since.get_or_insert_with(Instant::now).elapsed() >= BLOCKED_FOR {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("the server closed on a client that does not read: {e}"),
        }
    }
    assert!(
        sent < SENT_BYTES_MAX,
        "the server read {sent} bytes of requests whose replies were never read"
    );
    // Finish the last Ping (the server reads it once we read), then read every answer.
    s.set_nonblocking(false).expect("blocking");
    let rest = ping.len() - sent % ping.len();
    let mut writer = s.try_clone().expect("clone the socket");
    let tail = ping[ping.len() - rest..].to_vec();
    let partial = rest < ping.len();
    let finish = thread::spawn(move || {
        if partial {
            writer.write_all(&tail).expect("finish the last Ping");
        }
    });
    let pings = sent.div_ceil(ping.len());
    let decoder = hotline_wire::FrameDecoder::new(hotline_wire::FRAME_BYTES_MAX_DEFAULT, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut buf, mut at, mut pongs, mut hello_ok) = (Vec::new(), 0usize, 0usize, false);
    let mut chunk = vec![0u8; 1 << 16];
    while pongs < pings {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{pongs} of {pings} Pongs arrived");
        s.set_read_timeout(Some(left)).expect("set a read timeout");
        let n = s.read(&mut chunk).expect("read the answers");
        assert!(n > 0, "closed after {pongs} of {pings} Pongs");
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(hotline_wire::Decoded::Frame { frame, consumed }) = decoder.decode(&buf[at..]) {
            at += consumed;
            match frame.message {
                Message::HelloOk(_) => hello_ok = true,
                Message::Pong(p) => {
                    assert!(hello_ok, "HelloOk comes first");
                    assert_eq!(p.nonce, 7);
                    pongs += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        buf.drain(..at);
        at = 0;
    }
    finish.join().expect("the writer thread");
}
