use omnichat_tests::{Db, PASSWORD, Session, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

use super::on_both_databases;

on_both_databases!(
    an_owner_invites_users_with_roles,
    an_agent_manages_nothing,
    an_admin_cannot_touch_owners,
    a_tenant_keeps_at_least_one_owner,
    a_removed_user_is_signed_out_at_once,
);

async fn invite(app: &TestApp, by: &Session, email: &str, role: &str) -> Session {
    let reply = app.post("/api/users", Some(&by.access_token), json!({"email": email, "role": role, "password": PASSWORD})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "invite {email}: {}", reply.body);
    let login = app.login(email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    Session::from_auth(&login.body)
}

async fn an_owner_invites_users_with_roles(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("owner@acme.io").await;
    let agent = invite(&app, &owner, "agent@acme.io", "agent").await;
    assert_eq!(agent.tenant_id, owner.tenant_id, "invited into the owner's tenant");

    let generated = app.post("/api/users", Some(&owner.access_token), json!({"email": "temp@acme.io", "name": "Temp"})).await;
    assert_eq!(generated.status, StatusCode::CREATED);
    assert_eq!(generated.body["role"], "agent", "agent is the default role");
    let temporary = generated.body["temporaryPassword"].as_str().expect("a generated password is shown once");
    assert_eq!(app.login("temp@acme.io", temporary).await.status, StatusCode::OK);

    let listed = app.get("/api/users", &owner.access_token).await;
    let emails: Vec<_> = listed.body.as_array().expect("array").iter().map(|u| u["email"].as_str().unwrap_or_default()).collect();
    assert_eq!(emails, ["owner@acme.io", "agent@acme.io", "temp@acme.io"]);
    assert!(!listed.body.to_string().contains("argon2"));

    let promoted = app.patch(&format!("/api/users/{}", agent.user_id), &owner.access_token, json!({"role": "admin"})).await;
    assert_eq!(promoted.status, StatusCode::OK);
    assert_eq!(promoted.body["role"], "admin");
    let bad_role = app.patch(&format!("/api/users/{}", agent.user_id), &owner.access_token, json!({"role": "king"})).await;
    assert_eq!(bad_role.status, StatusCode::UNPROCESSABLE_ENTITY);

    let duplicate =
        app.post("/api/users", Some(&owner.access_token), json!({"email": "AGENT@acme.io", "password": PASSWORD})).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
}

async fn an_agent_manages_nothing(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("owner@beta.io").await;
    let agent = invite(&app, &owner, "agent@beta.io", "agent").await;
    let token = &agent.access_token;

    assert_eq!(app.get("/api/users", token).await.status, StatusCode::OK, "agents read the team for assignment");
    let refused = [
        app.post("/api/users", Some(token), json!({"email": "x@beta.io", "password": PASSWORD})).await,
        app.patch(&format!("/api/users/{}", owner.user_id), token, json!({"role": "agent"})).await,
        app.delete(&format!("/api/users/{}", owner.user_id), token).await,
        app.post("/api/channels", Some(token), json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:test"}}))
            .await,
    ];
    for reply in refused {
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        assert_eq!(reply.error_code(), "forbidden");
    }
    let channel =
        app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:test"}})).await;
    let id = channel["id"].as_str().expect("id");
    assert_eq!(app.get(&format!("/api/channels/{id}"), token).await.status, StatusCode::OK, "agents read channels");
    assert_eq!(app.patch(&format!("/api/channels/{id}"), token, json!({"name": "X"})).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.delete(&format!("/api/channels/{id}"), token).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&format!("/api/channels/{id}"), &owner.access_token).await.body["name"], "Bot", "nothing changed");
}

async fn an_admin_cannot_touch_owners(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("owner@gamma.io").await;
    let admin = invite(&app, &owner, "admin@gamma.io", "admin").await;

    let grant = app
        .post("/api/users", Some(&admin.access_token), json!({"email": "o2@gamma.io", "role": "owner", "password": PASSWORD}))
        .await;
    assert_eq!(grant.status, StatusCode::FORBIDDEN);
    let demote = app.patch(&format!("/api/users/{}", owner.user_id), &admin.access_token, json!({"role": "agent"})).await;
    assert_eq!(demote.status, StatusCode::FORBIDDEN);
    let remove = app.delete(&format!("/api/users/{}", owner.user_id), &admin.access_token).await;
    assert_eq!(remove.status, StatusCode::FORBIDDEN);

    let agent = invite(&app, &admin, "agent@gamma.io", "agent").await;
    let removed = app.delete(&format!("/api/users/{}", agent.user_id), &admin.access_token).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "admins manage agents");
}

async fn a_tenant_keeps_at_least_one_owner(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("solo@delta.io").await;
    let demote = app.patch(&format!("/api/users/{}", owner.user_id), &owner.access_token, json!({"role": "admin"})).await;
    assert_eq!(demote.status, StatusCode::CONFLICT);
    let remove = app.delete(&format!("/api/users/{}", owner.user_id), &owner.access_token).await;
    assert_eq!(remove.status, StatusCode::CONFLICT);

    let second = invite(&app, &owner, "second@delta.io", "owner").await;
    let demoted = app.patch(&format!("/api/users/{}", second.user_id), &owner.access_token, json!({"role": "agent"})).await;
    assert_eq!(demoted.status, StatusCode::OK, "with two owners one may step down");
}

async fn a_removed_user_is_signed_out_at_once(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("owner@eps.io").await;
    let agent = invite(&app, &owner, "leaver@eps.io", "agent").await;
    assert_eq!(app.delete(&format!("/api/users/{}", agent.user_id), &owner.access_token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/auth/me", &agent.access_token).await.status, StatusCode::UNAUTHORIZED);
    let refresh = app.post("/api/auth/refresh", None, json!({"refreshToken": agent.refresh_token})).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&format!("/api/users/{}", agent.user_id), &owner.access_token).await.status, StatusCode::NOT_FOUND);
}
