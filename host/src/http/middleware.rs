//! Cross-cutting layers: security headers, CORS, body limit, request ids, tracing, panics.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layers of every route. `visitor_api` (`/api/widget/...`) is dispatched to before the
/// host's CORS layer: the visitor transport answers CORS per channel itself.
pub fn apply(router: Router, visitor_api: Router, config: &Config) -> Router {
    let security_headers = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=15552000; includeSubDomains"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
    ];
    let visitor_api = visitor_api
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::from_fn(crate::http::metrics::track_http));
    let mut router = router
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(axum::middleware::from_fn(crate::http::metrics::track_http))
        .layer(cors(config))
        .layer(axum::middleware::from_fn(move |request: Request<Body>, next: axum::middleware::Next| {
            let visitor_api = visitor_api.clone();
            async move {
                if request.uri().path().starts_with("/api/widget/") {
                    use tower::ServiceExt;
                    match visitor_api.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                } else {
                    next.run(request).await
                }
            }
        }))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("handler panicked").into_response()))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
            let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
            let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("http", method = %request.method(), route, request_id, tenant.id = tracing::field::Empty)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid));
    for (name, value) in security_headers {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    router
}

fn cors(config: &Config) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .max_age(Duration::from_secs(600));
    if config.cors_origins.is_empty() {
        layer.allow_origin(Any).allow_headers(Any)
    } else {
        let origins = config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok());
        layer
            .allow_origin(AllowOrigin::list(origins))
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("idempotency-key")])
            .allow_credentials(true)
    }
}

pub async fn not_found() -> Response {
    ApiError::not_found("route").into_response()
}

pub async fn method_not_allowed() -> Response {
    ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
        .into_response()
}
