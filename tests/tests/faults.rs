//! Faults beyond the disk (the disk's are in `disk_full.rs`, `read_only_disk.rs` and
//! `power_loss.rs`), injected through the server's fault hooks: what the server does when
//! one of its own threads fails.

use hotline_tests::{Client, Server};
use hotline_wire::ErrorCode;

/// A helper job that panics (here a password login of the username the fault hook names)
/// answers its requester `Internal`, is counted, and costs nothing else: more panics than
/// there are helper threads later, the other users still register (another helper job),
/// log in and chat, and the counter says how many panicked.
#[test]
fn a_helper_job_that_panics_answers_internal_and_the_server_goes_on() {
    const HELPERS: usize = 2;
    let server = Server::options()
        .arg("--helper-threads")
        .arg(HELPERS.to_string())
        .env("HOTLINE_FAULT_HELPER_PANIC_USERNAME", "mallory")
        .start();
    let addr = server.addr();
    Client::register_user(addr, "mallory");
    let panics = HELPERS as u64 * 3;
    for attempt in 0..panics {
        let mut c = Client::connect(addr);
        assert_eq!(
            c.login_password("mallory", &Client::password_for("mallory"), "laptop")
                .map(|l| l.user_id),
            Err(ErrorCode::Internal),
            "attempt {attempt}"
        );
    }
    let (mut alice, _) = Client::new_user(addr, "alice");
    let (mut bob, b) = Client::new_user(addr, "bob");
    alice.send(b.user_id, 1, b"still here").expect("send after the panics");
    assert_eq!(bob.expect_deliver().payload, b"still here");
    let metrics = server.scrape_metrics();
    assert_eq!(metrics.get("hotline_helper_panics_total"), Some(&(panics as f64)));
}
