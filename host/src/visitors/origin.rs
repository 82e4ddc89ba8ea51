//! Which pages may talk to a web channel: the browser's `Origin` against the channel's
//! `allowedOrigins` (exact origins, or `https://*.example.com` for any subdomain), plus the
//! host's own pages (the demo page).

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use serde_json::Value;

/// The channel's `allowedOrigins`: a list, or one comma-separated string.
pub fn allowed_origins(config: &Value) -> Vec<String> {
    let normalize = |o: &str| o.trim().trim_end_matches('/').to_ascii_lowercase();
    match &config["allowedOrigins"] {
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(normalize).filter(|o| !o.is_empty()).collect(),
        Value::String(list) => list.split(',').map(normalize).filter(|o| !o.is_empty()).collect(),
        _ => Vec::new(),
    }
}

/// Whether `origin` matches one of `allowed` (already normalized).
pub fn matches(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    allowed.iter().any(|pattern| {
        if *pattern == origin {
            return true;
        }
        let Some((p_scheme, p_authority)) = pattern.split_once("://") else { return false };
        // `*.example.com`; never `*.com` (every site).
        let Some(suffix) = p_authority.strip_prefix("*.").filter(|suffix| suffix.contains('.')) else { return false };
        // `*.example.com` is any subdomain, never `example.com` itself nor `badexample.com`.
        p_scheme == scheme
            && authority.len() > suffix.len() + 1
            && authority.ends_with(suffix)
            && authority.as_bytes()[authority.len() - suffix.len() - 1] == b'.'
    })
}

/// The request's `Origin` when the page may use the channel: one of its allowed origins, or the
/// host's own (same authority as the request's `Host`, or the public URL's). Browsers send no
/// `Origin` on a same-origin GET; they say `Sec-Fetch-Site: same-origin` instead.
pub fn permitted(headers: &HeaderMap, config: &Value, public_url: Option<&str>) -> Result<String, OriginRefusal> {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        let same_origin = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"same-origin");
        return if same_origin { Ok("same-origin".to_owned()) } else { Err(OriginRefusal::Missing) };
    };
    if origin == "null" {
        return Err(OriginRefusal::NotAllowed(origin.to_owned()));
    }
    let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or_default();
    let own_host = headers.get(HOST).and_then(|v| v.to_str().ok()).is_some_and(|host| host.eq_ignore_ascii_case(authority));
    let public = public_url.is_some_and(|url| url.trim_end_matches('/').eq_ignore_ascii_case(origin));
    if own_host || public || matches(origin, &allowed_origins(config)) {
        Ok(origin.to_owned())
    } else {
        Err(OriginRefusal::NotAllowed(origin.to_owned()))
    }
}

#[derive(Debug)]
pub enum OriginRefusal {
    Missing,
    NotAllowed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_and_wildcard_origins_match_and_look_alikes_do_not() {
        let allowed = allowed_origins(&json!({"allowedOrigins": ["https://shop.example.com/", "https://*.example.org"]}));
        assert!(matches("https://shop.example.com", &allowed));
        assert!(matches("HTTPS://Shop.Example.com", &allowed));
        assert!(!matches("http://shop.example.com", &allowed), "another scheme");
        assert!(!matches("https://shop.example.com.evil.io", &allowed));
        assert!(matches("https://a.example.org", &allowed));
        assert!(matches("https://a.b.example.org", &allowed));
        assert!(!matches("https://example.org", &allowed), "the wildcard is for subdomains");
        assert!(!matches("https://badexample.org", &allowed));
        assert!(!matches("https://a.example.org:8443", &allowed), "another port");
        assert!(
            !matches("https://evil.com", &allowed_origins(&json!({"allowedOrigins": ["https://*.com"]}))),
            "a wildcard over a TLD"
        );
    }

    #[test]
    fn the_hosts_own_pages_may_always_use_it() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "chat.example.net:3001".parse().expect("header"));
        headers.insert(ORIGIN, "http://chat.example.net:3001".parse().expect("header"));
        assert!(permitted(&headers, &json!({}), None).is_ok());
        headers.insert(ORIGIN, "https://elsewhere.io".parse().expect("header"));
        assert!(matches!(permitted(&headers, &json!({}), None), Err(OriginRefusal::NotAllowed(_))));
        headers.remove(ORIGIN);
        assert!(matches!(permitted(&headers, &json!({}), None), Err(OriginRefusal::Missing)));
        headers.insert("sec-fetch-site", "same-origin".parse().expect("header"));
        assert!(permitted(&headers, &json!({}), None).is_ok(), "a same-origin GET carries no Origin");
    }
}
