//! What every thread of a server shares: the configuration, the queues to the cores, the
//! log writer and the helper pool, the counters, the transports and the abuse limits.
//! Read-mostly; counters are atomics. A module of its own so that the threads that only
//! read it (metrics, integration, retention, the control socket) need nothing of a core.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use crate::config::ServeConfig;
use crate::helper::HelperPool;
use crate::mailbox::Mailbox;
use crate::metrics::Metrics;
use crate::storage::writer::LogWriter;
use crate::transport::Transports;

/// What every core shares (read-mostly; counters are atomics).
#[derive(Debug)]
pub struct Shared {
    pub config: ServeConfig,
    pub mailboxes: Arc<[Mailbox]>,
    pub writer: Arc<LogWriter>,
    pub helpers: Arc<HelperPool>,
    pub shutdown: AtomicBool,
    pub metrics: Metrics,
    /// Connections currently open, all cores together.
    pub connections: AtomicU64,
    /// What the TLS and WebSocket listeners speak.
    pub transports: Transports,
    /// Counters of the integration API and webhooks.
    pub integration: crate::metrics::IntegrationStats,
    /// Users whose first device came online, for the webhook thread (`None`: no
    /// `--webhook-online`). Bounded; a full queue drops the event and counts it.
    pub online_events: Option<crossbeam_queue::ArrayQueue<u64>>,
    /// Abuse limits, shared by every core.
    pub limiter: Arc<crate::abuse::Limiter>,
}

impl Shared {
    /// The shared state of a server running `config` over the given writer, helpers and
    /// mailboxes (one per core); counters start at zero.
    pub fn new(
        config: ServeConfig,
        mailboxes: Arc<[Mailbox]>,
        writer: Arc<LogWriter>,
        helpers: Arc<HelperPool>,
        transports: Transports,
    ) -> Shared {
        Shared {
            online_events: config
                .integration
                .webhook_online
                .then(|| crossbeam_queue::ArrayQueue::new(crate::limits::ONLINE_EVENTS_MAX)),
            limiter: Arc::new(crate::abuse::Limiter::new(config.abuse)),
            config,
            mailboxes,
            writer,
            helpers,
            shutdown: AtomicBool::new(false),
            metrics: Metrics::default(),
            connections: AtomicU64::new(0),
            transports,
            integration: Default::default(),
        }
    }
}
