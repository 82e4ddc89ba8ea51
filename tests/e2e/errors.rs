//! Malformed requests get JSON errors with the right 4xx, never a 500 or a panic.

use omnichat_tests::{Db, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::on_both_databases;

on_both_databases!(malformed_requests_get_json_errors_with_the_right_status);

async fn malformed_requests_get_json_errors_with_the_right_status(db: Db) {
    // A small limit, so the oversized body below still fits the socket buffers: the server answers
    // 413 without reading it, and a body the client is still writing would be cut off instead.
    let app = spawn_app_with(db, |config| config.body_limit = 64 * 1024).await;
    let owner = app.register("errors@shop.io").await;

    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut request = app.client.post(app.url("/api/auth/register")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    let cases = [
        (raw("{\"email\": ", Some("application/json")).await, StatusCode::BAD_REQUEST, "invalid_json"),
        (raw("{\"email\": \"x@y.io\"}", Some("application/json")).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (
            raw("{\"email\": 5, \"password\": \"longenough\"}", Some("application/json")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            raw("{\"email\": \"x@y.io\", \"password\": \"longenough\"}", None).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (response, status, code) in cases {
        let response = response.expect("sent");
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let weak = app.post("/api/auth/register", None, json!({"email": "weak@shop.io", "password": "short"})).await;
    assert_eq!((weak.status, weak.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let not_email = app.post("/api/auth/register", None, json!({"email": "not-an-email", "password": "longenough"})).await;
    assert_eq!(not_email.status, StatusCode::UNPROCESSABLE_ENTITY);

    let too_big = "x".repeat(100 * 1024);
    let huge = app.post("/api/auth/login", None, json!({"email": "a@b.io", "password": too_big})).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);

    let route = app.get("/api/nothing-here", &owner.access_token).await;
    assert_eq!((route.status, route.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let method = app.request(reqwest::Method::PUT, "/api/auth/me", Some(&owner.access_token), None).await;
    assert_eq!((method.status, method.error_code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let bad_id = app.get("/api/users/123", &owner.access_token).await;
    assert_eq!((bad_id.status, bad_id.error_code()), (StatusCode::BAD_REQUEST, "invalid_id"));

    // The server is still healthy after all of it.
    assert_eq!(app.request(reqwest::Method::GET, "/health", None, None).await.status, StatusCode::OK);
}
