use omnichat_tests::{Db, spawn_app};
use reqwest::{Method, StatusCode};

use super::on_both_databases;

on_both_databases!(
    health_reports_the_database,
    responses_carry_security_headers_and_request_ids,
    the_openapi_document_lists_the_routes
);

async fn health_reports_the_database(db: Db) {
    let app = spawn_app(db).await;
    let up = app.request(Method::GET, "/health", None, None).await;
    assert_eq!(up.status, StatusCode::OK);
    assert_eq!(up.body["status"], "ok");
    assert_eq!(up.body["db"], "up");
    assert!(up.body["uptime"].is_u64());
    assert!(up.body["timestamp"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()));

    app.state.store.close().await;
    let down = app.request(Method::GET, "/health", None, None).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.body["db"], "down");
}

async fn responses_carry_security_headers_and_request_ids(db: Db) {
    let app = spawn_app(db).await;
    let reply = app.request(Method::GET, "/health", None, None).await;
    for (name, value) in [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"), ("referrer-policy", "no-referrer")]
    {
        assert_eq!(reply.headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}");
    }
    assert!(reply.headers.contains_key("x-request-id"));
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/api/channels"))
        .header("origin", "https://inbox.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.headers().contains_key("access-control-allow-origin"), "CORS answers preflights");
}

async fn the_openapi_document_lists_the_routes(db: Db) {
    let app = spawn_app(db).await;
    let doc = app.request(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for (path, method) in [
        ("/health", "get"),
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/me", "get"),
        ("/api/users", "get"),
        ("/api/users", "post"),
        ("/api/users/{id}", "patch"),
        ("/api/users/{id}", "delete"),
        ("/api/channels", "get"),
        ("/api/channels", "post"),
        ("/api/channels/{id}", "get"),
        ("/api/channels/{id}", "patch"),
        ("/api/channels/{id}", "delete"),
        ("/api/conversations", "get"),
        ("/api/conversations/{id}", "patch"),
        ("/api/conversations/{id}/messages", "get"),
        ("/api/customers", "get"),
        ("/api/customers/{id}", "get"),
        ("/api/messages/send", "post"),
        ("/api/queue", "get"),
        ("/api/queue/{id}/retry", "post"),
        ("/api/telegram/bot/webhook/{channelInstanceId}", "post"),
        ("/api/facebook/webhook", "get"),
        ("/api/facebook/webhook", "post"),
        ("/api/telegram/user/start", "post"),
        ("/api/telegram/user/confirm", "post"),
        ("/api/telegram/user/logout", "post"),
        ("/api/channels/{id}/connect", "post"),
        ("/api/channels/{id}/disconnect", "post"),
        ("/api/channels/{id}/whatsapp/qr", "get"),
        ("/api/channels/{id}/whatsapp/pair-code", "post"),
        ("/api/messages/{id}/media", "get"),
    ] {
        assert!(doc.body["paths"][path][method].is_object(), "{method} {path} missing from the OpenAPI document");
    }
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
}
