//! The HTTP/1.1 phase of a server WebSocket connection: one request head, answered with
//! the WebSocket upgrade, a static file (the web chat page, when the server has one) or
//! an error, after which the connection closes.
//!
//! The upgrade is validated and answered by tungstenite's handshake code
//! (`create_response`: method, version, `Connection`, `Upgrade`, `Sec-WebSocket-Version`,
//! the accept key). The `Origin` check is ours: a request without `Origin` (not a
//! browser) is allowed, a browser's is allowed when it is the page's own origin (the
//! listener that served the page: `Origin` names the `Host` it asked) or on the
//! configured allow-list (`*` allows any).
//!
//! Every response carries the headers a browser needs to keep the page to itself: a
//! Content-Security-Policy that allows only the page's own script, stylesheet and
//! WebSocket (no inline code, no framing, no forms posting elsewhere), no sniffing, no
//! referrer, and, over TLS, Strict-Transport-Security.

use std::io::Write;

use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{create_response, write_response, Request};

use crate::{WsServerSettings, HTTP_HEAD_BYTES_MAX};

/// A file the server can answer a plain `GET` with.
#[derive(Debug, Clone, Copy)]
pub struct StaticFile {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Finds the static file for a request path (`/`, `/app.js`...), if any.
pub type StaticFiles = fn(&str) -> Option<StaticFile>;

/// What a request head led to.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpOutcome {
    /// The head is not complete yet.
    NeedMore,
    /// `101 Switching Protocols` was written; the first `consumed` bytes were the request,
    /// anything after them is already WebSocket.
    Upgraded { consumed: usize },
    /// A final response was written (a file or an error): close once it is flushed.
    Responded { status: u16 },
}

/// Handles the request head at the start of `head`, writing any response to `out`;
/// `secure`: the connection is TLS (responses then ask browsers to stay on TLS).
pub fn serve_head(head: &[u8], settings: &WsServerSettings, secure: bool, out: &mut Vec<u8>) -> HttpOutcome {
    let (consumed, request) = match Request::try_parse(head) {
        Ok(Some(parsed)) => parsed,
        Ok(None) if head.len() > HTTP_HEAD_BYTES_MAX => {
            return respond_error(out, secure, 431, "Request Header Fields Too Large")
        }
        Ok(None) => return HttpOutcome::NeedMore,
        Err(_) => return respond_error(out, secure, 400, "Bad Request"),
    };
    if !is_upgrade(&request) {
        let path = request.uri().path();
        return match settings.files.and_then(|files| files(path)) {
            Some(file) => respond(out, secure, 200, "OK", file.content_type, file.body),
            None => respond_error(out, secure, 404, "Not Found"),
        };
    }
    if !origin_allowed(&request, &settings.origins_allowed) {
        return respond_error(out, secure, 403, "Forbidden");
    }
    match create_response(&request) {
        Ok(response) => match write_response(&mut *out, &response) {
            Ok(()) => HttpOutcome::Upgraded { consumed },
            Err(_) => respond_error(out, secure, 500, "Internal Server Error"),
        },
        Err(_) => respond_error(out, secure, 400, "Bad Request"),
    }
}

/// What every response allows a browser: the page's own script and stylesheet, a
/// WebSocket back to where the page came from, nothing inline, no framing, no form posts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long (s) a browser that reached the page over TLS keeps to TLS for this host.
pub const HSTS_MAX_AGE_S: u32 = 31_536_000;

fn is_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Whether a browser page from the request's `Origin` may open this WebSocket.
pub fn origin_allowed(request: &Request, origins_allowed: &[String]) -> bool {
    let Some(origin) = request.headers().get("origin") else {
        return true;
    };
    let Ok(origin) = origin.to_str() else { return false };
    if origins_allowed
        .iter()
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = request.headers().get("host").and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

fn respond(out: &mut Vec<u8>, secure: bool, status: u16, reason: &str, content_type: &str, body: &[u8]) -> HttpOutcome {
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\nX-Frame-Options: DENY\r\n\
         Referrer-Policy: no-referrer\r\nCross-Origin-Opener-Policy: same-origin\r\n\
         Cross-Origin-Resource-Policy: same-origin\r\n",
        body.len()
    );
    if secure {
        let _ = write!(out, "Strict-Transport-Security: max-age={HSTS_MAX_AGE_S}\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(body);
    HttpOutcome::Responded { status }
}

fn respond_error(out: &mut Vec<u8>, secure: bool, status: u16, reason: &str) -> HttpOutcome {
    let body = format!("{status} {reason}\n");
    respond(
        out,
        secure,
        status,
        reason,
        "text/plain; charset=utf-8",
        body.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(origins: &[&str]) -> WsServerSettings {
        WsServerSettings {
            frame_bytes_max: 1 << 20,
            origins_allowed: origins.iter().map(|s| (*s).to_owned()).collect(),
            files: Some(|path| {
                (path == "/").then_some(StaticFile {
                    content_type: "text/html",
                    body: b"<p>hi</p>",
                })
            }),
        }
    }

    fn upgrade(origin: Option<&str>) -> Vec<u8> {
        let mut r = String::from(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:7701\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        );
        if let Some(o) = origin {
            r.push_str(&format!("Origin: {o}\r\n"));
        }
        r.push_str("\r\n");
        r.into_bytes()
    }

    #[test]
    fn an_upgrade_gets_the_rfc_accept_key() {
        let mut out = Vec::new();
        let head = upgrade(None);
        assert_eq!(
            serve_head(&head, &settings(&[]), false, &mut out),
            HttpOutcome::Upgraded { consumed: head.len() }
        );
        let text = String::from_utf8(out).expect("ascii response");
        assert!(text.starts_with("HTTP/1.1 101"), "{text}");
        // RFC 6455 section 1.3's example key and accept value.
        assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{text}");
    }

    #[test]
    fn origins_are_checked() {
        let mut out = Vec::new();
        let same = upgrade(Some("http://127.0.0.1:7701"));
        assert!(matches!(
            serve_head(&same, &settings(&[]), false, &mut out),
            HttpOutcome::Upgraded { .. }
        ));
        let evil = upgrade(Some("http://evil.example"));
        assert_eq!(
            serve_head(&evil, &settings(&[]), false, &mut out),
            HttpOutcome::Responded { status: 403 }
        );
        assert!(matches!(
            serve_head(&evil, &settings(&["http://evil.example"]), false, &mut out),
            HttpOutcome::Upgraded { .. }
        ));
        assert!(matches!(
            serve_head(&evil, &settings(&["*"]), false, &mut out),
            HttpOutcome::Upgraded { .. }
        ));
    }

    #[test]
    fn plain_gets_files_or_404_and_partial_heads_wait() {
        let mut out = Vec::new();
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            serve_head(get, &settings(&[]), false, &mut out),
            HttpOutcome::Responded { status: 200 }
        );
        assert!(out.ends_with(b"<p>hi</p>"));
        let missing = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            serve_head(missing, &settings(&[]), false, &mut Vec::new()),
            HttpOutcome::Responded { status: 404 }
        );
        assert_eq!(
            serve_head(b"GET / HTTP/1.1\r\nHo", &settings(&[]), false, &mut Vec::new()),
            HttpOutcome::NeedMore
        );
        let huge = vec![b'a'; HTTP_HEAD_BYTES_MAX + 1];
        assert!(matches!(
            serve_head(&huge, &settings(&[]), false, &mut Vec::new()),
            HttpOutcome::Responded { status: 400 | 431 }
        ));
    }

    #[test]
    fn every_response_keeps_the_page_to_itself_and_over_tls_asks_to_stay_on_tls() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let missing = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
        for (head, secure) in [
            (&get[..], false),
            (&get[..], true),
            (&missing[..], false),
            (&missing[..], true),
        ] {
            let mut out = Vec::new();
            serve_head(head, &settings(&[]), secure, &mut out);
            let text = String::from_utf8_lossy(&out);
            let (headers, _) = text.split_once("\r\n\r\n").expect("a complete head");
            for expected in [
                "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';",
                "frame-ancestors 'none'",
                "X-Content-Type-Options: nosniff",
                "X-Frame-Options: DENY",
                "Referrer-Policy: no-referrer",
            ] {
                assert!(headers.contains(expected), "{expected:?} missing from {headers}");
            }
            assert_eq!(
                headers.contains("Strict-Transport-Security: max-age=31536000"),
                secure,
                "HSTS only over TLS: {headers}"
            );
            assert!(!headers.contains("unsafe-inline"));
        }
    }
}
