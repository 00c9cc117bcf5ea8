//! The integration settings: what `--api-*` and `--webhook-*` configure, and how their
//! values parse. Kept apart from the API and webhook threads so that [`crate::config`] can
//! hold them without depending on the threads (and, through them, on the cores).

use std::net::SocketAddr;

/// What the integration threads need from the configuration. Its `Debug` leaves the
/// secrets out (API tokens, the webhook secret and URL path), so no log can show them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IntegrationConfig {
    pub api_listen: Option<SocketAddr>,
    /// `(token, service username)`.
    pub api_tokens: Vec<(String, String)>,
    /// `http://host:port/path`.
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    /// Bot usernames whose incoming messages are posted.
    pub webhook_users: Vec<String>,
    pub webhook_retries_max: u32,
    /// Also POST `{"event":"online",...}` when a user's first device comes online.
    pub webhook_online: bool,
}

impl std::fmt::Debug for IntegrationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services: Vec<&str> = self.api_tokens.iter().map(|(_, user)| user.as_str()).collect();
        f.debug_struct("IntegrationConfig")
            .field("api_listen", &self.api_listen)
            .field("api_token_users", &services)
            .field("webhook_host", &self.webhook_url.as_deref().map(url_host))
            .field("webhook_secret_set", &!self.webhook_secret.is_empty())
            .field("webhook_users", &self.webhook_users)
            .field("webhook_retries_max", &self.webhook_retries_max)
            .field("webhook_online", &self.webhook_online)
            .finish()
    }
}

/// Parses `USERNAME:TOKEN`.
pub fn parse_api_token(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((user, token)) if !user.is_empty() && token.len() >= 16 => Ok((token.to_owned(), user.to_owned())),
        // The value is not echoed: even a rejected token may be a real one mistyped.
        _ => Err("expected USERNAME:TOKEN with a token of at least 16 characters".into()),
    }
}

/// Splits `http://host:port/path`.
pub fn parse_http_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs (put TLS in front with a local proxy)"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    let path = if path.is_empty() { "/" } else { path };
    Ok((authority.to_owned(), path.to_owned()))
}

/// The `host:port` of a webhook URL, the part of it a log may show.
pub(super) fn url_host(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    // Userinfo (`user:password@`) is a secret too.
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_tokens_parse() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:9/hook"),
            Ok(("127.0.0.1:9".into(), "/hook".into()))
        );
        assert_eq!(parse_http_url("http://h"), Ok(("h".into(), "/".into())));
        assert!(parse_http_url("https://h/").is_err());
        assert_eq!(
            parse_api_token("bot:0123456789abcdef"),
            Ok(("0123456789abcdef".into(), "bot".into()))
        );
        assert!(parse_api_token("bot:short").is_err());
    }

    #[test]
    fn neither_debug_nor_a_webhook_log_line_shows_a_secret() {
        assert_eq!(url_host("http://127.0.0.1:9/hooks/T0K3N"), "127.0.0.1:9");
        assert_eq!(url_host("http://user:pa55@h:80/x"), "h:80");
        let config = IntegrationConfig {
            api_tokens: vec![("api-secret-0123456789".into(), "svc".into())],
            webhook_url: Some("http://user:pa55@h:80/hooks/T0K3N".into()),
            webhook_secret: "webhook-secret-0123456789".into(),
            ..IntegrationConfig::default()
        };
        let shown = format!("{config:?}");
        for secret in ["api-secret-0123456789", "pa55", "T0K3N", "webhook-secret-0123456789"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("svc") && shown.contains("h:80"), "{shown}");
    }
}
