//! Files built into the binary and served as they are: gzipped once when a browser takes gzip,
//! revalidated by ETag. The widget's script and the console's files are served through this.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file. Its gzip and ETag are computed on first use.
pub struct StaticFile {
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    cache_control: &'static str,
    derived: OnceLock<Derived>,
}

struct Derived {
    /// Shared by every answer (a clone is a reference count, not a copy).
    gzipped: Bytes,
    etag: HeaderValue,
}

impl StaticFile {
    /// `cache_control` is sent as is (`no-cache` makes the browser revalidate by ETag each time).
    pub const fn new(content_type: &'static str, bytes: &'static [u8], cache_control: &'static str) -> Self {
        Self { content_type, bytes, cache_control, derived: OnceLock::new() }
    }

    fn derived(&self) -> &Derived {
        self.derived.get_or_init(|| {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let gzipped = gz.write_all(self.bytes).and_then(|()| gz.finish()).unwrap_or_default();
            let digest = Sha256::digest(self.bytes);
            let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12]))).expect("hex is a valid header");
            Derived { gzipped: Bytes::from(gzipped), etag }
        })
    }

    /// The gzipped size (what a browser downloads).
    pub fn gzipped_len(&self) -> usize {
        self.derived().gzipped.len()
    }

    /// The file, its gzip when the request accepts it, or 304 when the request's ETag matches.
    /// `extra` headers go on every answer.
    pub fn respond(&self, request: &HeaderMap, extra: &[(HeaderName, &'static str)]) -> Response {
        let derived = self.derived();
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(self.cache_control));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        headers.insert(header::ETAG, derived.etag.clone());
        for (name, value) in extra {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
        let etag = derived.etag.to_str().unwrap_or_default();
        let matches = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        if matches {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        if accepts_gzip(request) && !derived.gzipped.is_empty() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            (headers, derived.gzipped.clone()).into_response()
        } else {
            (headers, self.bytes).into_response()
        }
    }
}

fn accepts_gzip(request: &HeaderMap) -> bool {
    request.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused =
                parts.any(|p| p.trim().replace(' ', "").trim_start_matches("q=").parse::<f32>().is_ok_and(|q| q == 0.0));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip, deflate, br")])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "br;q=1.0, GZIP;q=0.5")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn an_etag_that_matches_is_a_304() {
        static FILE: StaticFile = StaticFile::new("text/plain", b"hello hello hello hello", "no-cache");
        let first = FILE.respond(&headers(&[("accept-encoding", "gzip")]), &[]);
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CONTENT_ENCODING], "gzip");
        let etag = first.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(FILE.respond(&again, &[]).status(), StatusCode::NOT_MODIFIED);
    }
}
