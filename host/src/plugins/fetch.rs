//! The guarded outbound HTTP of plugins: the only way out of the sandbox.
//!
//! A request is refused unless its host is granted to the plugin, it resolves only to public
//! addresses (unless `OMNICHAT_ALLOW_PRIVATE_FETCH=true`), and it finishes within the call's
//! deadline with a body under the size cap. Redirects are not followed (a redirect could leave the
//! grant). `{{secret:NAME}}` placeholders in the URL and header values are filled in here, so a
//! plugin never sees a secret.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use secrecy::{ExposeSecret, SecretString};

/// The largest response body a plugin may receive.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    Denied(String),
    InvalidRequest(String),
    Timeout,
    TooLarge,
    Failed(String),
}

pub struct FetchRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

pub struct FetchResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Secret configuration values of one channel, by name.
#[derive(Clone, Default)]
pub struct ChannelSecrets(HashMap<String, SecretString>);

impl ChannelSecrets {
    pub fn new(values: HashMap<String, SecretString>) -> Self {
        Self(values)
    }

    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0.get(name)
    }

    pub fn insert(&mut self, name: String, value: SecretString) {
        self.0.insert(name, value);
    }

    /// Adds `fallbacks` (a plugin's own secrets) under the names the channel does not set.
    pub fn with_fallbacks(mut self, fallbacks: &ChannelSecrets) -> Self {
        for (name, value) in &fallbacks.0 {
            self.0.entry(name.clone()).or_insert_with(|| value.clone());
        }
        self
    }

    /// `text` with every secret value (as is, and percent-encoded as a URL carries it) replaced
    /// by `[redacted]`: for any error text that may hold an expanded URL or header before it
    /// reaches a plugin, a log line, the database, an event or an API response.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in self.0.values() {
            let value = value.expose_secret();
            // Shorter values would redact ordinary words; no real credential is that short.
            if value.len() < 4 {
                continue;
            }
            let encoded = percent_encoding::utf8_percent_encode(value, URL_KEEP).to_string();
            for form in [value, encoded.as_str()] {
                if out.contains(form) {
                    out = out.replace(form, "[redacted]");
                }
            }
        }
        out
    }
}

impl FetchFailure {
    /// The failure with every secret of `secrets` scrubbed from its text.
    pub fn scrubbed(self, secrets: &ChannelSecrets) -> Self {
        match self {
            Self::Denied(why) => Self::Denied(secrets.scrub(&why)),
            Self::InvalidRequest(why) => Self::InvalidRequest(secrets.scrub(&why)),
            Self::Failed(why) => Self::Failed(secrets.scrub(&why)),
            other => other,
        }
    }
}

/// What a secret filled into a URL is not percent-encoded for.
const URL_KEEP: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b':');

/// A grant: `host`, `*.domain` or `host:port` (IPv6 literals in brackets: `[2001:db8::1]:8443`).
pub fn host_granted(grants: &[String], host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    grants.iter().any(|grant| {
        let grant = grant.trim().to_ascii_lowercase();
        let (pattern, grant_port) = match grant.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h.to_owned(), p.parse::<u16>().ok()),
            _ => (grant.clone(), None),
        };
        let pattern = pattern.trim_start_matches('[').trim_end_matches(']');
        let host_matches = match pattern.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == pattern,
        };
        host_matches && grant_port.is_none_or(|p| p == port)
    })
}

/// Where the guarded fetcher may go, before any plugin grant: an `http(s)` URL without
/// credentials in it (`user:pass@` would be stored and shown wherever the URL is), whose host is
/// not `localhost` nor, unless private fetches are allowed, a non-public address literal. Names
/// are checked again once resolved ([`GuardedResolver`]). The send API asks this at once, so a
/// reply with an unfetchable attachment is refused with a 422 instead of failing in the queue.
pub fn check_target(url: &reqwest::Url, allow_private: bool) -> Result<(), FetchFailure> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchFailure::InvalidRequest(format!("scheme {} is not http(s)", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchFailure::InvalidRequest("a URL must not carry credentials (user:password@)".into()));
    }
    let host = url.host_str().ok_or_else(|| FetchFailure::InvalidRequest("URL without host".into()))?;
    // The URL parser has already turned every IPv4 spelling (0x7f000001, 127.1) into dotted form.
    let Ok(host) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if !allow_private && (name == "localhost" || name.ends_with(".localhost")) {
            return Err(FetchFailure::Denied(format!("{name} is a private address")));
        }
        return Ok(());
    };
    if !allow_private && !is_public(host) {
        return Err(FetchFailure::Denied(format!("{host} is a private address")));
    }
    Ok(())
}

/// Addresses nobody may reach through the fetcher unless private fetches are allowed: loopback,
/// private, link-local, carrier-grade NAT, unique-local, site-local, unspecified, multicast,
/// documentation, discard, and IPv6 forms that embed a non-public IPv4 address (mapped,
/// compatible, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0))
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded = |high: u16, low: u16| std::net::Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
            if v6.is_loopback() || v6.is_unspecified() {
                return false;
            }
            // ::ffff:a.b.c.d and the deprecated ::a.b.c.d.
            if let Some(v4) = v6.to_ipv4() {
                return is_public(IpAddr::V4(v4));
            }
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public(IpAddr::V4(embedded(segments[6], segments[7])));
            }
            if segments[0] == 0x2002 {
                return is_public(IpAddr::V4(embedded(segments[1], segments[2])));
            }
            let first = segments[0];
            !(v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (first == 0x2001 && segments[1] == 0x0db8)
                || segments[..4] == [0x100, 0, 0, 0])
        }
    }
}

/// Resolves names and drops every non-public address, so DNS cannot point a granted name inward.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| is_public(a.ip())).collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

pub struct Fetcher {
    client: reqwest::Client,
    allow_private: bool,
}

/// reqwest is built without a default TLS crypto provider; ring is the one sqlx already uses.
/// Any HTTP client of the process needs it installed first.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Fetcher {
    pub fn new(allow_private: bool) -> anyhow::Result<Arc<Self>> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("omnichat/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(16);
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Arc::new(Self { client: builder.build()?, allow_private }))
    }

    /// The guarded HTTP client itself (no redirects; private addresses refused by its resolver
    /// unless allowed), for host clients such as the agents' model calls to tenants' URLs.
    pub fn http_client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// Whether private addresses may be fetched (`OMNICHAT_ALLOW_PRIVATE_FETCH`).
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Performs `request` by `deadline`, within `grants` (a plugin's allowed hosts; `None`: any
    /// public host, for URLs a user gave the host itself). Failure texts never hold a secret.
    pub async fn fetch(
        &self,
        request: FetchRequest,
        grants: Option<&[String]>,
        secrets: &ChannelSecrets,
        deadline: Instant,
    ) -> Result<FetchResponse, FetchFailure> {
        self.exchange(request, grants, secrets, deadline).await.map_err(|failure| failure.scrubbed(secrets))
    }

    async fn exchange(
        &self,
        request: FetchRequest,
        grants: Option<&[String]>,
        secrets: &ChannelSecrets,
        deadline: Instant,
    ) -> Result<FetchResponse, FetchFailure> {
        let url = fill_secrets(&request.url, secrets, true)?;
        let url = reqwest::Url::parse(&url).map_err(|e| FetchFailure::InvalidRequest(format!("bad URL: {e}")))?;
        check_target(&url, self.allow_private)?;
        let host = url.host_str().ok_or_else(|| FetchFailure::InvalidRequest("URL without host".into()))?;
        let port = url.port_or_known_default().unwrap_or(443);
        if let Some(grants) = grants
            && !host_granted(grants, host, port)
        {
            return Err(FetchFailure::Denied(format!("{host} is not in the plugin's allowed_hosts")));
        }
        let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| FetchFailure::InvalidRequest(format!("bad method {}", request.method)))?;
        let mut builder = self.client.request(method, url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), fill_secrets(value, secrets, false)?);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let exchange = async {
            let mut response = builder.send().await.map_err(|e| describe_error(&e))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            if response.content_length().is_some_and(|len| len > MAX_RESPONSE_BYTES as u64) {
                return Err(FetchFailure::TooLarge);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| describe_error(&e))? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(FetchFailure::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(FetchResponse { status, headers, body })
        };
        tokio::time::timeout(remaining, exchange).await.unwrap_or(Err(FetchFailure::Timeout))
    }
}

fn describe_error(err: &reqwest::Error) -> FetchFailure {
    if err.is_timeout() {
        return FetchFailure::Timeout;
    }
    // The resolver's refusal surfaces as a connect error; say so plainly.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    if text.contains("no public address") { FetchFailure::Denied(text) } else { FetchFailure::Failed(text) }
}

/// Replaces `{{secret:NAME}}` with the channel's secret, percent-encoded inside URLs.
fn fill_secrets(text: &str, secrets: &ChannelSecrets, in_url: bool) -> Result<String, FetchFailure> {
    const OPEN: &str = "{{secret:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after.find("}}").ok_or_else(|| FetchFailure::InvalidRequest("unclosed {{secret:".into()))?;
        let name = &after[..end];
        let value = secrets.get(name).ok_or_else(|| FetchFailure::InvalidRequest(format!("the channel has no secret {name}")))?;
        if in_url {
            out.extend(percent_encoding::utf8_percent_encode(value.expose_secret(), URL_KEEP));
        } else {
            out.push_str(value.expose_secret());
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_hosts_wildcards_and_ports() {
        let grants = vec!["api.telegram.org".to_owned(), "*.fbcdn.net".to_owned(), "127.0.0.1:8080".to_owned()];
        assert!(host_granted(&grants, "api.telegram.org", 443));
        assert!(host_granted(&grants, "API.Telegram.org.", 443));
        assert!(host_granted(&grants, "scontent.xx.fbcdn.net", 443));
        assert!(!host_granted(&grants, "fbcdn.net.evil.com", 443));
        assert!(!host_granted(&grants, "evil.example", 443));
        assert!(host_granted(&grants, "127.0.0.1", 8080));
        assert!(!host_granted(&grants, "127.0.0.1", 8081));
        let v6 = vec!["[2a03:2880:f12f:83:face:b00c:0:25de]".to_owned(), "[2001:4860::8888]:8443".to_owned()];
        assert!(host_granted(&v6, "[2a03:2880:f12f:83:face:b00c:0:25de]", 443), "a bracketed literal as a URL carries it");
        assert!(host_granted(&v6, "[2001:4860::8888]", 8443));
        assert!(!host_granted(&v6, "[2001:4860::8888]", 443));
    }

    #[test]
    fn targets_with_credentials_or_private_hosts_are_refused_early() {
        let check = |url: &str, allow_private: bool| check_target(&reqwest::Url::parse(url).expect("url"), allow_private);
        for refused in [
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:8080/x",
            "http://10.0.0.5/x",
            "http://[::1]/x",
            "http://[fe80::1]/x",
            "http://[::ffff:10.0.0.1]/x",
            "http://localhost/x",
            "http://api.localhost/x",
            "http://0x7f000001/x",
        ] {
            assert!(
                matches!(check(refused, false), Err(FetchFailure::Denied(ref why)) if why.contains("private address")),
                "{refused}"
            );
            assert!(check(refused, true).is_ok(), "{refused} with private fetches allowed");
        }
        assert!(matches!(check("https://user:pass@example.com/a.png", true), Err(FetchFailure::InvalidRequest(_))));
        assert!(matches!(check("ftp://example.com/a.png", false), Err(FetchFailure::InvalidRequest(_))));
        for allowed in ["https://example.com/a.png", "http://[2a03:2880:f12f:83:face:b00c:0:25de]/a.png", "http://8.8.8.8/"] {
            assert!(check(allowed, false).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
            "2001:db8::1",
            "fec0::1",
            "100::1",
            "ff02::1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in
            ["149.154.167.220", "31.13.64.35", "2a03:2880:f12f:83:face:b00c:0:25de", "2001:4860:4860::8888", "64:ff9b::808:808"]
        {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn secrets_fill_placeholders_and_unknown_ones_are_refused() {
        let secrets = ChannelSecrets::new(HashMap::from([("botToken".to_owned(), SecretString::from("123:A B/c"))]));
        assert_eq!(
            fill_secrets("https://x/bot{{secret:botToken}}/send", &secrets, true).ok().as_deref(),
            Some("https://x/bot123:A%20B%2Fc/send")
        );
        assert_eq!(fill_secrets("Bearer {{secret:botToken}}", &secrets, false).ok().as_deref(), Some("Bearer 123:A B/c"));
        assert!(matches!(fill_secrets("{{secret:other}}", &secrets, true), Err(FetchFailure::InvalidRequest(_))));
    }

    #[test]
    fn scrubbing_removes_secrets_as_is_and_url_encoded() {
        let secrets = ChannelSecrets::new(HashMap::from([("botToken".to_owned(), SecretString::from("123:A B/c"))]));
        let text = "error sending request for url (https://x/bot123:A%20B%2Fc/send), token 123:A B/c";
        let scrubbed = secrets.scrub(text);
        assert_eq!(scrubbed, "error sending request for url (https://x/bot[redacted]/send), token [redacted]");
    }
}
