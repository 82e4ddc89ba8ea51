//! Who is calling, by network address: the key of per-client limits (visitor requests, logins).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::state::AppState;

/// The peer's address, or the last `X-Forwarded-For` hop when a trusted proxy sets it
/// (`OMNICHAT_TRUST_FORWARDED_FOR`). An IPv6 client is its /64: one host holds a whole /64 to
/// pick addresses from.
pub fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>, trust_forwarded_for: bool) -> String {
    let key = |ip: IpAddr| match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        IpAddr::V4(v4) => v4.to_string(),
    };
    if trust_forwarded_for
        && let Some(hop) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return key(hop);
    }
    peer.map(|addr| key(addr.ip())).unwrap_or_else(|| "unknown".into())
}

/// The caller's [`client_address`], as an extractor.
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr);
        Ok(Self(client_address(&parts.headers, peer, state.config.visitors.trust_forwarded_for)))
    }
}
