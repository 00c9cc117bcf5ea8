//! The web chat page, served on the WebSocket listener with `hotline serve --web`: one
//! HTML file, one stylesheet, one icon and one script, all compiled into the binary. The script is the bundle of
//! `web/src` (the TypeScript client generated from the same schema, plus the page's own
//! code); `scripts/test-browser` rebuilds it and fails if the committed copy is stale.

use hotline_transport::http::StaticFile;

const INDEX_HTML: &[u8] = include_bytes!("../../web/index.html");
const APP_JS: &[u8] = include_bytes!("../../web/dist/app.js");
const APP_CSS: &[u8] = include_bytes!("../../web/app.css");
const FAVICON_SVG: &[u8] = include_bytes!("../../web/favicon.svg");

/// The file for a request path, if the page has one.
pub(crate) fn file(path: &str) -> Option<StaticFile> {
    match path {
        "/" | "/index.html" => Some(StaticFile {
            content_type: "text/html; charset=utf-8",
            body: INDEX_HTML,
        }),
        "/app.js" => Some(StaticFile {
            content_type: "text/javascript; charset=utf-8",
            body: APP_JS,
        }),
        "/app.css" => Some(StaticFile {
            content_type: "text/css; charset=utf-8",
            body: APP_CSS,
        }),
        "/favicon.svg" => Some(StaticFile {
            content_type: "image/svg+xml",
            body: FAVICON_SVG,
        }),
        _ => None,
    }
}
