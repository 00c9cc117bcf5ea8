//! Server configuration: every limit named with its unit, and how limits relate.

use std::net::SocketAddr;
use std::path::PathBuf;

use hotline_wire::{Limits, DELIVER_OVERHEAD_BYTES_MAX};

pub use crate::storage::writer::{Durability, GROUP_MEMBERS_MAX_DEFAULT};

/// Whether anyone may create an account over the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Open,
    Closed,
}

/// Default most bytes queued for one connection before its device stops getting live
/// pushes and catches up from the log instead.
pub const OUTBOUND_BYTES_MAX_DEFAULT: usize = 256 << 10;
/// Default most connections one core holds (the process's open-file limit binds first here).
pub const CONNECTIONS_PER_CORE_MAX_DEFAULT: usize = 1 << 20;
/// Default time a connection has to log in.
pub const LOGIN_TIMEOUT_MS_DEFAULT: u32 = 10_000;
/// Default helper threads (argon2, reads).
pub const HELPER_THREADS_DEFAULT: usize = 2;
/// Most unacknowledged sends per connection; beyond it the server stops reading that
/// connection until acks go out (TCP pushes back on the client).
pub const SENDS_IN_FLIGHT_MAX: u16 = 1_024;
/// Most `Sync` requests one connection may have in flight.
pub const SYNCS_IN_FLIGHT_MAX: u16 = 4;
/// Most `Ack`s with a request id waiting for their `AckOk` on one connection.
pub const ACK_WAITERS_MAX: usize = 64;
/// Most malformed frames a connection may send before it is closed.
pub const MALFORMED_FRAMES_MAX: u32 = 16;
/// Most bytes read from one connection per readiness, so one busy peer cannot starve the core.
pub const READ_BYTES_PER_WAKE_MAX: usize = 256 << 10;
/// The per-core read buffer every connection reads into (an idle connection holds none).
pub const READ_SCRATCH_BYTES: usize = 64 << 10;
/// Output buffer capacity a connection keeps after a flush; larger buffers are freed.
pub const OUTBOUND_RETAIN_BYTES: usize = 16 << 10;
/// How long a closing connection may take to flush before it is cut.
pub const CLOSE_LINGER_MS: u64 = 1_000;
/// Most messages a device catches up per log read.
pub const CATCH_UP_PAGE_MESSAGES_MAX: usize = 256;
/// Longest group name, in UTF-8 bytes.
pub const GROUP_NAME_BYTES_MAX: usize = 128;
/// Shortest time between two `Typing` frames of one device that are passed on.
pub const TYPING_INTERVAL_MS_MIN: u64 = 1_000;

/// Everything `hotline serve` needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub cores: usize,
    pub durability: Durability,
    pub registration: Registration,
    pub idle_timeout_ms: u32,
    pub login_timeout_ms: u32,
    pub frame_bytes_max: u32,
    pub payload_bytes_max: u32,
    pub sync_page_messages_max: u32,
    pub outbound_bytes_max: usize,
    pub connections_per_core_max: usize,
    pub helper_threads: usize,
    /// Most members of one group.
    pub group_members_max: usize,
    /// TLS and WebSocket listeners, and the web page.
    pub transport: TransportConfig,
    /// Abuse limits: login attempts, message rates, connections and registrations per IP.
    pub abuse: crate::abuse::AbuseLimits,
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
        why: &'static str,
    },
}

impl ServeConfig {
    /// Checks how the limits relate; the first violation names the key, value and reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: String, why| Err(ConfigError::Invalid { key, value, why });
        if self.cores == 0 {
            return invalid("cores", "0".into(), "at least one core is needed");
        }
        if self.cores > 256 {
            return invalid("cores", self.cores.to_string(), "at most 256 cores");
        }
        if self.payload_bytes_max + DELIVER_OVERHEAD_BYTES_MAX > self.frame_bytes_max {
            return invalid(
                "payload_bytes_max",
                self.payload_bytes_max.to_string(),
                "a payload plus its Deliver overhead (256 B) must fit in frame_bytes_max",
            );
        }
        if self.outbound_bytes_max < (self.payload_bytes_max + DELIVER_OVERHEAD_BYTES_MAX) as usize {
            return invalid(
                "outbound_bytes_max",
                self.outbound_bytes_max.to_string(),
                "must hold at least one largest Deliver (payload_bytes_max + 256 B)",
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

#[cfg(test)]
pub(crate) fn test_config() -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        data_dir: PathBuf::from("unused"),
        cores: 1,
        durability: Durability::Sync,
        registration: Registration::Open,
        idle_timeout_ms: 60_000,
        login_timeout_ms: LOGIN_TIMEOUT_MS_DEFAULT,
        frame_bytes_max: hotline_wire::FRAME_BYTES_MAX_DEFAULT,
        payload_bytes_max: hotline_wire::PAYLOAD_BYTES_MAX_DEFAULT,
        sync_page_messages_max: hotline_wire::SYNC_PAGE_MESSAGES_MAX_DEFAULT,
        outbound_bytes_max: hotline_wire::FRAME_BYTES_MAX_DEFAULT as usize,
        connections_per_core_max: CONNECTIONS_PER_CORE_MAX_DEFAULT,
        helper_threads: 1,
        group_members_max: GROUP_MEMBERS_MAX_DEFAULT,
        transport: TransportConfig::default(),
        abuse: crate::abuse::AbuseLimits::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
