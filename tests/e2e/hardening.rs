//! The defects a hostile-input probe found (issue 17), each with the test that would have
//! caught it.

use std::time::Duration;

use futures::StreamExt;
use omnichat_tests::fake::FakeProvider;
use omnichat_tests::socket::SocketClient;
use omnichat_tests::{Db, PASSWORD, Session, TestApp, reply, spawn_app, spawn_app_with, telegram_text};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::on_both_databases;

on_both_databases!(
    concurrent_demotions_and_removals_keep_an_owner,
    nul_characters_are_a_422_naming_the_field,
    look_alike_emails_fold_or_are_refused,
    unfetchable_attachment_urls_are_refused_at_once,
    concurrent_refreshes_keep_the_client_signed_in,
    one_client_cannot_spray_passwords,
    a_removed_users_socket_is_cut_at_once,
    a_demoted_users_socket_is_cut_at_once,
    a_socket_is_cut_when_its_token_expires,
    a_polling_client_under_a_burst_gets_every_event_or_is_disconnected,
    secret_looking_config_is_masked_inside_arrays_too,
    page_ids_can_be_neither_squatted_nor_probed,
);

async fn owner_pair(app: &TestApp, round: usize) -> (Session, Session) {
    let a = app.register(&format!("a{round}@race.test")).await;
    let email = format!("b{round}@race.test");
    let invited =
        app.post("/api/users", Some(&a.access_token), json!({"email": email, "role": "owner", "password": PASSWORD})).await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let b = app.login(&email, PASSWORD).await;
    assert_eq!(b.status, StatusCode::OK);
    (a, Session::from_auth(&b.body))
}

async fn concurrent_demotions_and_removals_keep_an_owner(db: Db) {
    let app = spawn_app(db).await;
    for round in 0..12 {
        let (a, b) = owner_pair(&app, round).await;
        let removing = round % 2 == 1;
        let against = |by: &Session, target: &Session| {
            let path = format!("/api/users/{}", target.user_id);
            let token = by.access_token.clone();
            let app = &app;
            async move {
                if removing { app.delete(&path, &token).await } else { app.patch(&path, &token, json!({"role": "admin"})).await }
            }
        };
        let (one, other) = tokio::join!(against(&a, &b), against(&b, &a));
        let won = [&one, &other].iter().filter(|r| r.status.is_success()).count();
        assert_eq!(won, 1, "round {round} (removing: {removing}): exactly one wins: {one:?} / {other:?}");
        let lost = if one.status.is_success() { &other } else { &one };
        // The loser ran into the rule (409), or came after the winner had already taken its
        // role (403) or its account (401).
        assert!(
            matches!(lost.status, StatusCode::CONFLICT | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED),
            "round {round}: {lost:?}"
        );
        let winner = if one.status.is_success() { &a } else { &b };
        let users = app.get("/api/users", &winner.access_token).await;
        let owners = users.body.as_array().expect("users").iter().filter(|u| u["role"] == "owner").count();
        assert_eq!(owners, 1, "round {round}: the tenant keeps its owner: {}", users.body);
    }
}

async fn nul_characters_are_a_422_naming_the_field(db: Db) {
    let app = spawn_app(db).await;
    let expect_422 = |reply: omnichat_tests::Reply, field: &str| {
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {}", reply.body);
        assert_eq!(reply.error_code(), "validation_failed");
        let message = reply.body["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.starts_with(&format!("{field}:")), "names {field}: {message}");
    };
    let register = json!({"email": "nul\u{0}@x.test", "password": PASSWORD});
    expect_422(app.post("/api/auth/register", None, register).await, "email");
    expect_422(app.login("a\u{0}@x.test", PASSWORD).await, "email");

    let owner = app.register("owner@nul.test").await;
    let token = &owner.access_token;
    expect_422(app.patch(&format!("/api/users/{}", owner.user_id), token, json!({"name": "Ann\u{0}"})).await, "name");
    let channel = json!({"name": "Bot\u{0}", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}});
    expect_422(app.post("/api/channels", Some(token), channel).await, "name");
    let channel = json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}, "metadata": {"k\u{0}": 1}});
    expect_422(app.post("/api/channels", Some(token), channel).await, "metadata");

    let bot = app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}})).await;
    let bot_id = bot["id"].as_str().expect("id");
    // The webhook path strips NUL from what a provider sends, as before.
    let update = omnichat_tests::telegram_text(7, 7, 4242, "hello\u{0} there");
    assert_eq!(app.telegram_update(bot_id, &update, None).await.status, StatusCode::OK);
    let conversation = app.telegram_conversation(&owner, bot_id, 4242).await;
    let conversation_id = conversation["id"].as_str().expect("id");
    let thread = app.get(&format!("/api/conversations/{conversation_id}/messages"), token).await;
    assert!(thread.body.to_string().contains("hello there"), "{}", thread.body);

    let send = json!({"conversationId": conversation_id, "text": "re\u{0}ply"});
    expect_422(app.post("/api/messages/send", Some(token), send).await, "text");
    let send = json!({"conversationId": conversation_id, "text": "ok", "attachments": [{"type": "image", "url": "https://x.test/a\u{0}.png"}]});
    expect_422(app.post("/api/messages/send", Some(token), send).await, "attachments[0].url");
    expect_422(app.get("/api/conversations?status=OPEN%00", token).await, "status");
    let nothing_stored = app.get(&format!("/api/conversations/{conversation_id}/messages"), token).await;
    assert_eq!(nothing_stored.body["data"].as_array().map(Vec::len), Some(2), "{}", nothing_stored.body);
}

async fn look_alike_emails_fold_or_are_refused(db: Db) {
    let app = spawn_app(db).await;
    app.register("alice@a.test").await;
    let register = |email: &str| {
        let body = json!({"email": email, "password": PASSWORD});
        let app = &app;
        async move { app.post("/api/auth/register", None, body).await }
    };
    for folded in ["ａｌｉｃｅ@a.test", "ALICE@A.TEST", " Alice@a.test "] {
        assert_eq!(register(folded).await.status, StatusCode::CONFLICT, "{folded:?} is alice");
    }
    for refused in [
        "al\u{200b}ice@a.test",
        "alice\u{200d}@a.test",
        "\u{202e}alice@a.test",
        "alice@a\u{2066}.test",
        "al\u{ad}ice@a.test",
        "<b>alice</b>@a.test",
        "alice@a.test<script>",
        "\"alice\"@a.test",
    ] {
        let reply = register(refused).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{refused:?}: {}", reply.body);
    }
    assert_eq!(app.login("ＡＬＩＣＥ@a.test", PASSWORD).await.status, StatusCode::OK, "a folded address signs in");
    let invite = app.register("owner@b.test").await;
    let reply = app.post("/api/users", Some(&invite.access_token), json!({"email": "b\u{200b}ob@b.test"})).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "invitations follow the same rule");
}

async fn unfetchable_attachment_urls_are_refused_at_once(db: Db) {
    let app = spawn_app_with(db, |config| config.providers.allow_private_fetch = false).await;
    let owner = app.register("owner@urls.test").await;
    let bot = app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}})).await;
    let conversation = app.telegram_conversation(&owner, bot["id"].as_str().expect("id"), 99).await;
    let send = |url: &str| {
        let body = json!({"conversationId": conversation["id"], "attachments": [{"type": "image", "url": url}]});
        let app = &app;
        let token = owner.access_token.clone();
        async move { app.post("/api/messages/send", Some(&token), body).await }
    };
    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data/", "private address"),
        ("http://127.0.0.1:9/a.png", "private address"),
        ("http://10.1.2.3/a.png", "private address"),
        ("http://[::1]/a.png", "private address"),
        ("http://[fd00::5]/a.png", "private address"),
        ("http://[::ffff:192.168.0.1]/a.png", "private address"),
        ("http://localhost/a.png", "private address"),
        ("https://user:pass@example.com/a.png", "credentials"),
    ] {
        let reply = send(url).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("attachments[0].url:") && message.contains(why), "{url}: {message}");
        assert!(!message.contains("pass@"), "the credentials are not echoed: {message}");
    }
    for url in ["https://example.com/a.png", "http://[2a03:2880:f12f:83:face:b00c:0:25de]/a.png"] {
        assert_eq!(send(url).await.status, StatusCode::ACCEPTED, "{url} is public");
    }
}

async fn concurrent_refreshes_keep_the_client_signed_in(db: Db) {
    let app = spawn_app(db).await;
    let session = app.register("refresh@race.test").await;
    let refresh = |token: String| {
        let app = &app;
        async move { app.post("/api/auth/refresh", None, json!({"refreshToken": token})).await }
    };
    let replies = futures::future::join_all((0..8).map(|_| refresh(session.refresh_token.clone()))).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "every concurrent refresh succeeds: {}", reply.body);
    }
    let successors: std::collections::HashSet<&str> =
        replies.iter().map(|r| r.body["refreshToken"].as_str().expect("refreshToken")).collect();
    assert_eq!(successors.len(), 1, "they all got the same successor");
    let successor = successors.into_iter().next().expect("one").to_owned();
    let access = replies[0].body["accessToken"].as_str().expect("access");
    assert_eq!(app.get("/api/auth/me", access).await.status, StatusCode::OK);

    let next = refresh(successor.clone()).await;
    assert_eq!(next.status, StatusCode::OK, "the successor rotates: {}", next.body);
    let latest = next.body["refreshToken"].as_str().expect("refreshToken").to_owned();
    // Its successor spent, the first token is reuse again, grace window or not: the family goes.
    let reused = refresh(session.refresh_token.clone()).await;
    assert_eq!((reused.status, reused.error_code()), (StatusCode::UNAUTHORIZED, "refresh_token_reused"));
    assert_eq!(refresh(latest).await.status, StatusCode::UNAUTHORIZED, "the family is revoked");
}

async fn one_client_cannot_spray_passwords(db: Db) {
    let app = spawn_app_with(db, |config| config.visitors.trust_forwarded_for = true).await;
    app.register("victim@spray.test").await;
    let login = |email: String, password: &'static str, from: &'static str| {
        let request = app
            .client
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password}));
        async move { reply(request.send().await.expect("sent")).await }
    };
    let mut refused_at = None;
    for i in 0..40 {
        let attempt = login(format!("user{i}@spray.test"), "wrong password", "203.0.113.7").await;
        match attempt.status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(attempt.headers.contains_key("retry-after"), "{attempt:?}");
                assert!(attempt.body["error"]["message"].as_str().unwrap_or_default().contains("this address"));
                refused_at = Some(i);
                break;
            }
            other => panic!("attempt {i}: {other}: {}", attempt.body),
        }
    }
    let refused_at = refused_at.expect("the sprayer is stopped");
    assert!((10..=30).contains(&refused_at), "after a couple of dozen failures, not at once: {refused_at}");
    let limited = login("victim@spray.test".into(), PASSWORD, "203.0.113.7").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "the limited client is refused before any password check");
    let elsewhere = login("victim@spray.test".into(), PASSWORD, "198.51.100.20").await;
    assert_eq!(elsewhere.status, StatusCode::OK, "another client signs in: {}", elsewhere.body);
    let body: &Value = &elsewhere.body;
    assert!(body["accessToken"].is_string());
}

async fn bot_channel(app: &TestApp, owner: &Session) -> String {
    let bot = app.create_channel(owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}})).await;
    bot["id"].as_str().expect("id").to_owned()
}

async fn a_removed_users_socket_is_cut_at_once(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("owner@cut.test").await;
    let invited =
        app.post("/api/users", Some(&owner.access_token), json!({"email": "agent@cut.test", "password": PASSWORD})).await;
    assert_eq!(invited.status, StatusCode::CREATED);
    let agent = Session::from_auth(&app.login("agent@cut.test", PASSWORD).await.body);
    let bot = bot_channel(&app, &owner).await;
    let mut socket = SocketClient::connect(&app.base_url(), Some(&agent.access_token), &[&bot]).await;
    assert_eq!(socket.ready().await, [json!({"ok": true})]);

    let removed = app.delete(&format!("/api/users/{}", agent.user_id), &owner.access_token).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let told = socket.event("unauthorized", Duration::from_secs(1)).await.expect("told within a second");
    assert_eq!(told["reason"], "the user was removed");
    let cut = socket.next("disconnect", Duration::from_secs(1)).await.expect("cut within a second");
    assert_eq!(cut["reason"], "io server disconnect", "a server-side disconnect: the client does not retry by itself");
}

async fn a_demoted_users_socket_is_cut_at_once(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("owner@demote.test").await;
    let invited = app
        .post(
            "/api/users",
            Some(&owner.access_token),
            json!({"email": "admin@demote.test", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED);
    let admin = Session::from_auth(&app.login("admin@demote.test", PASSWORD).await.body);
    let bot = bot_channel(&app, &owner).await;
    let mut socket = SocketClient::connect(&app.base_url(), Some(&admin.access_token), &[&bot]).await;
    assert_eq!(socket.ready().await, [json!({"ok": true})]);

    let demoted = app.patch(&format!("/api/users/{}", admin.user_id), &owner.access_token, json!({"role": "agent"})).await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.body);
    let told = socket.event("unauthorized", Duration::from_secs(1)).await.expect("told within a second");
    assert_eq!(told["reason"], "the user's role changed");
    socket.next("disconnect", Duration::from_secs(1)).await.expect("cut within a second");
    // A rename is no role change: the owner's own socket stays.
    let mut owners = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[&bot]).await;
    owners.ready().await;
    let renamed = app.patch(&format!("/api/users/{}", owner.user_id), &owner.access_token, json!({"name": "Boss"})).await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert!(owners.event("unauthorized", Duration::from_millis(500)).await.is_none());
}

async fn a_socket_is_cut_when_its_token_expires(db: Db) {
    let app = spawn_app_with(db, |config| config.jwt.access_ttl = Duration::from_secs(2)).await;
    let owner = app.register("owner@expiry.test").await;
    let bot = bot_channel(&app, &owner).await;
    let mut socket = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[&bot]).await;
    socket.ready().await;
    let told = socket.event("unauthorized", Duration::from_secs(8)).await.expect("told when the token expires");
    assert_eq!(told["reason"], "the access token expired");
    let cut = socket.next("disconnect", Duration::from_secs(2)).await.expect("then cut");
    assert_eq!(cut["reason"], "io server disconnect");
}

/// Posts `count` webhooks (16 at a time) while a long-polling client listens; returns how many
/// `message-created` events it got and whether it was disconnected.
async fn burst_to_a_polling_client(app: &TestApp, count: i64) -> (usize, bool) {
    let owner = app.register(&format!("owner{count}@burst.test")).await;
    let bot = bot_channel(app, &owner).await;
    let mut socket = SocketClient::polling(&app.base_url(), Some(&owner.access_token), &[&bot]).await;
    assert_eq!(socket.ready().await, [json!({"ok": true})]);
    let posted = futures::stream::iter(0..count)
        .map(|i| {
            let bot = bot.clone();
            async move { app.telegram_update(&bot, &telegram_text(i + 1, i + 1, 1_000 + i % 50, "burst"), None).await.status }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(posted.iter().all(|s| *s == StatusCode::OK), "every webhook stored");
    let mut received = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while received < count as usize {
        let Some(line) = socket.next_line(deadline.saturating_duration_since(tokio::time::Instant::now())).await else { break };
        match line["type"].as_str() {
            Some("event") if line["name"] == "message-created" => received += 1,
            Some("disconnect") => return (received, true),
            _ => {}
        }
    }
    (received, false)
}

async fn a_polling_client_under_a_burst_gets_every_event_or_is_disconnected(db: Db) {
    // The default buffer holds a burst; a tiny one cannot: either way nothing is lost unknowingly.
    for buffer in [None, Some(16)] {
        let app = spawn_app_with(db, |config| {
            if let Some(buffer) = buffer {
                config.socket_buffer = buffer;
            }
        })
        .await;
        let (received, disconnected) = burst_to_a_polling_client(&app, 1_000).await;
        eprintln!("buffer {buffer:?}: {received} of 1000 events, disconnected: {disconnected}");
        assert!(received == 1_000 || disconnected, "buffer {buffer:?}: {received} of 1000 events and no disconnect");
        if buffer.is_none() {
            assert_eq!(received, 1_000, "the default buffer holds a burst of 1,000 for a polling client");
        }
    }
}

async fn secret_looking_config_is_masked_inside_arrays_too(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("owner@mask.test").await;
    let config = json!({
        "botToken": "4242:DECLARED-SECRET",
        "accessKey": "AK-undeclared-1", "signingKey": "SK-undeclared-2", "pwd": "PWD-undeclared-3",
        "credentials": [{"user": "ops", "pass": "CRED-in-array-4"}],
        "upstreams": [{"url": "https://a.example", "authorization": "Bearer AUTH-in-array-5"}, {"url": "https://b.example"}],
        "greeting": "hello", "keywords": ["price", "refund"]
    });
    let channel = app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": config})).await;
    let shown = channel["config"].clone();
    let secrets =
        ["DECLARED-SECRET", "AK-undeclared-1", "SK-undeclared-2", "PWD-undeclared-3", "CRED-in-array-4", "AUTH-in-array-5"];
    for secret in secrets {
        assert!(!shown.to_string().contains(secret), "{secret} is masked: {shown}");
    }
    assert_eq!(shown["credentials"], "********", "a secret-looking key is sealed whole, arrays included");
    assert_eq!(shown["upstreams"][0], json!({"url": "https://a.example", "authorization": "********"}));
    assert_eq!((shown["greeting"].clone(), shown["keywords"].clone()), (json!("hello"), json!(["price", "refund"])));

    let id = omnichat_tests::id_of(&channel);
    let raw = app.db.raw_channel_config(id).await;
    for secret in secrets {
        assert!(!raw.contains(secret), "{secret} is sealed at rest: {raw}");
    }
    // The masked view sent back keeps every secret as it was.
    let patched = app.patch(&format!("/api/channels/{id}"), &owner.access_token, json!({"config": shown})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["config"], channel["config"]);
    let listed = app.get("/api/channels", &owner.access_token).await;
    for secret in secrets {
        assert!(!listed.body.to_string().contains(secret), "{secret} in the list");
    }
    let state = app.state.clone();
    let stored = state.store.get_channel(id_of_tenant(&owner), id).await.expect("read").expect("channel");
    let opened = omnichat::channels::secrets::open(&state.secrets, &stored.config.0).expect("opens");
    assert_eq!(opened, config, "nothing was lost on the way");
}

fn id_of_tenant(session: &Session) -> uuid::Uuid {
    session.tenant_id.parse().expect("tenant id")
}

fn page_message(page: &str, mid: &str) -> Value {
    json!({"object": "page", "entry": [{"id": page, "time": 1, "messaging": [
        {"sender": {"id": "PSID_1"}, "recipient": {"id": page}, "timestamp": 1_700_000_000_000u64, "message": {"mid": mid, "text": "hello page"}}]}]})
}

async fn page_ids_can_be_neither_squatted_nor_probed(db: Db) {
    let graph = FakeProvider::start().await;
    let graph_url = graph.base_url();
    let app = spawn_app_with(db, |config| {
        config.providers.facebook_graph_base_url = graph_url;
        config.providers.facebook_app_secret = Some("the-app-secret".to_owned().into());
    })
    .await;
    let squatter = app.register("squatter@pages.test").await;
    let owner = app.register("owner@pages.test").await;
    let page =
        |token: &str| json!({"name": "Page", "type": "FACEBOOK", "externalId": "PAGE_X", "config": {"pageAccessToken": token}});
    let squatted = app.create_channel(&squatter, page("the-squatters-token")).await;

    // Unsigned or badly signed deliveries answer alike for a known and an unknown page.
    let known = app.facebook_delivery(&page_message("PAGE_X", "m.1"), "guess", None).await;
    let unknown = app.facebook_delivery(&page_message("PAGE_NONE", "m.1"), "guess", None).await;
    let unsigned = app.facebook_delivery(&page_message("PAGE_X", "m.1"), "", Some("sha256=00")).await;
    assert_eq!(
        (known.status, unknown.status, unsigned.status),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(known.body, unknown.body, "nothing tells a known page from an unknown one");
    assert_eq!(unsigned.body, unknown.body);

    // The page's owner is not blocked by the squatter's claim, and learns nothing of it.
    let owned = app.post("/api/channels", Some(&owner.access_token), page("the-owners-token")).await;
    assert_eq!(owned.status, StatusCode::CREATED, "{}", owned.body);
    let duplicate = app.post("/api/channels", Some(&owner.access_token), page("again")).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT, "unique within a tenant");
    assert!(duplicate.body["error"]["message"].as_str().unwrap_or_default().contains("your channels"));

    // Two unproven claims: the page's messages go to neither.
    let unproven = app.facebook_delivery(&page_message("PAGE_X", "m.2"), "the-app-secret", None).await;
    assert_eq!(unproven.status, StatusCode::UNAUTHORIZED, "{}", unproven.body);

    // `connect` proves who holds the page: Graph's /me answers the page of the token.
    graph.script([(200, json!({"id": "PAGE_X", "name": "The page"}))]);
    let connected = app
        .post(&format!("/api/channels/{}/connect", owned.body["id"].as_str().expect("id")), Some(&owner.access_token), json!({}))
        .await;
    assert_eq!(
        (connected.status, connected.body["status"].clone()),
        (StatusCode::ACCEPTED, json!("CONNECTED")),
        "{}",
        connected.body
    );
    graph.script([(200, json!({"id": "THE_SQUATTERS_OWN_PAGE", "name": "Another page"}))]);
    let refused = app
        .post(&format!("/api/channels/{}/connect", squatted["id"].as_str().expect("id")), Some(&squatter.access_token), json!({}))
        .await;
    assert_eq!(refused.body["status"], "ERROR", "{}", refused.body);
    assert!(refused.body["statusReason"].as_str().unwrap_or_default().contains("not a token of page PAGE_X"), "{}", refused.body);

    let delivered = app.facebook_delivery(&page_message("PAGE_X", "m.3"), "the-app-secret", None).await;
    assert_eq!((delivered.status, delivered.body["stored"].as_i64()), (StatusCode::OK, Some(1)), "{}", delivered.body);
    let count = |session: &Session| {
        let app = &app;
        let token = session.access_token.clone();
        async move { app.get("/api/conversations", &token).await.body["data"].as_array().map(Vec::len) }
    };
    assert_eq!(count(&owner).await, Some(1), "the proven owner gets the page's messages");
    assert_eq!(count(&squatter).await, Some(0), "the squatter gets nothing");
}
