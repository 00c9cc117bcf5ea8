//! No secret reaches the server's output at any log level: passwords (wire Register and
//! Login over TCP, TLS and WebSocket; `hotline admin user-add` and `reset-password`), login
//! tokens, API tokens (accepted and refused), the webhook secret and the webhook URL's path.
//! The server runs at `--log-level trace`; its whole stdout and stderr are searched for each
//! secret as text and, where the bytes can be printed that way, in hex and base64.
//!
//! Regression: the admin socket logged `admin: user-add NAME <password>` at INFO, and at
//! TRACE tungstenite printed every WebSocket frame's payload (Login passwords, LoginOk
//! tokens) in hex.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotline_tests::{api_request, hotline_bin, test_certificate, wait_with_deadline, Client, Transport};

const PASSWORD: &str = "wire-password-Zq7x";
const ADMIN_PASSWORD: &str = "admin-password-Kp3v";
const RESET_PASSWORD: &str = "reset-password-Wm9t";
const API_TOKEN: &str = "api-token-Hs4nR8cL0p";
const WRONG_API_TOKEN: &str = "wrong-token-Yd2bF6gQ1m";
const WEBHOOK_SECRET: &str = "webhook-secret-Tj5uA0eV";
const WEBHOOK_PATH_SECRET: &str = "T0K3N-path-Bx8w";
const COMMAND_WAIT: Duration = Duration::from_secs(30);

/// `hotline serve` at trace with every listener, its stdout and stderr in files.
struct TracedServer {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    data_dir: PathBuf,
    addrs: Vec<(String, SocketAddr)>,
}

impl TracedServer {
    fn start(dir: &Path, webhook: SocketAddr) -> TracedServer {
        let (cert, key) = test_certificate();
        let (stdout, stderr, data_dir) = (dir.join("stdout.log"), dir.join("stderr.log"), dir.join("data"));
        let child = Command::new(hotline_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--cores",
                "2",
                "--log-level",
                "trace",
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--ws-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--tls-listen", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args([
                "--api-listen",
                "127.0.0.1:0",
                "--api-token",
                &format!("svc:{API_TOKEN}"),
            ])
            .args([
                "--webhook-url",
                &format!("http://{webhook}/hooks/{WEBHOOK_PATH_SECRET}"),
            ])
            .args(["--webhook-secret", WEBHOOK_SECRET, "--webhook-user", "bot"])
            .args(["--webhook-online", "--webhook-retries-max", "1"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create stdout.log"))
            .stderr(File::create(&stderr).expect("create stderr.log"))
            .spawn()
            .expect("spawn hotline serve");
        let mut server = TracedServer {
            child,
            stdout,
            stderr,
            data_dir,
            addrs: Vec::new(),
        };
        let deadline = Instant::now() + COMMAND_WAIT;
        loop {
            let lines: Vec<String> = BufReader::new(File::open(&server.stdout).expect("open stdout.log"))
                .lines()
                .map_while(Result::ok)
                .collect();
            if lines.iter().any(|l| l.starts_with("hotline listening on ")) {
                server.addrs = lines
                    .iter()
                    .filter_map(|l| {
                        let rest = l.strip_prefix("hotline ")?;
                        let (what, addr) = match rest.strip_prefix("listening on ") {
                            Some(addr) => ("", addr),
                            None => rest.rsplit_once(" listening on ")?,
                        };
                        Some((what.to_owned(), addr.trim().parse().ok()?))
                    })
                    .collect();
                return server;
            }
            assert!(
                server.child.try_wait().expect("poll the server").is_none() && Instant::now() < deadline,
                "the server did not start: {}",
                std::fs::read_to_string(&server.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address of the `hotline WHAT listening on` line (`hotline listening on`: "").
    fn addr(&self, what: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {what:?} listener in {:?}", self.addrs))
    }

    /// `hotline ARGS... --data-dir DIR` with `stdin`; (success, stdout + stderr).
    fn cli(&self, args: &[&str], stdin: &str) -> (bool, String) {
        let mut child = Command::new(hotline_bin())
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the hotline CLI");
        // A failed write means the command exited early; its output says why.
        let _ = child.stdin.take().expect("piped").write_all(stdin.as_bytes());
        let out = wait_with_deadline(child, COMMAND_WAIT);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// A webhook receiver that answers every POST 500 (so failures are logged too).
fn failing_webhook() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
        }
    });
    addr
}

/// One API request with `token`; the status.
fn api(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> u16 {
    api_request(addr, method, path, token, body).status
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The forms a secret could be printed in: itself, hex (either case), base64 (standard
/// and URL-safe, unpadded: a prefix of any padded form).
fn forms(secret: &[u8]) -> Vec<String> {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut forms = vec![
        hex(secret),
        hex(secret).to_uppercase(),
        base64(secret, STANDARD),
        base64(secret, URL_SAFE),
    ];
    if let Ok(text) = std::str::from_utf8(secret) {
        forms.push(text.to_owned());
    }
    forms
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(base64(b"foobar", STANDARD), "Zm9vYmFy");
    assert_eq!(base64(b"fooba", STANDARD), "Zm9vYmE");
    assert_eq!(base64(b"f", STANDARD), "Zg");
}

#[test]
#[allow(clippy::too_many_lines, reason = "an end-to-end scenario, read top to bottom")]
fn no_secret_reaches_the_log_at_trace() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut server = TracedServer::start(dir.path(), failing_webhook());
    let (tcp, ws, tls, api_addr) = (
        server.addr(""),
        server.addr("ws"),
        server.addr("tls"),
        server.addr("api"),
    );

    // Wire: passwords over TCP, WebSocket and TLS; the token from LoginOk reused on WebSocket.
    let mut alice = Client::connect(tcp);
    alice.register("alice", PASSWORD).expect("register alice");
    let login = alice.login_password("alice", PASSWORD, "tcp").expect("log alice in");
    let ws_transport = Transport::Ws { origin: None };
    let mut on_ws = Client::connect_with(ws, &ws_transport);
    on_ws
        .login_password("alice", PASSWORD, "ws")
        .expect("log alice in over ws");
    let mut by_token = Client::connect_with(ws, &ws_transport);
    by_token
        .login_token(&login.token, "ws-token")
        .expect("token login over ws");
    let mut on_tls = Client::connect_with(tls, &Transport::Tls);
    on_tls
        .login_password("alice", PASSWORD, "tls")
        .expect("log alice in over tls");
    let (_svc, _) = Client::new_user(tcp, "svc");
    let (_bot, bot) = Client::new_user(tcp, "bot");
    alice.send(bot.user_id, 1, b"to the bot").expect("send to the bot");

    // Every admin command, a refused one included.
    let mut wrong = Vec::new();
    let backup = dir.path().join("backup");
    let backup = backup.to_str().expect("utf-8 temp path");
    let commands: [(&[&str], &str, bool); 12] = [
        (&["admin", "stats"], "", true),
        (&["admin", "user-add", "carol"], ADMIN_PASSWORD, true),
        (&["admin", "user-add", "carol"], ADMIN_PASSWORD, false),
        (&["admin", "reset-password", "carol"], RESET_PASSWORD, true),
        (&["admin", "reset-password", "nobody"], RESET_PASSWORD, false),
        (&["admin", "groups", "alice"], "", true),
        (&["admin", "revoke-tokens", "alice"], "", true),
        (&["admin", "disable", "alice"], "", true),
        (&["admin", "enable", "alice"], "", true),
        (&["admin", "user-remove", "carol"], "", true),
        (&["backup", "--to", backup], "", true),
        (&["export", "--user", "alice"], "", true),
    ];
    let secrets: Vec<&str> = vec![
        PASSWORD,
        ADMIN_PASSWORD,
        RESET_PASSWORD,
        API_TOKEN,
        WRONG_API_TOKEN,
        WEBHOOK_SECRET,
        WEBHOOK_PATH_SECRET,
    ];
    for (args, stdin, succeeds) in commands {
        let (ok, output) = server.cli(args, &format!("{stdin}\n"));
        if ok != succeeds {
            wrong.push(format!(
                "`hotline {}`: success {ok}, expected {succeeds}: {output}",
                args.join(" ")
            ));
        }
        for secret in &secrets {
            if output.contains(secret) {
                wrong.push(format!("`hotline {}` printed {secret:?}: {output}", args.join(" ")));
            }
        }
    }

    // Every API call: accepted, retried, read, refused.
    let body = r#"{"to":"alice","text":"from svc","client_msg_id":9}"#;
    assert_eq!(api(api_addr, "POST", "/v1/messages", API_TOKEN, body), 200);
    assert_eq!(api(api_addr, "POST", "/v1/messages", API_TOKEN, body), 200);
    assert_eq!(api(api_addr, "GET", "/v1/conversations/alice", API_TOKEN, ""), 200);
    assert_eq!(
        api(api_addr, "GET", "/v1/conversations/alice", WRONG_API_TOKEN, ""),
        401
    );
    assert_eq!(api(api_addr, "POST", "/v1/nowhere", API_TOKEN, "{}"), 404);

    // The webhook fails (and is logged) for the online events and the bot's message.
    let deadline = Instant::now() + COMMAND_WAIT;
    while !std::fs::read_to_string(&server.stderr)
        .unwrap_or_default()
        .contains("webhook POST")
    {
        assert!(Instant::now() < deadline, "no failed webhook POST was logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((alice, on_ws, by_token, on_tls));
    // SAFETY: kill(2) has no memory effects; the pid is our unreaped child.
    unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    let status = server.child.wait().expect("wait for the server");
    assert!(status.success(), "the server exited with {status}");

    let log = format!(
        "{}{}",
        std::fs::read_to_string(&server.stdout).expect("read stdout.log"),
        std::fs::read_to_string(&server.stderr).expect("read stderr.log")
    );
    // The log is really that verbose and the admin commands were logged, just not their secrets.
    for expected in [
        "DEBUG",
        "admin: user-add carol (password not shown)",
        "admin: user-password carol (password not shown)",
        "webhook POST to 127.0.0.1:",
    ] {
        if !log.contains(expected) {
            wrong.push(format!("the log lacks {expected:?}"));
        }
    }
    let mut leaked: Vec<(String, String)> = secrets
        .iter()
        .flat_map(|s| forms(s.as_bytes()).into_iter().map(move |f| (s.to_string(), f)))
        .chain(
            forms(&login.token)
                .into_iter()
                .map(|f| ("the login token".to_owned(), f)),
        )
        .filter(|(_, form)| log.contains(form.as_str()))
        .collect();
    leaked.dedup();
    for (secret, form) in &leaked {
        let line = log.lines().find(|l| l.contains(form.as_str())).unwrap_or_default();
        wrong.push(format!("{secret} appears in the log as {form:?}: {line}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
