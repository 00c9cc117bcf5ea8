//! TLS and WebSocket: the same protocol, limits and errors as plain TCP, through a real
//! rustls client and a WebSocket client (`hotline-transport`'s client layer) driving the
//! same `ClientSession`; users on different transports talk to each other; the WebSocket
//! upgrade checks Origin; `--web` serves the page; openssl's own client verifies the TLS
//! listener.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use hotline_tests::{payload, test_certificate, Client, Server, Transport, REPLY_WAIT_DEFAULT};
use hotline_wire::{ErrorCode, Message, Send, SendFlags};

fn ws() -> Transport {
    Transport::Ws { origin: None }
}

/// Users spread over the two cores (so some logins are handed to another core, TLS session
/// and WebSocket included) send each other messages across every transport pair.
#[test]
fn users_on_tcp_tls_and_websocket_message_each_other_across_cores() {
    let server = Server::options().tls().start();
    let transports = [
        ("tcp", server.addr(), Transport::Tcp),
        ("tls", server.tls_addr(), Transport::Tls),
        ("ws", server.ws_addr(), ws()),
    ];
    // Two users per transport: with 2 cores and users homed by hash, some of them are
    // accepted on one core and handed off to the other.
    let mut users = Vec::new();
    for (name, addr, transport) in &transports {
        for i in 0..2 {
            let username = format!("{name}{i}");
            let (client, login) = Client::new_user_with(*addr, transport, &username);
            users.push((username, client, login.user_id));
        }
    }
    let ids: Vec<u64> = users.iter().map(|u| u.2).collect();
    for (i, (name, client, _)) in users.iter_mut().enumerate() {
        for (j, &to) in ids.iter().enumerate() {
            if i != j {
                let ack = client
                    .send(to, (j + 1) as u64, &payload(name, j as u64, 100))
                    .unwrap_or_else(|code| panic!("{name} -> user {to}: {code:?}"));
                assert!(ack.inbox_seq > 0);
            }
        }
    }
    for (j, (name, client, id)) in users.iter_mut().enumerate() {
        let mut got: Vec<(u64, Vec<u8>)> = client
            .expect_delivers(ids.len() - 1)
            .into_iter()
            .map(|d| (d.sender, d.payload))
            .collect();
        got.sort();
        let mut want: Vec<(u64, Vec<u8>)> = users_expected(&ids, j);
        want.sort();
        assert_eq!(got, want, "{name} (user {id}) got what each other user sent it");
    }
}

/// What user `j` must receive: from each other user `i`, `payload(name_i, j)`.
fn users_expected(ids: &[u64], j: usize) -> Vec<(u64, Vec<u8>)> {
    let names = ["tcp0", "tcp1", "tls0", "tls1", "ws0", "ws1"];
    ids.iter()
        .enumerate()
        .filter(|(i, _)| *i != j)
        .map(|(i, &id)| (id, payload(names[i], j as u64, 100)))
        .collect()
}

/// History and resume work over TLS as on TCP: a token login on a new TLS connection gets
/// the backlog, and Sync pages through it.
#[test]
fn a_tls_device_resumes_by_token_and_syncs_history() {
    let server = Server::options().tls().start();
    let (mut alice, a) = Client::new_user_with(server.tls_addr(), &Transport::Tls, "alice");
    let (mut bob, b) = Client::new_user_with(server.tls_addr(), &Transport::Tls, "bob");
    for n in 1..=3 {
        alice.send(b.user_id, n, &payload("a", n, 10)).expect("send over TLS");
    }
    assert_eq!(bob.expect_delivers(3).len(), 3);
    drop(bob);
    let mut bob = Client::connect_with(server.tls_addr(), &Transport::Tls);
    bob.login_token(&b.token, "again").expect("token login over TLS");
    let page = bob.sync(0, 10);
    assert_eq!(page.messages.len(), 3, "three messages in bob's inbox");
    assert!(page.messages.iter().all(|m| m.sender == a.user_id));
}

/// A WebSocket client gets exactly TCP's errors: a garbage frame is MalformedFrame and the
/// connection stays usable; an oversized payload is PayloadTooLarge echoing the request.
#[test]
fn websocket_bad_frames_get_the_same_errors_as_tcp_and_the_connection_survives() {
    let server = Server::start();
    let (mut client, me) = Client::new_user_with(server.ws_addr(), &ws(), "wsbad");
    let mut garbage = 32u32.to_le_bytes().to_vec();
    garbage.extend([0xFF; 32]);
    client.raw_write(&garbage);
    assert_eq!(client.expect_error(REPLY_WAIT_DEFAULT), (0, ErrorCode::MalformedFrame));
    let over = vec![0xAB; hotline_wire::PAYLOAD_BYTES_MAX_DEFAULT as usize + 1];
    let request = client.raw_request(&Message::Send(Send {
        client_msg_id: 1,
        to: me.user_id,
        payload: &over,
        flags: SendFlags::NONE,
        group: 0,
        kind: hotline_wire::MessageKind::NORMAL,
        refers_to: 0,
    }));
    assert_eq!(
        client.expect_error(REPLY_WAIT_DEFAULT),
        (request, ErrorCode::PayloadTooLarge)
    );
    client.ping();
    assert!(
        client.sync(0, 10).messages.is_empty(),
        "still logged in after both errors"
    );
}

/// A WebSocket message over the frame limit: FrameTooLarge, then the server closes, as for
/// an oversized length prefix on TCP.
#[test]
fn a_websocket_message_over_the_frame_limit_is_frame_too_large_then_closed() {
    let server = Server::options().arg("--frame-bytes-max").arg("100000").start();
    let mut client = Client::connect_with(server.ws_addr(), &ws());
    client.hello();
    let mut big = 100_001u32.to_le_bytes().to_vec();
    big.extend(vec![0u8; 100_001]);
    client.raw_write(&big);
    assert_eq!(client.expect_error(REPLY_WAIT_DEFAULT), (0, ErrorCode::FrameTooLarge));
    assert!(client.is_closed_by_server(Duration::from_secs(5)), "closed after it");
}

/// Sends a raw HTTP request and returns the response head (up to the blank line).
fn http(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(REPLY_WAIT_DEFAULT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write the request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn upgrade_request(addr: SocketAddr, origin: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    )
}

/// A browser page from another origin cannot open the WebSocket unless allowed; the page's
/// own origin can.
#[test]
fn websocket_upgrades_check_the_origin() {
    let server = Server::options()
        .arg("--ws-allowed-origin")
        .arg("https://chat.example")
        .start();
    let addr = server.ws_addr();
    let evil = http(addr, &upgrade_request(addr, "http://evil.example"));
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    let allowed = http(addr, &upgrade_request(addr, "https://chat.example"));
    assert!(allowed.starts_with("HTTP/1.1 101"), "{allowed}");
    assert!(
        allowed.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "RFC 6455 accept key: {allowed}"
    );
    let same = http(addr, &upgrade_request(addr, &format!("http://{addr}")));
    assert!(same.starts_with("HTTP/1.1 101"), "{same}");
    // The refused connections cost nothing else: a WebSocket client still works.
    let (mut c, _) = Client::new_user_with(addr, &ws(), "after");
    c.ping();
}

/// `--web` serves the page and its script; without it the listener serves no files.
#[test]
fn the_web_page_is_served_only_with_web() {
    let server = Server::options().arg("--web").start();
    let addr = server.ws_addr();
    let page = http(addr, &format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n"));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html"), "{page}");
    let script = http(addr, &format!("GET /app.js HTTP/1.1\r\nHost: {addr}\r\n\r\n"));
    assert!(
        script.starts_with("HTTP/1.1 200") && script.contains("javascript"),
        "{script}"
    );
    let plain = Server::start();
    let none = http(plain.ws_addr(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(none.starts_with("HTTP/1.1 404"), "{none}");
}

/// Plaintext on the TLS port is refused and closed; TLS clients are not disturbed.
#[test]
fn plaintext_on_the_tls_port_is_closed_and_disturbs_nobody() {
    let server = Server::options().tls().start();
    let (mut tls_client, me) = Client::new_user_with(server.tls_addr(), &Transport::Tls, "calm");
    let mut plain = Client::connect(server.tls_addr());
    plain.raw_write(b"\x20\x00\x00\x00 this is not a TLS ClientHello at all");
    assert!(plain.is_closed_by_server(Duration::from_secs(5)), "closed");
    tls_client
        .send(me.user_id, 1, b"to myself")
        .expect("the TLS client still works");
}

/// openssl's client (not rustls) completes a handshake and verifies the certificate,
/// through `scripts/check-tls`.
#[test]
fn openssl_s_client_verifies_the_tls_listener() {
    let server = Server::options().tls().start();
    let (cert, _) = test_certificate();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check-tls");
    let out = Command::new(&script)
        .arg(server.tls_addr().to_string())
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "scripts/check-tls failed (is openssl installed? scripts/ensure-deps installs it):\n{text}"
    );
    assert!(text.contains("Verification: OK"), "{text}");
}

/// Logs in new users over `transport` until the server reports one whose connection moved
/// to its home core (another core than the one that accepted it); returns that client.
/// Each login moves with probability 1/2 on 2 cores, so 32 tries fail with odds 2^-32.
fn handed_off_user(server: &Server, addr: SocketAddr, transport: &Transport, kind: &str) -> (Client, u64) {
    for i in 0..32 {
        let (client, login) = Client::new_user_with(addr, transport, &format!("{kind}-mover-{i}"));
        let line = format!("of user {} ({kind}) moves to core", login.user_id);
        // The log line is written before the home core answers the login, which we have seen.
        if server.stderr().contains(&line) {
            return (client, login.user_id);
        }
    }
    panic!(
        "no {kind} login was handed to another core in 32 tries; stderr:\n{}",
        server.stderr()
    );
}

/// A TLS session and a WebSocket that moved to another core with their connections keep
/// working there: messages both ways, and the history they made.
#[test]
fn tls_and_websocket_connections_keep_working_after_moving_to_their_home_core() {
    let server = Server::options().tls().arg("--log-level").arg("debug").start();
    let (mut tls_user, tls_id) = handed_off_user(&server, server.tls_addr(), &Transport::Tls, "tls");
    let (mut ws_user, ws_id) = handed_off_user(&server, server.ws_addr(), &ws(), "ws");
    for n in 1..=3 {
        tls_user
            .send(ws_id, n, &payload("from-tls", n, 50))
            .expect("TLS send after the move");
        ws_user
            .send(tls_id, n, &payload("from-ws", n, 50))
            .expect("WebSocket send after the move");
    }
    let to_ws: Vec<Vec<u8>> = ws_user.expect_delivers(3).into_iter().map(|d| d.payload).collect();
    let to_tls: Vec<Vec<u8>> = tls_user.expect_delivers(3).into_iter().map(|d| d.payload).collect();
    let want = |tag: &str| (1..=3).map(|n| payload(tag, n, 50)).collect::<Vec<_>>();
    assert_eq!(to_ws, want("from-tls"));
    assert_eq!(to_tls, want("from-ws"));
    assert_eq!(
        ws_user.sync(0, 10).messages.len(),
        6,
        "3 received and 3 sent in the inbox"
    );
}

/// `--ws-tls`: WebSocket inside TLS (wss) carries the same protocol; a wss user and a TLS
/// user message each other.
#[test]
fn websocket_over_tls_works_with_ws_tls() {
    let server = Server::options().tls().arg("--ws-tls").start();
    let (mut wss_user, _) = Client::new_user_with(server.ws_addr(), &Transport::Wss, "secure-ws");
    let (mut tls_user, t) = Client::new_user_with(server.tls_addr(), &Transport::Tls, "secure-tcp");
    wss_user.send(t.user_id, 1, b"over wss").expect("send over wss");
    assert_eq!(tls_user.expect_deliver().payload, b"over wss");
    // Plain WebSocket on the wss port is refused (it is not a TLS ClientHello).
    let mut plain = Client::connect(server.ws_addr());
    plain.raw_write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(plain.is_closed_by_server(Duration::from_secs(5)));
}

/// A certificate that cannot be read stops start-up with a message naming the file and
/// the fix, before anything listens.
#[test]
fn a_missing_certificate_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing-cert.pem");
    let mut child = Command::new(hotline_tests::hotline_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--ws-listen", "off", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn hotline serve");
    let deadline = std::time::Instant::now() + hotline_tests::SERVER_EXIT_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the server") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("hotline serve kept running with a missing certificate");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("collect the output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "exit status {status}");
    assert!(stderr.contains("missing-cert.pem"), "{stderr}");
    assert!(stderr.contains("self-signed-cert"), "names the fix: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing listened: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// SIGTERM: TLS and WebSocket clients get `Error{ShuttingDown}` through their layer before
/// the close, like TCP clients, and the server exits 0.
#[test]
fn tls_and_websocket_clients_are_told_about_shutdown() {
    let mut server = Server::options().tls().start();
    let (mut tls_client, _) = Client::new_user_with(server.tls_addr(), &Transport::Tls, "bye-tls");
    let (mut ws_client, _) = Client::new_user_with(server.ws_addr(), &ws(), "bye-ws");
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    for (name, client) in [("tls", &mut tls_client), ("ws", &mut ws_client)] {
        assert_eq!(
            client.expect_error(REPLY_WAIT_DEFAULT),
            (0, ErrorCode::ShuttingDown),
            "{name}"
        );
        assert!(
            client.is_closed_by_server(Duration::from_secs(5)),
            "{name}: closed after it"
        );
    }
}
