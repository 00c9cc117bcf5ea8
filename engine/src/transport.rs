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

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use hotline_transport::{tls, Layer, ServerSettings, TransportError, WsServerSettings};
use hotline_wire::ErrorCode;

use crate::config::ServeConfig;
use crate::core::Core;

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

/// Handles `data` read from connection `idx`, which has a layer: decodes it into frames
/// and hands them to the same path plain TCP bytes take.
pub(crate) fn ingest(core: &mut Core, idx: usize, data: &[u8]) {
    let mut frames = std::mem::take(&mut core.layer_frames);
    frames.clear();
    let Some(layer) = core.conns.get_mut(idx).and_then(|c| c.layer.as_mut()) else {
        return;
    };
    let result = layer.ingest(data, &mut frames);
    let finished = layer.is_finished();
    let has_wire = layer.pending_bytes() > 0;
    if !frames.is_empty() {
        crate::conn::process_bytes(core, idx, &frames);
    }
    match result {
        Ok(()) => {}
        Err(e @ TransportError::FrameTooLarge { .. }) => {
            core.shared.metrics.frames_malformed.fetch_add(1, Ordering::Relaxed);
            core.close_with_error(idx, ErrorCode::FrameTooLarge, &e.to_string());
        }
        Err(e) => {
            tracing::debug!("core {}: connection {idx}: {e}", core.id);
            core.close(idx);
        }
    }
    if finished {
        core.close(idx);
    }
    if has_wire {
        core.mark_dirty(idx);
    }
    if frames.capacity() <= hotline_transport::SCRATCH_RETAIN_BYTES {
        core.layer_frames = frames;
    }
}

/// Creates the layer for a connection accepted on a listener with `settings`.
pub(crate) fn accept(settings: Option<&Arc<ServerSettings>>) -> Result<Option<Box<Layer>>, TransportError> {
    match settings {
        None => Ok(None),
        Some(s) => Ok(Layer::server(s)?.map(Box::new)),
    }
}
