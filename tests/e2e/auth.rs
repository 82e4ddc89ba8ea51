use omnichat_tests::{Db, PASSWORD, Session, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

use super::on_both_databases;

on_both_databases!(
    registering_creates_a_tenant_and_its_owner,
    a_registered_email_cannot_register_again,
    login_accepts_the_right_password_only,
    repeated_failed_logins_lock_the_account,
    refresh_rotates_and_a_reused_token_revokes_its_family,
    access_and_refresh_tokens_are_not_interchangeable,
    logout_ends_the_login,
);

async fn registering_creates_a_tenant_and_its_owner(db: Db) {
    let app = spawn_app(db).await;
    let reply = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "Ann@Example.com", "password": PASSWORD, "name": "Ann", "tenantName": "Ann's Shop"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["user"]["role"], "owner");
    assert_eq!(body["tenant"]["name"], "Ann's Shop");
    assert_eq!(body["user"]["tenantId"], body["tenant"]["id"]);
    let text = body.to_string();
    assert!(!text.contains("passwordHash") && !text.contains("argon2"), "no hash leaves the server: {text}");

    let session = Session::from_auth(body);
    let me = app.get("/api/auth/me", &session.access_token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["tenantId"], session.tenant_id.as_str());
    assert_eq!(me.body["user"]["id"], session.user_id.as_str());
    assert!(!me.body.to_string().contains("argon2"));
}

async fn a_registered_email_cannot_register_again(db: Db) {
    let app = spawn_app(db).await;
    app.register("bob@example.com").await;
    let again = app.post("/api/auth/register", None, json!({"email": "BOB@example.com ", "password": PASSWORD})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "conflict");
}

async fn login_accepts_the_right_password_only(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("carol@example.com").await;

    let ok = app.login("Carol@Example.com", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["user"]["id"], owner.user_id.as_str());
    assert_eq!(ok.body["tenant"]["id"], owner.tenant_id.as_str());

    let wrong = app.login("carol@example.com", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error_code(), "unauthorized");
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.body["error"]["message"], wrong.body["error"]["message"], "no hint which part was wrong");
}

async fn repeated_failed_logins_lock_the_account(db: Db) {
    let app = spawn_app(db).await;
    app.register("dave@example.com").await;
    app.register("erin@example.com").await;
    for attempt in 1..=4 {
        let reply = app.login("dave@example.com", "guess").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let locked = app.login("dave@example.com", "guess").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = locked.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");

    let right_password = app.login("dave@example.com", PASSWORD).await;
    assert_eq!(right_password.status, StatusCode::TOO_MANY_REQUESTS, "locked even with the right password");
    assert_eq!(app.login("erin@example.com", PASSWORD).await.status, StatusCode::OK, "other accounts unaffected");
}

async fn refresh_rotates_and_a_reused_token_revokes_its_family(db: Db) {
    let app = spawn_app(db).await;
    let first = app.register("fay@example.com").await;

    let rotated = app.post("/api/auth/refresh", None, json!({"refreshToken": first.refresh_token})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let second = Session::from_auth(&rotated.body);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(app.get("/api/auth/me", &second.access_token).await.status, StatusCode::OK);

    // A retry within the grace window, its successor unused: the same successor again.
    let retried = app.post("/api/auth/refresh", None, json!({"refreshToken": first.refresh_token})).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["refreshToken"], second.refresh_token.as_str());

    let rotated = app.post("/api/auth/refresh", None, json!({"refreshToken": second.refresh_token})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let third = Session::from_auth(&rotated.body);
    let reused = app.post("/api/auth/refresh", None, json!({"refreshToken": first.refresh_token})).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reused.error_code(), "refresh_token_reused");

    let after = app.post("/api/auth/refresh", None, json!({"refreshToken": third.refresh_token})).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "the reuse revoked the newer token too");

    let fresh_login = app.login("fay@example.com", PASSWORD).await;
    let other = Session::from_auth(&fresh_login.body);
    let unaffected = app.post("/api/auth/refresh", None, json!({"refreshToken": other.refresh_token})).await;
    assert_eq!(unaffected.status, StatusCode::OK, "another login's family is not touched");
}

async fn access_and_refresh_tokens_are_not_interchangeable(db: Db) {
    let app = spawn_app(db).await;
    let session = app.register("hal@example.com").await;
    let with_refresh = app.get("/api/auth/me", &session.refresh_token).await;
    assert_eq!(with_refresh.status, StatusCode::UNAUTHORIZED);
    let with_access = app.post("/api/auth/refresh", None, json!({"refreshToken": session.access_token})).await;
    assert_eq!(with_access.status, StatusCode::UNAUTHORIZED);
    assert_eq!(with_access.error_code(), "invalid_refresh_token");
    for token in ["", "garbage", "a.b.c"] {
        assert_eq!(app.get("/api/auth/me", token).await.status, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    let no_header = app.request(reqwest::Method::GET, "/api/auth/me", None, None).await;
    assert_eq!(no_header.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_header.error_code(), "unauthorized");
}

async fn logout_ends_the_login(db: Db) {
    let app = spawn_app(db).await;
    let session = app.register("ivy@example.com").await;
    let out = app.post("/api/auth/logout", None, json!({"refreshToken": session.refresh_token})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let refresh = app.post("/api/auth/refresh", None, json!({"refreshToken": session.refresh_token})).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
}
