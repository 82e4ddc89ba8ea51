//! The web console: plain ES modules and CSS under `host/assets/console/`, built into the binary
//! (no front-end build, no Node.js to run it), served at `/` and `/console/...` under a strict
//! CSP. It speaks only the public REST API and Socket.IO.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};

use super::assets::StaticFile;
use crate::error::ApiError;
use crate::state::AppState;

/// Same-origin scripts, styles, API calls and sockets; images also from `blob:` (the QR code and
/// inbound media are fetched with the token and shown as blobs) and `data:`. Nothing inline.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
    media-src 'self' blob:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

const REVALIDATE: &str = "no-cache";

macro_rules! console_files {
    ($($name:literal => $type:literal),* $(,)?) => {
        /// Every file of `assets/console/` with its content type (a unit test keeps the two in step).
        static FILES: [(&str, StaticFile); [$($name),*].len()] = [
            $(($name, StaticFile::new($type, include_bytes!(concat!("../../assets/console/", $name)), REVALIDATE)),)*
        ];
    };
}

console_files! {
    "console.css" => "text/css; charset=utf-8",
    "icon.svg" => "image/svg+xml",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "live.js" => "text/javascript; charset=utf-8",
    "ui.js" => "text/javascript; charset=utf-8",
    "pages/auth.js" => "text/javascript; charset=utf-8",
    "pages/channels.js" => "text/javascript; charset=utf-8",
    "pages/inbox.js" => "text/javascript; charset=utf-8",
    "pages/users.js" => "text/javascript; charset=utf-8",
    "pages/agents.js" => "text/javascript; charset=utf-8",
    "pages/queue.js" => "text/javascript; charset=utf-8",
}

/// socket.io-client's browser bundle, the same vendored copy `/widget.js` wraps.
static SOCKET_IO: StaticFile =
    StaticFile::new("text/javascript; charset=utf-8", include_bytes!("../../assets/vendor/socket.io.min.js"), REVALIDATE);

const INDEX: &str = include_str!("../../assets/console/index.html");

fn page_headers() -> [(HeaderName, &'static str); 1] {
    [(header::CONTENT_SECURITY_POLICY, CSP)]
}

/// `GET /`: the console's page, told where Socket.IO lives (`SOCKET_PATH`) and where providers
/// reach the host (`OMNICHAT_PUBLIC_URL`, for the webhook URLs it shows).
pub async fn index(State(state): State<AppState>) -> Response {
    let page = INDEX
        .replace("{{SOCKET_PATH}}", &html_attribute(&state.config.socket_path))
        .replace("{{PUBLIC_URL}}", &html_attribute(state.config.public_url.as_deref().unwrap_or_default()));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, REVALIDATE),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        page,
    )
        .into_response()
}

/// `GET /console/{*path}`: a file of the console, or the JSON 404 of any unknown route.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path == "vendor/socket.io.min.js" {
        return SOCKET_IO.respond(&headers, &page_headers());
    }
    match FILES.iter().find(|(name, _)| *name == path) {
        Some((_, file)) => file.respond(&headers, &page_headers()),
        None => ApiError::not_found("route").into_response(),
    }
}

/// Escapes a value for a double-quoted HTML attribute.
fn html_attribute(value: &str) -> String {
    value.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to `assets/console/` and not to the table would be a 404 in the browser.
    #[test]
    fn every_console_file_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/console");
        let mut on_disk = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("assets/console") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    let name = path.strip_prefix(&root).expect("under root").to_string_lossy().replace('\\', "/");
                    if name != "index.html" {
                        on_disk.push(name);
                    }
                }
            }
        }
        on_disk.sort();
        let mut served: Vec<String> = FILES.iter().map(|(name, _)| (*name).to_owned()).collect();
        served.sort();
        assert_eq!(on_disk, served);
    }

    #[test]
    fn the_socket_path_cannot_break_out_of_its_attribute() {
        assert_eq!(html_attribute("/a\"><script>"), "/a&quot;&gt;&lt;script&gt;");
    }
}
