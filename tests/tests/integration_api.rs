//! The integration API under retries and slow clients: a retried `POST /v1/messages` is
//! answered at once with the original ids (also after a restart), a stalled client holds
//! up nobody else, and past its bound the API answers 503 with `Retry-After` at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hotline_tests::{api_request, Client, Server};

const TOKEN: &str = "svc-token-0123456789";
/// The server's `integration::REQUEST_READ_TIMEOUT_MS`: the whole request must arrive in it.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_millis(5_000);
/// "At once": well under both the read timeout and the 10 s send wait a retry used to
/// hang for, with room for a busy machine.
const PROMPT: Duration = Duration::from_millis(2_000);
/// Comfortably more connections than the API serves and queues at once
/// (`integration::API_WORKERS` + `integration::API_QUEUED_MAX` = 16).
const STALLED_OVER_THE_BOUND: usize = 32;

fn api_server() -> Server {
    Server::options()
        .arg("--api-listen")
        .arg("127.0.0.1:0")
        .arg("--api-token")
        .arg(format!("svc:{TOKEN}"))
        .start()
}

/// One request as the service: (status, head, JSON body, time from connect to the end).
fn api(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, serde_json::Value, Duration) {
    let r = api_request(addr, method, path, TOKEN, body);
    (r.status, r.head, r.body, r.took)
}

/// A client that sends the start of a request and then nothing.
fn stalled(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect to the API");
    stream
        .write_all(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")
        .expect("send half a request head");
    stream
}

/// Fills the API with stalled clients and returns them: a first wave takes every worker
/// (each keeps its stalled client until the request deadline), then, once the workers had
/// time to take theirs, a second wave fills the queue. Only refusals in the second wave
/// prove the bound is reached with nothing free: refusals in one wave opened at once could
/// come while a worker on a busy machine had not yet taken its client from the queue.
fn fill_the_api(addr: SocketAddr) -> Vec<TcpStream> {
    let mut held: Vec<TcpStream> = (0..STALLED_OVER_THE_BOUND).map(|_| stalled(addr)).collect();
    std::thread::sleep(Duration::from_millis(1_000));
    let second: Vec<TcpStream> = (0..STALLED_OVER_THE_BOUND).map(|_| stalled(addr)).collect();
    for stream in &second {
        stream.set_nonblocking(true).expect("a nonblocking client");
    }
    let deadline = Instant::now() + PROMPT;
    let refused = |stream: &TcpStream| {
        let mut start = [0u8; 12];
        matches!(stream.peek(&mut start), Ok(n) if start[..n].starts_with(b"HTTP/1.1 503"))
    };
    while !second.iter().any(refused) {
        assert!(
            Instant::now() < deadline,
            "the API held {} stalled clients and refused none",
            2 * STALLED_OVER_THE_BOUND
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    held.extend(second);
    held
}

/// Regression: a POST whose `client_msg_id` was used before waited 10 s and answered
/// `503 the message was not written within 10000 ms` (the API waited for a new inbox
/// entry, which a deduplicated retry never makes), holding every other request behind it.
#[test]
fn regression_a_retried_send_is_answered_at_once_with_the_original_ids_also_after_a_restart() {
    let mut server = api_server();
    let (_svc, svc) = Client::new_user(server.addr(), "svc");
    let (mut bob, _) = Client::new_user(server.addr(), "bob");
    let body = r#"{"to":"bob","text":"exactly once","client_msg_id":4242}"#;
    let (status, _, first, _) = api(server.api_addr(), "POST", "/v1/messages", body);
    assert_eq!(status, 200, "{first}");
    assert!(first["message_id"].as_u64().is_some_and(|id| id > 0), "{first}");
    let delivered = bob.expect_delivers(1);
    assert_eq!(delivered[0].message_id, first["message_id"]);

    let (status, _, again, took) = api(server.api_addr(), "POST", "/v1/messages", body);
    assert_eq!((status, &again), (200, &first), "the retry's answer");
    assert!(took < PROMPT, "the retry took {took:?}");

    server.terminate();
    server.restart();
    let (status, _, after_restart, took) = api(server.api_addr(), "POST", "/v1/messages", body);
    assert_eq!((status, &after_restart), (200, &first), "the retry after a restart");
    assert!(took < PROMPT, "the retry after a restart took {took:?}");

    let (mut bob, _) = Client::login_new_device(server.addr(), "bob", "bob-2");
    let page = bob.sync(0, 0);
    let from_svc: Vec<u64> = page
        .messages
        .iter()
        .filter(|m| m.sender == svc.user_id)
        .map(|m| m.message_id)
        .collect();
    assert_eq!(from_svc, [delivered[0].message_id], "three POSTs, one message");
}

/// Clients that opened a connection and stalled mid-request hold up no other request; a
/// client trickling a byte at a time is cut off at the request deadline (408), not kept
/// for as long as it keeps trickling.
#[test]
fn a_stalled_api_client_does_not_delay_other_requests() {
    let server = api_server();
    let _svc = Client::new_user(server.addr(), "svc");
    let _bob = Client::new_user(server.addr(), "bob");
    let stalls: Vec<TcpStream> = (0..3).map(|_| stalled(server.api_addr())).collect();
    let mut trickle = stalled(server.api_addr());
    trickle
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");

    let (status, _, page, took) = api(server.api_addr(), "GET", "/v1/conversations/bob", "");
    assert_eq!(status, 200, "{page}");
    assert!(took < PROMPT, "a GET behind stalled clients took {took:?}");
    let (status, _, sent, took) = api(
        server.api_addr(),
        "POST",
        "/v1/messages",
        r#"{"to":"bob","text":"not held up"}"#,
    );
    assert_eq!(status, 200, "{sent}");
    assert!(took < PROMPT, "a POST behind stalled clients took {took:?}");

    let started = Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < REQUEST_READ_TIMEOUT * 3 {
        let mut buf = [0u8; 512];
        match trickle.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {
                // Still no answer: one more byte of header, as a slow-loris client does.
                if trickle.write_all(b"X").is_err() {
                    break;
                }
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a trickling client got {answer:?} after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < REQUEST_READ_TIMEOUT + PROMPT,
        "a trickling client was answered after {:?}",
        started.elapsed()
    );
    drop(stalls);
}

/// Past the bound (every worker busy, the queue full) a request is answered 503 with
/// `Retry-After` at once; once the stalled clients go, requests are served again.
#[test]
fn over_its_bound_the_api_answers_503_with_retry_after_at_once() {
    let server = api_server();
    let _svc = Client::new_user(server.addr(), "svc");
    let _bob = Client::new_user(server.addr(), "bob");
    let stalls = fill_the_api(server.api_addr());

    let (status, head, body, took) = api(server.api_addr(), "GET", "/v1/conversations/bob", "");
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(
        head.lines().any(|l| l.eq_ignore_ascii_case("retry-after: 1")),
        "no Retry-After in {head:?}"
    );
    assert!(took < PROMPT, "the 503 took {took:?}");
    let shed = server.scrape_metrics();
    assert!(
        shed.get("hotline_shed_total{reason=\"overloaded\"}")
            .is_some_and(|n| *n >= 1.0),
        "the refusals were not counted: {shed:?}"
    );

    drop(stalls);
    let deadline = Instant::now() + PROMPT * 2;
    loop {
        let (status, _, body, _) = api(server.api_addr(), "GET", "/v1/conversations/bob", "");
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "still refused {:?} after the stalled clients left",
            PROMPT * 2
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Under early delivery a message is visible (and delivered) before its fsync: the API must
/// not answer a send, nor show it in a conversation page, before it is durable. The
/// server's fsync is held (`HOTLINE_FAULT_HOLD_FSYNC`): bob gets the message at once, the
/// `POST` is answered only once the fsync is let go.
#[test]
fn a_send_through_the_api_is_answered_only_once_durable() {
    let hold_dir = tempfile::tempdir().expect("a directory for the hold file");
    let hold = hold_dir.path().join("hold-fsync");
    let server = Server::options()
        .arg("--api-listen")
        .arg("127.0.0.1:0")
        .arg("--api-token")
        .arg(format!("svc:{TOKEN}"))
        .env("HOTLINE_FAULT_HOLD_FSYNC", hold.to_str().expect("UTF-8 path"))
        .start();
    let (_svc, _) = Client::new_user(server.addr(), "svc");
    let (mut bob, _) = Client::new_user(server.addr(), "bob");
    std::fs::write(&hold, b"").expect("hold the fsync");
    let api_addr = server.api_addr();
    let post = std::thread::spawn(move || {
        api(
            api_addr,
            "POST",
            "/v1/messages",
            r#"{"to":"bob","text":"held","client_msg_id":7}"#,
        )
    });
    let delivered = bob.expect_deliver();
    assert_eq!(delivered.payload, b"held", "delivered before its fsync");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!post.is_finished(), "the API answered a send whose fsync had not run");
    let held_for = Instant::now();
    std::fs::remove_file(&hold).expect("let the fsync go");
    let (status, _, answer, _) = post.join().expect("the POST thread");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["message_id"], delivered.message_id);
    assert!(
        held_for.elapsed() < PROMPT,
        "answered {:?} after the fsync ran",
        held_for.elapsed()
    );
}
