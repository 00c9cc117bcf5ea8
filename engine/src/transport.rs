//! TLS and WebSocket connections on a core.
//!
//! Choice: a TLS or WebSocket connection is an ordinary connection with a [`Layer`] (from
//! `hotline-transport`, sans-IO) in its `Conn`. The core still does every socket read and
//! write itself: bytes read into the per-core scratch buffer go through
//! [`Layer::ingest`], which yields the same length-prefixed frame stream plain TCP carries,
//! so framing, limits, verification and errors are exactly the TCP path's; frames queued
//! for the connection are sealed into TLS records / WebSocket messages at flush time.
//! Because the layer holds no descriptor, no thread and no runtime handle, it moves with
//! the connection when a logged-in connection is handed to its user's home core (inside
//! the `Adopt`, beside the duplicated descriptor): the home core carries on the same TLS
//! session and WebSocket. No proxy, no extra hop.
//!
//! Cost: TLS and WebSocket state live per connection (rustls' session, tungstenite's read
//! buffer, about 4 KiB at rest, grown to the largest message received), on top of what a
//! plain connection holds; scratch buffers are released when a connection drains.
//!
//! CPU: TLS handshakes (one ECDHE and one signature) and record encryption run on the core
//! that owns the connection, inline: CPU work, never a blocking call, bounded per wake-up
//! like any read (`READ_BYTES_PER_WAKE_MAX`). A burst of new TLS clients therefore costs
//! the accepting cores CPU time; `results/transports/` measures it.

use std::sync::Arc;

use anyhow::Context;
use hotline_transport::{tls, Layer, ServerSettings, TransportError, WsServerSettings};

use crate::config::ServeConfig;

/// What each listener besides plain TCP speaks, shared by its connections.
#[derive(Debug, Default)]
pub struct Transports {
    /// The TLS listener's settings, when a certificate is configured.
    pub tls: Option<Arc<ServerSettings>>,
    /// The WebSocket listener's settings, unless it is off.
    pub ws: Option<Arc<ServerSettings>>,
}

impl Transports {
    /// Loads the certificate (if any) and builds each listener's settings.
    pub fn from_config(config: &ServeConfig) -> anyhow::Result<Transports> {
        let t = &config.transport;
        let tls = match (&t.tls_cert, &t.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key).context("cannot load --tls-cert/--tls-key")?),
            _ => None,
        };
        let ws = t.ws_listen.map(|_| {
            Arc::new(ServerSettings {
                tls: if t.ws_tls { tls.clone() } else { None },
                ws: Some(Arc::new(WsServerSettings {
                    frame_bytes_max: config.frame_bytes_max,
                    origins_allowed: t.ws_origins_allowed.clone(),
                    files: t
                        .web
                        .then_some(crate::web::file as hotline_transport::http::StaticFiles),
                })),
            })
        });
        let tls = tls.map(|config| {
            Arc::new(ServerSettings {
                tls: Some(config),
                ws: None,
            })
        });
        Ok(Transports { tls, ws })
    }
}

/// Creates the layer for a connection accepted on a listener with `settings`.
pub(crate) fn accept(settings: Option<&Arc<ServerSettings>>) -> Result<Option<Box<Layer>>, TransportError> {
    match settings {
        None => Ok(None),
        Some(s) => Ok(Layer::server(s)?.map(Box::new)),
    }
}
