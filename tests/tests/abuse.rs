//! Abuse limits: each limit is a `hotline serve` flag; each hit answers
//! `Error{RateLimited}` (echoing the request id) and counts in its metric (the server logs
//! the counters at exit, which these tests read after SIGTERM). The harness turns the
//! limits off for every other test; here each test sets the one it checks.

use std::thread;
use std::time::{Duration, Instant};

use hotline_tests::{Client, Server, ServerOptions, REPLY_WAIT_DEFAULT};
use hotline_wire::ErrorCode;

fn with_limit(flag: &str, value: u32) -> ServerOptions {
    Server::options().arg(flag).arg(value.to_string())
}

/// Stops the server and checks that its exit log counted `hits` of metric `name`.
fn assert_metric(mut server: Server, name: &str, hits_min: u64) {
    assert_eq!(server.terminate().code(), Some(0));
    let log = server.stderr();
    let count = log
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {name}= counter in the exit log:\n{log}"));
    assert!(
        count >= hits_min,
        "metric {name} = {count}, expected at least {hits_min}"
    );
}

#[test]
fn login_attempts_per_ip_are_limited() {
    let server = with_limit("--login-attempts-per-ip-per-minute", 5).start();
    let addr = server.addr();
    // The registration's own login is the first attempt.
    let (_, alice) = Client::new_user(addr, "alice");
    for i in 0..4 {
        let mut c = Client::connect(addr);
        c.login_token(&alice.token, "again")
            .unwrap_or_else(|code| panic!("attempt {} of 5: {code:?}", i + 2));
    }
    let mut c = Client::connect(addr);
    assert_eq!(c.login_token(&alice.token, "sixth"), Err(ErrorCode::RateLimited));
    // The refused connection may still try later; meanwhile it works otherwise.
    c.ping();
    assert_metric(server, "login_per_ip", 1);
}

#[test]
fn login_attempts_per_username_are_limited_and_other_users_are_not() {
    let server = with_limit("--login-attempts-per-username-per-minute", 3).start();
    let addr = server.addr();
    Client::register_user(addr, "alice");
    Client::register_user(addr, "bob");
    for i in 0..3 {
        Client::login_new_device(addr, "alice", &format!("d{i}"));
    }
    let mut c = Client::connect(addr);
    assert_eq!(
        c.login_password("alice", &Client::password_for("alice"), "d4"),
        Err(ErrorCode::RateLimited)
    );
    Client::login_new_device(addr, "bob", "phone");
    assert_metric(server, "login_per_username", 1);
}

#[test]
fn repeated_login_failures_back_off_and_a_wait_lets_the_right_password_in() {
    let server = Server::start();
    let addr = server.addr();
    Client::register_user(addr, "alice");
    let mut c = Client::connect(addr);
    // Three failures are free; the fourth starts a 250 ms backoff.
    for i in 0..4 {
        assert_eq!(
            c.login_password("alice", "wrong", "d"),
            Err(ErrorCode::InvalidCredentials),
            "failure {}",
            i + 1
        );
    }
    let start = Instant::now();
    let refused = c.login_password("alice", &Client::password_for("alice"), "d");
    if start.elapsed() < Duration::from_millis(200) {
        assert_eq!(
            refused,
            Err(ErrorCode::RateLimited),
            "the right password during the backoff"
        );
    }
    thread::sleep(Duration::from_millis(300));
    c.login_password("alice", &Client::password_for("alice"), "d")
        .expect("the right password after the backoff");
}

#[test]
fn messages_per_user_per_second_are_limited_then_refill() {
    let server = with_limit("--messages-per-user-per-second", 10).start();
    let addr = server.addr();
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    let outcomes: Vec<_> = (1..=15)
        .map(|n| alice.send(b.user_id, n, format!("m{n}").as_bytes()))
        .collect();
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    assert!((10..=11).contains(&ok), "{ok} of 15 accepted at 10/s: {outcomes:?}");
    assert!(outcomes.contains(&Err(ErrorCode::RateLimited)));
    let delivered = bob.expect_delivers(ok);
    assert_eq!(
        delivered.last().map(|d| d.inbox_seq),
        Some(ok as u64),
        "refused sends took no seq"
    );
    thread::sleep(Duration::from_millis(1_100));
    alice
        .send(b.user_id, 100, b"after a second")
        .expect("the bucket refilled");
    assert_metric(server, "messages_per_user", 4);
}

#[test]
fn messages_per_conversation_are_limited_across_both_senders() {
    let server = with_limit("--messages-per-conversation-per-second", 10).start();
    let addr = server.addr();
    let (mut alice, a) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    let (_, c) = Client::new_user(addr, "carol");
    let mut refused = 0;
    for n in 1..=8 {
        refused += usize::from(alice.send(b.user_id, n, b"a").is_err());
        refused += usize::from(bob.send(a.user_id, n, b"b").is_err());
    }
    assert!(
        (5..=6).contains(&refused),
        "{refused} of 16 refused at 10/s in one conversation"
    );
    assert_eq!(alice.send(b.user_id, 99, b"x"), Err(ErrorCode::RateLimited));
    alice.send(c.user_id, 1, b"another conversation").expect("not limited");
    assert_metric(server, "messages_per_conversation", 6);
}

#[test]
fn connections_per_ip_are_limited_and_freed_on_close() {
    let server = with_limit("--connections-per-ip-max", 5).start();
    let addr = server.addr();
    let mut open: Vec<Client> = (0..5)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.hello();
            c
        })
        .collect();
    let mut extra = Client::connect(addr);
    assert_eq!(extra.expect_error(REPLY_WAIT_DEFAULT), (0, ErrorCode::RateLimited));
    assert!(extra.is_closed_by_server(Duration::from_secs(3)));
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect(addr);
        c.drain_for(Duration::from_millis(100));
        if c.closed_reason().is_none() {
            c.hello();
            break;
        }
        assert!(Instant::now() < deadline, "a closed connection's place was never freed");
    }
    assert_metric(server, "connections_per_ip", 1);
}

#[test]
fn registrations_per_ip_are_limited() {
    let server = with_limit("--registrations-per-ip-per-hour", 3).start();
    let addr = server.addr();
    for i in 0..3 {
        Client::register_user(addr, &format!("user{i}"));
    }
    let mut c = Client::connect(addr);
    assert_eq!(
        c.register("user3", &Client::password_for("user3")),
        Err(ErrorCode::RateLimited)
    );
    assert_metric(server, "registrations_per_ip", 1);
}
