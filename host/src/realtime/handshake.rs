//! The handshake request as a socket keeps it. engineioxide keeps each socket's handshake request
//! (`req_parts`) for the socket's whole life, and hyper's parsed URI and header values are slices
//! of its 8 KiB read buffer: an idle socket would hold that buffer, every header the client sent
//! and every extension the middleware added. Before the Socket.IO layer sees a GET under its path
//! (a websocket, or a polling handshake), the request is rebuilt from owned copies of what the
//! sockets read; hyper's buffer is then freed with its connection task. Measured in
//! BENCHMARKS.md (idle sockets).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};

/// What is read from a socket's handshake: the token (`authenticate`), the widget's origin check
/// (`visitors::authenticate`, `visitors::origin::permitted`), and the websocket key (engineioxide).
const KEPT: [HeaderName; 5] =
    [header::AUTHORIZATION, header::ORIGIN, header::HOST, HeaderName::from_static("sec-fetch-site"), header::SEC_WEBSOCKET_KEY];

/// The request rewriter for the Socket.IO path (`SOCKET_PATH`), for `tower::util::MapRequestLayer`.
pub fn compactor(socket_path: &str) -> impl Fn(Request<Body>) -> Request<Body> + Clone + Send + Sync + 'static {
    let path: Arc<str> = Arc::from(socket_path.trim_end_matches('/'));
    move |request| if is_socket_get(&request, &path) { compact(request) } else { request }
}

fn is_socket_get(request: &Request<Body>, path: &str) -> bool {
    request.method() == Method::GET
        && request.uri().path().strip_prefix(path).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn compact(request: Request<Body>) -> Request<Body> {
    let (mut parts, body) = request.into_parts();
    let kept: Vec<(HeaderName, HeaderValue)> = KEPT
        .into_iter()
        .filter_map(|name| {
            let value = HeaderValue::from_bytes(parts.headers.get(&name)?.as_bytes()).ok()?;
            Some((name, value))
        })
        .collect();
    // Sized for what the client sent (a browser's websocket sends three of the five), not five.
    let mut headers = HeaderMap::with_capacity(kept.len());
    headers.extend(kept);
    // Owned copies: `Uri`'s and `HeaderValue`'s own clones would share hyper's buffer.
    let uri = parts.uri.to_string().parse::<Uri>().unwrap_or_else(|_| parts.uri.clone());
    let mut compacted = Request::builder().method(Method::GET).uri(uri).version(parts.version).body(body).unwrap_or_default();
    *compacted.headers_mut() = headers;
    // The websocket upgrade is taken from the request's extensions (`hyper::upgrade::on`).
    if let Some(upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() {
        compacted.extensions_mut().insert(upgrade);
    }
    compacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_handshake_keeps_only_what_the_sockets_read() {
        let compact = compactor("/socket.io");
        let request = Request::get("/socket.io/?EIO=4&transport=websocket")
            .header("authorization", "Bearer t")
            .header("origin", "https://shop.example")
            .header("user-agent", "a browser")
            .header("cookie", "a=b")
            .header("sec-websocket-key", "k")
            .body(Body::empty())
            .expect("request");
        let kept = compact(request);
        assert_eq!(kept.uri(), "/socket.io/?EIO=4&transport=websocket");
        let names: Vec<_> = kept.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["authorization", "origin", "sec-websocket-key"]);
        assert_eq!(kept.headers()["authorization"], "Bearer t");
    }

    #[test]
    fn other_requests_pass_untouched() {
        let compact = compactor("/socket.io/");
        for (method, uri) in
            [(Method::GET, "/api/conversations"), (Method::POST, "/socket.io/?EIO=4"), (Method::GET, "/socket.iox")]
        {
            let request =
                Request::builder().method(method).uri(uri).header("user-agent", "x").body(Body::empty()).expect("request");
            assert_eq!(compact(request).headers().len(), 1, "{uri}");
        }
    }
}
