//! Prometheus metrics at `GET /metrics` (text exposition), guarded by `OMNICHAT_METRICS_TOKEN` as
//! a bearer token when it is set.
//!
//! Counters and histograms are recorded where things happen, through the `metrics` facade; the
//! gauges that describe state (queue depth, sockets, bridge sessions) are read when scraped. One
//! recorder serves the process.

use std::sync::OnceLock;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, Request, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiErrorBody};
use crate::state::AppState;

/// Latency buckets (seconds) of every `*_seconds` histogram.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics shows only the scraped gauges");
        }
        describe();
        // Histogram samples wait in buckets until a scrape drains them; without scrapes they
        // would only grow.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let upkeep = handle.clone();
            runtime.spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    every.tick().await;
                    upkeep.run_upkeep();
                }
            });
        }
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("omnichat_http_requests_total", "HTTP requests answered, by matched route, method and status.");
    describe_histogram!("omnichat_http_request_duration_seconds", "HTTP request latency, by matched route and method.");
    describe_counter!("omnichat_inbound_messages_total", "Inbound messages, by channel type and result (stored, duplicate).");
    describe_gauge!("omnichat_queue_jobs", "Outbound queue jobs, by status.");
    describe_gauge!("omnichat_queue_oldest_due_age_seconds", "How long the oldest due PENDING job has waited.");
    describe_counter!(
        "omnichat_outbound_deliveries_total",
        "Outbound delivery attempts, by channel type and outcome (sent, retry, dead)."
    );
    describe_counter!("omnichat_plugin_calls_total", "Plugin calls, by plugin, function and outcome (ok, error).");
    describe_histogram!("omnichat_plugin_call_duration_seconds", "Plugin call latency, by plugin and function.");
    describe_gauge!("omnichat_socketio_connections", "Socket.IO connections to this process, by namespace.");
    describe_gauge!("omnichat_bridge_sessions", "Native bridge sessions in this process, by bridge and state.");
    describe_counter!("omnichat_webhook_deliveries_total", "Outgoing webhook attempts, by outcome (delivered, retry, dead).");
    describe_counter!("omnichat_agent_runs_total", "AI agent runs, by outcome.");
}

/// Counts and times each request by its matched route (never the raw path: ids would explode the
/// label set), e.g. `route="/api/conversations/:id"`.
pub async fn track_http(request: Request<Body>, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |path| route_label(path.as_str()));
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("omnichat_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("omnichat_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A route as a label: `/api/conversations/{id}` reads `/api/conversations/:id` (braces inside
/// label values trip some exposition-format parsers).
fn route_label(path: &str) -> String {
    path.replace('{', ":").replace('}', "")
}

/// Prometheus text exposition of this process's metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain",
            body = String, example = "# TYPE omnichat_inbound_messages_total counter\nomnichat_inbound_messages_total{channel_type=\"TELEGRAM_BOT\",result=\"stored\"} 42\n"),
        (status = 401, body = ApiErrorBody, description = "OMNICHAT_METRICS_TOKEN is set and the bearer token is not it")))]
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
            return ApiError::unauthorized("a valid metrics token is required").into_response();
        }
    }
    let handle = handle();
    refresh_gauges(&state).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}

/// The gauges read at scrape time.
async fn refresh_gauges(state: &AppState) {
    match state.store.queue_stats().await {
        Ok(stats) => {
            for status in crate::store::QueueStatus::ALL {
                let count = stats.by_status.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                metrics::gauge!("omnichat_queue_jobs", "status" => status.as_str()).set(count as f64);
            }
            let age = stats.oldest_due.map_or(0.0, |due| (chrono::Utc::now() - due).as_seconds_f64().max(0.0));
            metrics::gauge!("omnichat_queue_oldest_due_age_seconds").set(age);
        }
        Err(err) => tracing::warn!(error = %err, "metrics: cannot read the queue's depth"),
    }
    for (namespace, count) in state.realtime.connection_counts() {
        metrics::gauge!("omnichat_socketio_connections", "namespace" => namespace).set(count as f64);
    }
    let telegram = state.telegram.session_counts().map(|(s, n)| ("TELEGRAM_USER", s, n));
    let whatsapp = state.whatsapp.session_counts().map(|(s, n)| ("WHATSAPP", s, n));
    for (bridge, session_state, count) in telegram.into_iter().chain(whatsapp) {
        metrics::gauge!("omnichat_bridge_sessions", "bridge" => bridge, "state" => session_state).set(count as f64);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_labels_name_their_parameters_without_braces() {
        assert_eq!(
            super::route_label("/api/webhook-subscriptions/{id}/deliveries/{deliveryId}"),
            "/api/webhook-subscriptions/:id/deliveries/:deliveryId"
        );
    }
}
