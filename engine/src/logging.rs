//! `--log-format json`: one JSON object per log line (`ts_ms`, `level`, `target`, the
//! message and every field), for log shippers. Text logs use tracing-subscriber's default.
//!
//! No secret reaches a log, at any level: passwords, login tokens, API tokens, the webhook
//! secret and URL path. Hotline's own call sites never format one (the admin socket logs
//! requests through `control::Loggable`; `IntegrationConfig`'s `Debug` hides its secrets);
//! dependencies that print wire bytes at TRACE are cut off by [`secret_free`] whatever the
//! filter (`--log-level`, `RUST_LOG`) asks for.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Log targets that print connection bytes at TRACE: tungstenite logs every WebSocket
/// frame's payload in hex (`received frame`, `writing frame`), so a `Login`'s password and
/// a `LoginOk`'s token with it.
pub const BYTE_TRACING_TARGETS: [&str; 1] = ["tungstenite"];

/// Whether an event may be logged: anything but TRACE from [`BYTE_TRACING_TARGETS`].
/// Installed as a layer over the level filter, so no filter directive can turn it back on.
pub fn secret_free(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    let byte_tracing = BYTE_TRACING_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    !(byte_tracing && *metadata.level() == Level::TRACE)
}

/// Formats each event as one JSON line.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut line = Map::new();
        line.insert("ts_ms".into(), Value::from(ts_ms));
        line.insert("level".into(), Value::from(event.metadata().level().as_str()));
        line.insert("target".into(), Value::from(event.metadata().target()));
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        line.extend(fields.0);
        writeln!(w, "{}", Value::Object(line))
    }
}
