//! Server configuration: the settings of `hotline serve` and how configured values relate
//! (`ServeConfig::validate`). The limits themselves, with their units, live in
//! [`crate::limits`].

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;

use hotline_wire::{Limits, DELIVER_OVERHEAD_BYTES_MAX};

use crate::storage::Durability;

use crate::limits::CORES_MAX;

/// Whether anyone may create an account over the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Open,
    Closed,
}

/// Everything `hotline serve` needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub cores: usize,
    pub durability: Durability,
    /// Under `sync`: deliveries go out before their fsync, with the durable watermark.
    pub early_delivery: bool,
    /// Cores run group commits themselves instead of waking the writer thread
    /// (`async`, or `sync` with early delivery).
    pub inline_commits: bool,
    /// What reports the readiness of each core's connections.
    pub poller: crate::poller::PollerKind,
    pub registration: Registration,
    pub idle_timeout_ms: u32,
    pub login_timeout_ms: u32,
    pub frame_bytes_max: u32,
    pub payload_bytes_max: u32,
    pub sync_page_messages_max: u32,
    pub outbound_bytes_max: usize,
    pub connections_per_core_max: usize,
    pub helper_threads: usize,
    /// Queueing delay (ms) past which cores shed new sends; 0: never by delay.
    pub shed_queue_delay_ms: u32,
    /// Most members of one group.
    pub group_members_max: usize,
    /// TLS and WebSocket listeners, and the web page.
    pub transport: TransportConfig,
    /// Abuse limits: login attempts, message rates, connections and registrations per IP.
    pub abuse: crate::abuse::AbuseLimits,
    /// Where the Prometheus text endpoint listens; `None`: off.
    pub metrics_listen: Option<SocketAddr>,
    /// The bearer token a scrape must present; `None`: the endpoint is open.
    pub metrics_token: Option<String>,
    /// How long messages keep their payload.
    pub retention: RetentionConfig,
    /// The integration API and webhooks.
    pub integration: crate::integration::settings::IntegrationConfig,
}

/// A conversation as retention names it: `(kind, a, b)`, direct `(0, lower user id,
/// higher user id)` (the same for both parties), group `(1, group id, 0)`.
pub type RetentionKey = (u8, u64, u64);

/// Retention periods in days (fractions allowed); 0 keeps forever.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionConfig {
    /// Every conversation without an override.
    pub days: f64,
    /// Per-conversation overrides (0: this conversation keeps forever).
    pub conversations: Vec<(RetentionKey, f64)>,
    pub sweep_interval_ms: u64,
}

impl RetentionConfig {
    /// Whether anything ever expires.
    pub fn any(&self) -> bool {
        self.days > 0.0 || self.conversations.iter().any(|(_, d)| *d > 0.0)
    }

    /// The shortest period in force, if any.
    pub fn shortest_days(&self) -> Option<f64> {
        std::iter::once(self.days)
            .chain(self.conversations.iter().map(|(_, d)| *d))
            .filter(|d| *d > 0.0)
            .reduce(f64::min)
    }

    /// The period for `conversation` as seen from `user`'s inbox; `None`: keep forever.
    pub fn days_for(&self, user: u64, conversation: hotline_wire::Conversation) -> Option<f64> {
        let key = match conversation {
            hotline_wire::Conversation::Direct(other) => (0, user.min(other), user.max(other)),
            hotline_wire::Conversation::Group(group) => (1, group, 0),
            hotline_wire::Conversation::Other { .. } => return None,
        };
        let days = self
            .conversations
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(self.days, |(_, d)| *d);
        (days > 0.0).then_some(days)
    }
}

/// Parses one per-conversation retention: `group:ID=DAYS` or `direct:USER-USER=DAYS`.
pub fn parse_retention_override(s: &str) -> Result<(RetentionKey, f64), String> {
    let bad = || format!("{s:?}: expected group:ID=DAYS or direct:USER_ID-USER_ID=DAYS");
    let (conv, days) = s.split_once('=').ok_or_else(bad)?;
    let days: f64 = days.trim().parse().map_err(|_| bad())?;
    if !days.is_finite() || days < 0.0 {
        return Err(format!("{s:?}: days must be 0 (keep forever) or more"));
    }
    let key = if let Some(id) = conv.strip_prefix("group:") {
        (1, id.parse().map_err(|_| bad())?, 0)
    } else if let Some(pair) = conv.strip_prefix("direct:") {
        let (a, b) = pair.split_once('-').ok_or_else(bad)?;
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        (0, a.min(b), a.max(b))
    } else {
        return Err(bad());
    };
    Ok((key, days))
}

/// Default address of the Prometheus endpoint (loopback: it is not authenticated).
pub const METRICS_LISTEN_DEFAULT: &str = "127.0.0.1:9700";
/// Shortest `--metrics-token` accepted.
pub const METRICS_TOKEN_BYTES_MIN: usize = 16;

/// A `--config` file that cannot be read as settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFileError {
    #[error("not TOML: {0}")]
    Syntax(String),
    #[error("unknown key `{key}` (known keys: {known})")]
    UnknownKey { key: String, known: String },
    #[error("{key} = {value}: {why}")]
    BadValue {
        key: String,
        value: String,
        why: &'static str,
    },
}

/// Reads a flat TOML file into `(key, value)` pairs, each value as its flag would take it
/// (arrays joined with `,`; an empty array is left out). Keys must be among `known`; tables and dates are refused.
pub fn parse_config_file(text: &str, known: &[&str]) -> Result<Vec<(String, String)>, ConfigFileError> {
    use toml_edit::Value;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| ConfigFileError::Syntax(e.to_string()))?;
    let mut out = Vec::new();
    for (key, item) in doc.iter() {
        if !known.contains(&key) {
            return Err(ConfigFileError::UnknownKey {
                key: key.to_owned(),
                known: known.join(", "),
            });
        }
        let bad = |why| ConfigFileError::BadValue {
            key: key.to_owned(),
            value: item
                .span()
                .and_then(|r| text.get(r))
                .map_or_else(|| item.type_name().to_owned(), |v| v.trim().to_owned()),
            why,
        };
        let scalar = |v: &Value| -> Option<String> {
            match v {
                Value::String(s) => Some(s.value().clone()),
                Value::Integer(i) => Some(i.value().to_string()),
                Value::Boolean(b) => Some(b.value().to_string()),
                _ => None,
            }
        };
        let value = match item.as_value() {
            // An empty list is the default of every list setting: nothing to pass on.
            Some(Value::Array(a)) if a.is_empty() => continue,
            Some(Value::Array(a)) => {
                let parts: Option<Vec<String>> = a.iter().map(scalar).collect();
                parts
                    .ok_or_else(|| bad("array items must be strings, integers or booleans"))?
                    .join(",")
            }
            Some(v) => scalar(v).ok_or_else(|| bad("must be a string, an integer, a boolean or an array"))?,
            None => return Err(bad("tables are not settings: keys are flat")),
        };
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// Default address of the TLS listener (used only with a certificate).
pub const TLS_LISTEN_DEFAULT: &str = "127.0.0.1:7443";
/// Default address of the WebSocket listener.
pub const WS_LISTEN_DEFAULT: &str = "127.0.0.1:7701";

/// The listeners besides plain TCP. Plain TCP (`listen`) is always on: loopback clients
/// and benchmarks use it; TLS and WebSocket are extra listeners on their own ports.
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    /// PEM certificate chain; with `tls_key`, turns on the TLS listener.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Where TLS over TCP is accepted (only when a certificate is given).
    pub tls_listen: Option<SocketAddr>,
    /// Where WebSocket is accepted (one binary message = one frame); `None`: off.
    pub ws_listen: Option<SocketAddr>,
    /// The WebSocket listener speaks TLS (wss://) with the same certificate.
    pub ws_tls: bool,
    /// Browser origins allowed to open a WebSocket besides the page's own (`*`: any).
    pub ws_origins_allowed: Vec<String>,
    /// Serve the web chat page on the WebSocket listener (`GET /`).
    pub web: bool,
}

impl TransportConfig {
    /// Whether a certificate is configured.
    pub fn has_tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} = {value}: {why}")]
    Invalid {
        key: &'static str,
        value: String,
        why: Cow<'static, str>,
    },
}

/// A refusal of `key = value` for a fixed reason.
fn invalid(key: &'static str, value: String, why: &'static str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        value,
        why: why.into(),
    })
}

impl ServeConfig {
    /// Checks how the limits relate; the first violation names the key, value and reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.len() < METRICS_TOKEN_BYTES_MIN)
        {
            return Err(ConfigError::Invalid {
                key: "metrics_token",
                value: "(hidden)".into(),
                why: format!("at least {METRICS_TOKEN_BYTES_MIN} characters").into(),
            });
        }
        self.validate_limits()?;
        self.validate_integration()?;
        self.validate_transport()
    }

    /// Cores, frame and payload sizes, timeouts, pages, retention.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        // The few reasons that name a limit's value say it from the constant.
        let invalid_text = |key, value: String, why: String| {
            Err(ConfigError::Invalid {
                key,
                value,
                why: why.into(),
            })
        };
        if self.cores == 0 {
            return invalid("cores", "0".into(), "at least one core is needed");
        }
        if self.cores > CORES_MAX {
            return invalid_text("cores", self.cores.to_string(), format!("at most {CORES_MAX} cores"));
        }
        if self.payload_bytes_max + DELIVER_OVERHEAD_BYTES_MAX > self.frame_bytes_max {
            return invalid_text(
                "payload_bytes_max",
                self.payload_bytes_max.to_string(),
                format!(
                    "a payload plus its Deliver overhead ({DELIVER_OVERHEAD_BYTES_MAX} B) must fit in frame_bytes_max"
                ),
            );
        }
        if self.outbound_bytes_max < (self.payload_bytes_max + DELIVER_OVERHEAD_BYTES_MAX) as usize {
            return invalid_text(
                "outbound_bytes_max",
                self.outbound_bytes_max.to_string(),
                format!("must hold at least one largest Deliver (payload_bytes_max + {DELIVER_OVERHEAD_BYTES_MAX} B)"),
            );
        }
        if self.idle_timeout_ms < 200 {
            return invalid("idle_timeout_ms", self.idle_timeout_ms.to_string(), "at least 200 ms");
        }
        if self.group_members_max == 0 {
            return invalid("group_members_max", "0".into(), "a group holds at least its owner");
        }
        if self.sync_page_messages_max == 0 || self.sync_page_messages_max > 4_096 {
            return invalid(
                "sync_page_messages_max",
                self.sync_page_messages_max.to_string(),
                "1 to 4096",
            );
        }
        let r = &self.retention;
        if !r.days.is_finite() || r.days < 0.0 {
            return invalid("retention_days", r.days.to_string(), "0 (keep forever) or more days");
        }
        if r.sweep_interval_ms < 10 {
            return invalid(
                "retention_sweep_interval_ms",
                r.sweep_interval_ms.to_string(),
                "at least 10 ms",
            );
        }
        Ok(())
    }

    /// The integration API and webhooks: each setting needs the one it builds on.
    fn validate_integration(&self) -> Result<(), ConfigError> {
        let i = &self.integration;
        if let Some(url) = &i.webhook_url {
            if crate::integration::settings::parse_http_url(url).is_err() {
                return invalid("webhook_url", url.clone(), "an http://HOST:PORT/PATH URL");
            }
            if i.webhook_secret.len() < 16 {
                return invalid(
                    "webhook_secret",
                    "(hidden)".into(),
                    "at least 16 characters to sign webhooks with",
                );
            }
        }
        if i.webhook_url.is_none() && i.webhook_online {
            return invalid("webhook_online", "true".into(), "needs webhook_url");
        }
        if i.webhook_url.is_none() && !i.webhook_users.is_empty() {
            return invalid("webhook_users", i.webhook_users.join(","), "needs webhook_url");
        }
        if !i.api_tokens.is_empty() && i.api_listen.is_none() {
            return invalid("api_tokens", "(hidden)".into(), "needs api_listen");
        }
        Ok(())
    }

    /// TLS, WebSocket and the web page: a certificate comes as a pair, wss needs it.
    fn validate_transport(&self) -> Result<(), ConfigError> {
        let t = &self.transport;
        if t.tls_cert.is_some() != t.tls_key.is_some() {
            return invalid(
                "tls_cert",
                format!("{:?} / {:?}", t.tls_cert, t.tls_key),
                "--tls-cert and --tls-key go together",
            );
        }
        if t.ws_tls && !t.has_tls() {
            return invalid("ws_tls", "true".into(), "wss needs --tls-cert and --tls-key");
        }
        if t.web && t.ws_listen.is_none() {
            return invalid(
                "web",
                "true".into(),
                "the web page is served on the WebSocket listener: set --ws-listen",
            );
        }
        Ok(())
    }

    /// The limits announced to clients in `HelloOk`.
    pub fn limits(&self) -> Limits {
        Limits {
            frame_bytes_max: self.frame_bytes_max,
            payload_bytes_max: self.payload_bytes_max,
            sync_page_messages_max: self.sync_page_messages_max,
            idle_timeout_ms: self.idle_timeout_ms,
            ..Limits::default()
        }
    }

    /// Bytes of records in one `SyncPage`: what fits in a frame with room for overheads.
    pub fn sync_page_bytes_max(&self) -> usize {
        (self.frame_bytes_max as usize) / 2
    }
}

/// A valid configuration for tests and the fuzz harness (one core, defaults, no listeners
/// of its own); tests override what they exercise.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn test_config() -> ServeConfig {
    use crate::limits::{
        CONNECTIONS_PER_CORE_MAX_DEFAULT, GROUP_MEMBERS_MAX_DEFAULT, LOGIN_TIMEOUT_MS_DEFAULT,
        RETENTION_SWEEP_INTERVAL_MS_DEFAULT,
    };
    ServeConfig {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        data_dir: PathBuf::from("unused"),
        cores: 1,
        durability: Durability::Sync,
        early_delivery: true,
        inline_commits: true,
        poller: crate::poller::PollerKind::Auto,
        registration: Registration::Open,
        idle_timeout_ms: 60_000,
        login_timeout_ms: LOGIN_TIMEOUT_MS_DEFAULT,
        frame_bytes_max: hotline_wire::FRAME_BYTES_MAX_DEFAULT,
        payload_bytes_max: hotline_wire::PAYLOAD_BYTES_MAX_DEFAULT,
        sync_page_messages_max: hotline_wire::SYNC_PAGE_MESSAGES_MAX_DEFAULT,
        outbound_bytes_max: hotline_wire::FRAME_BYTES_MAX_DEFAULT as usize,
        connections_per_core_max: CONNECTIONS_PER_CORE_MAX_DEFAULT,
        helper_threads: 1,
        shed_queue_delay_ms: crate::limits::SHED_QUEUE_DELAY_MS_DEFAULT,
        group_members_max: GROUP_MEMBERS_MAX_DEFAULT,
        transport: TransportConfig::default(),
        metrics_listen: None,
        metrics_token: None,
        retention: RetentionConfig {
            sweep_interval_ms: RETENTION_SWEEP_INTERVAL_MS_DEFAULT,
            ..RetentionConfig::default()
        },
        integration: crate::integration::settings::IntegrationConfig::default(),
        abuse: crate::abuse::AbuseLimits::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_overrides_parse_and_apply_per_conversation() {
        use hotline_wire::Conversation;
        assert_eq!(parse_retention_override("group:42=7"), Ok(((1, 42, 0), 7.0)));
        assert_eq!(parse_retention_override("direct:9-3=0.5"), Ok(((0, 3, 9), 0.5)));
        assert!(parse_retention_override("direct:9=1").is_err());
        assert!(parse_retention_override("group:1=-1").is_err());
        let r = RetentionConfig {
            days: 30.0,
            conversations: vec![((1, 42, 0), 0.0), ((0, 3, 9), 2.0)],
            sweep_interval_ms: 1_000,
        };
        assert_eq!(r.days_for(9, Conversation::Direct(3)), Some(2.0));
        assert_eq!(r.days_for(3, Conversation::Direct(9)), Some(2.0));
        assert_eq!(r.days_for(3, Conversation::Direct(4)), Some(30.0));
        assert_eq!(r.days_for(3, Conversation::Group(42)), None);
        assert_eq!(r.shortest_days(), Some(2.0));
        assert!(!RetentionConfig::default().any());
    }

    #[test]
    fn config_file_keys_are_checked_and_values_flattened() {
        let known = ["cores", "web", "ws_allowed_origins", "listen"];
        let got = parse_config_file(
            "cores = 4\nweb = true\nws_allowed_origins = [\"https://a\", \"https://b\"]\nlisten = \"127.0.0.1:1\"\n",
            &known,
        );
        assert_eq!(
            got,
            Ok(vec![
                ("cores".into(), "4".into()),
                ("web".into(), "true".into()),
                ("ws_allowed_origins".into(), "https://a,https://b".into()),
                ("listen".into(), "127.0.0.1:1".into()),
            ])
        );
        assert!(matches!(
            parse_config_file("corse = 4\n", &known),
            Err(ConfigFileError::UnknownKey { key, .. }) if key == "corse"
        ));
        assert!(matches!(
            parse_config_file("[cores]\nx = 1\n", &known),
            Err(ConfigFileError::BadValue { key, .. }) if key == "cores"
        ));
        assert!(matches!(
            parse_config_file("cores = \n", &known),
            Err(ConfigFileError::Syntax(_))
        ));
    }

    #[test]
    fn defaults_are_valid_and_violations_name_the_key() {
        assert_eq!(test_config().validate(), Ok(()));
        let c = ServeConfig {
            payload_bytes_max: hotline_wire::FRAME_BYTES_MAX_DEFAULT,
            ..test_config()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                key: "payload_bytes_max",
                ..
            })
        ));
        let c = ServeConfig {
            cores: 0,
            ..test_config()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { key: "cores", .. })));
        let c = ServeConfig {
            outbound_bytes_max: 10,
            ..test_config()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                key: "outbound_bytes_max",
                ..
            })
        ));
        let c = ServeConfig {
            transport: TransportConfig {
                tls_cert: Some("cert.pem".into()),
                ..TransportConfig::default()
            },
            ..test_config()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid { key: "tls_cert", .. })
        ));
        let c = ServeConfig {
            transport: TransportConfig {
                ws_tls: true,
                ..TransportConfig::default()
            },
            ..test_config()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Invalid { key: "ws_tls", .. })));
    }
}
