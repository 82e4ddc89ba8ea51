//! The embeddable script and the demo page, embedded in the binary: `/widget.js` is the vendored
//! socket.io-client bundle and the widget, wrapped in one function so neither leaks a global
//! into the host page; `/widget/demo?channel=ID` embeds it the way a site does.

use axum::extract::Query;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::assets::StaticFile;

/// The served script: `io` is a local of the wrapper (the bundle's UMD header sees a CommonJS
/// `module`), and the widget finds its own `<script>` while the wrapper runs.
pub const WIDGET_JS: &str = concat!(
    "(function(){var module={exports:{}},exports=module.exports,define;\n",
    include_str!("../../assets/vendor/socket.io.min.js"),
    "\n;var io=module.exports;\n",
    include_str!("../../assets/widget/widget.js"),
    "\n})();\n"
);
const DEMO_HTML: &str = include_str!("../../assets/widget/demo.html");
const DEMO_CSS: &str = include_str!("../../assets/widget/demo.css");

static SCRIPT: StaticFile = StaticFile::new("text/javascript; charset=utf-8", WIDGET_JS.as_bytes(), "public, max-age=300");

/// The gzipped size of `/widget.js`, for the size budget (40 KB).
pub fn gzipped_script_len() -> usize {
    SCRIPT.gzipped_len()
}

/// `GET /widget.js`: loadable from any site (`Cross-Origin-Resource-Policy: cross-origin`), gzipped
/// when the browser takes it, revalidated by ETag.
pub async fn script(headers: HeaderMap) -> Response {
    SCRIPT.respond(&headers, &[(header::HeaderName::from_static("cross-origin-resource-policy"), "cross-origin")])
}

#[derive(Debug, Deserialize)]
pub struct DemoParams {
    pub channel: Option<String>,
}

/// A strict CSP, the one a careful site would have: the widget needs nothing more.
const DEMO_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob: https: http:; \
    style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /widget/demo?channel=ID`: a page that embeds the channel's widget with the one script tag.
pub async fn demo(Query(params): Query<DemoParams>) -> Response {
    let Some(channel) = params.channel.as_deref().and_then(|c| c.trim().parse::<Uuid>().ok()) else {
        return ApiError::validation("channel: the widget's channel instance id is required (?channel=...)").into_response();
    };
    let page = DEMO_HTML.replace("{{CHANNEL_ID}}", &channel.to_string());
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, DEMO_CSP)], page).into_response()
}

pub async fn demo_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], DEMO_CSS)
        .into_response()
}
