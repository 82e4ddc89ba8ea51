//! The visitor transport: how browser visitors reach a web channel (the website widget, or any
//! plugin granted `visitor_transport` in plugins.toml).
//!
//! The host does what is the same for every web channel: it checks the page's origin against
//! the channel's `allowedOrigins`, issues and checks visitor tokens (their own JWT audience,
//! bound to the channel), rate-limits per visitor and per address, stores uploads, and carries
//! events over the `/widget` Socket.IO namespace. What a visitor may say and who a visitor is
//! are the channel adapter's: each request goes to its `receive` with the visitor the host
//! vouches for, and visitor messages then take the same `handle_inbound_message` path as every
//! channel's.
//!
//! Routes (under `/api/widget/{channelInstanceId}`): `POST sessions`, `GET|POST messages`,
//! `POST attachments`, `GET attachments/{token}`, `POST typing`, `POST read`; and the embeddable
//! script at `/widget.js` with a demo page at `/widget/demo`.

pub mod assets;
pub mod handlers;
pub mod origin;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::auth::tokens::VisitorClaims;
use crate::channels::ChannelAdapter;
use crate::channels::adapter::WebhookMode;
use crate::config::VisitorConfig;
use crate::error::ApiError;
use crate::http::client::client_address;
use crate::http::extract::bearer_token;
use crate::http::rate::RateLimit;
use crate::state::AppState;
use crate::store::{Channel, ChannelStatus};

/// The per-process rate limits of the visitor API.
pub struct VisitorLimits {
    /// Messages and uploads, per visitor.
    pub messages: RateLimit,
    /// Typing signals, per visitor.
    pub typing: RateLimit,
    /// New and renewed sessions, per address.
    pub sessions: RateLimit,
    /// Every visitor request, per address.
    pub requests: RateLimit,
    /// Uploads, per address (each may be megabytes).
    pub uploads: RateLimit,
}

impl VisitorLimits {
    pub fn new(config: &VisitorConfig) -> Self {
        Self {
            messages: RateLimit::per_minute(config.messages_per_minute, config.messages_per_minute.div_ceil(6).max(5)),
            typing: RateLimit::per_minute(60, 10),
            sessions: RateLimit::per_minute(config.sessions_per_minute, config.sessions_per_minute.div_ceil(3).max(3)),
            requests: RateLimit::per_minute(config.requests_per_minute, config.requests_per_minute.div_ceil(6).max(10)),
            uploads: RateLimit::per_minute(config.messages_per_minute.div_ceil(2), 10),
        }
    }
}

/// A 429 with `Retry-After` when `limit` has nothing left for `key`.
pub fn limited(limit: &RateLimit, key: &str, what: &str) -> Result<(), ApiError> {
    limit.check(key).map_err(|wait| {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        ApiError::too_many_requests(format!("too many {what}: retry in {secs} s"), secs)
    })
}

/// The web channel a visitor request is for, checked by [`guard`]: it exists, its adapter serves
/// visitors, it is switched on, and the page's origin may use it.
#[derive(Clone)]
pub struct VisitorChannel {
    pub channel: Channel,
    pub adapter: Arc<dyn ChannelAdapter>,
    pub origin: String,
    /// The client's address (for per-address limits).
    pub client: String,
}

/// A visitor request's token, checked against its channel.
pub struct VisitorAuth(pub VisitorClaims);

impl FromRequestParts<AppState> for VisitorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let channel =
            parts.extensions.get::<VisitorChannel>().ok_or_else(|| ApiError::internal("visitor route without its guard"))?;
        let token =
            bearer_token(parts).ok_or_else(|| ApiError::unauthorized("a visitor token is required (Authorization: Bearer)"))?;
        let claims = state
            .tokens
            .verify_visitor(token, Some(channel.channel.id), Duration::ZERO)
            .map_err(|_| ApiError::unauthorized("invalid or expired visitor token: open a new session"))?;
        Ok(Self(claims))
    }
}

/// The middleware of every visitor route: resolves the channel, answers CORS preflights,
/// refuses pages whose origin the channel does not allow (403), applies the per-address limit,
/// and lets the browser read the answer (`Access-Control-Allow-Origin`). Uploaded files are the
/// exception: images load in `<img>`, without an origin, and their unguessable token is the check.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr);
    let client = client_address(request.headers(), peer, state.config.visitors.trust_forwarded_for);
    if request.method() == Method::GET && request.uri().path().split('/').nth(4) == Some("attachments") {
        return match limited(&state.visitor_limits.requests, &client, "requests from this address") {
            Ok(()) => next.run(request).await,
            Err(err) => err.into_response(),
        };
    }
    let requested_origin = request.headers().get(header::ORIGIN).cloned();
    if request.method() == Method::OPTIONS {
        // Preflights pass for any origin: the request itself is refused with a readable 403,
        // which the widget can tell from a network failure.
        return with_cors(StatusCode::NO_CONTENT.into_response(), requested_origin.as_ref(), true);
    }
    let resolved = resolve(&state, request.uri().path(), request.headers(), &client).await;
    let response = match resolved {
        Ok(channel) => {
            request.extensions_mut().insert(channel);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    };
    with_cors(response, requested_origin.as_ref(), false)
}

async fn resolve(state: &AppState, path: &str, headers: &HeaderMap, client: &str) -> Result<VisitorChannel, ApiError> {
    limited(&state.visitor_limits.requests, client, "requests from this address")?;
    let channel_id = path
        .strip_prefix("/api/widget/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| id.parse::<Uuid>().ok())
        .ok_or_else(|| ApiError::not_found("widget"))?;
    let channel = state.store.find_channel(channel_id).await?.ok_or_else(|| ApiError::not_found("widget"))?;
    let adapter = state
        .channels
        .get(&channel.channel_type)
        .filter(|a| a.info().webhook.as_ref().is_some_and(|w| w.mode == WebhookMode::Visitor))
        .ok_or_else(|| ApiError::not_found("widget"))?;
    if switched_off(&channel) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "widget_unavailable", "this widget is switched off"));
    }
    let origin =
        origin::permitted(headers, &channel.config.0, state.config.public_url.as_deref()).map_err(|refusal| match refusal {
            origin::OriginRefusal::Missing => {
                ApiError::new(StatusCode::FORBIDDEN, "origin_required", "visitor requests come from a web page (Origin)")
            }
            origin::OriginRefusal::NotAllowed(origin) => {
                tracing::info!(channel.id = %channel.id, origin, "visitor request from an origin the widget does not allow");
                ApiError::new(StatusCode::FORBIDDEN, "origin_not_allowed", "this site may not use this widget (allowedOrigins)")
            }
        })?;
    Ok(VisitorChannel { channel, adapter, origin, client: client.to_owned() })
}

/// A web channel in ERROR (its config refused) or disconnected on purpose serves no visitor.
pub fn switched_off(channel: &Channel) -> bool {
    channel.status == ChannelStatus::Error || (channel.status == ChannelStatus::Disconnected && channel.status_reason.is_some())
}

fn with_cors(mut response: Response, origin: Option<&HeaderValue>, preflight: bool) -> Response {
    let headers = response.headers_mut();
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Retry-After"));
    if preflight {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    response
}
