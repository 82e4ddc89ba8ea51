//! The website widget: a WIDGET channel served by its plugin through the visitor transport.
//! Visitors speak the visitor API from a page origin; inbox users see them through the usual
//! API and rooms; agent replies reach the visitor's socket.

use std::time::Duration;

use hmac::{Hmac, Mac};
use omnichat_tests::socket::SocketClient;
use omnichat_tests::widget::{SHOP, Visitor, create_widget};
use omnichat_tests::{Db, eventually, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::on_both_databases;

on_both_databases!(
    sessions_resume_the_same_visitor_and_identities_need_their_hash,
    visitor_tokens_and_user_tokens_never_stand_in_for_each_other,
    a_visitor_message_is_stored_once_and_the_reply_reaches_only_its_visitor,
    uploads_are_capped_typed_and_served_from_an_unguessable_url,
    visitors_and_addresses_are_rate_limited_with_retry_after,
    an_expired_token_resumes_an_anonymous_visitor_but_not_an_identity,
);

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "identity-secret-of-acme";

fn identity_hash(identifier: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(identifier.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn sessions_resume_the_same_visitor_and_identities_need_their_hash(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("widget@acme.io").await;
    let channel = create_widget(
        &app,
        &owner,
        json!({"identitySecret": SECRET, "offlineMessage": "We reply within a day.",
            "preChatForm": {"name": "required", "email": "optional"}}),
    )
    .await;

    let mut visitor = Visitor::new(&app, &channel);
    let first = visitor.session(json!({"pageUrl": "https://shop.example.com/pricing"})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["channel"]["title"], "Acme support");
    assert_eq!(first.body["channel"]["greeting"], "Hi! How can we help?");
    assert_eq!(first.body["channel"]["preChatForm"], json!({"name": "required", "email": "optional"}));
    assert_eq!(first.body["channel"]["offlineMessage"], "We reply within a day.");
    assert_eq!(first.body["channel"]["online"], false, "no inbox user is connected");
    assert_eq!(first.body["conversation"], Value::Null);
    assert_eq!(first.body["messages"], json!([]));
    assert!(!first.body.to_string().contains(SECRET), "the identity secret never leaves the host");
    assert_eq!(first.headers["access-control-allow-origin"], SHOP);
    let visitor_id = first.body["visitor"]["id"].as_str().expect("visitor id").to_owned();
    assert_eq!(first.body["visitor"]["customerId"], Value::Null, "a page view makes no customer");
    let customers = app.get(&format!("/api/customers?channelInstanceId={channel}"), &owner.access_token).await;
    assert_eq!(customers.body["data"], json!([]));
    let nul = visitor.call(Method::POST, "sessions", Some(json!({"name": "a\u{0}b"}))).await;
    assert_eq!(nul.status, StatusCode::UNPROCESSABLE_ENTITY, "the same answer on both databases: {}", nul.body);

    // The pre-chat form asks for a name before the first message.
    let refused = visitor.send("c-0", "hello?").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert_eq!(refused.error_code(), "prechat_required");
    let named = visitor.session(json!({"name": "Ann Visitor", "email": "ann@example.com"})).await;
    assert_eq!(named.body["visitor"]["id"], visitor_id.as_str(), "the same visitor, now named");
    assert_eq!(visitor.send("c-1", "Do you ship to Spain?").await.status, StatusCode::CREATED);

    // A reload: the stored token resumes the visitor with its conversation and history.
    let resumed = visitor.session(json!({})).await;
    assert_eq!(resumed.body["visitor"]["id"], visitor_id.as_str());
    assert_eq!(resumed.body["visitor"]["name"], "Ann Visitor");
    assert_eq!(resumed.body["messages"][0]["text"], "Do you ship to Spain?");
    assert_eq!(resumed.body["messages"][0]["from"], "visitor");
    assert_eq!(resumed.body["messages"][0]["clientMessageId"], "c-1");
    let customers = app.get(&format!("/api/customers?channelInstanceId={channel}"), &owner.access_token).await;
    let customer = &customers.body["data"][0];
    assert_eq!(customer["name"], "Ann Visitor");
    assert_eq!(customer["metadata"]["email"], "ann@example.com");
    assert_eq!(customer["metadata"]["pageUrl"], "https://shop.example.com/pricing");

    // A signed-in visitor: the same customer and conversation from any device.
    let signed_in = json!({"identifier": "user-42", "identifierHash": identity_hash("user-42"), "name": "Bob"});
    let mut laptop = Visitor::new(&app, &channel);
    let on_laptop = laptop.session(signed_in.clone()).await;
    assert_eq!(on_laptop.status, StatusCode::OK, "{}", on_laptop.body);
    assert_eq!(on_laptop.body["visitor"]["verified"], true);
    let from_laptop = laptop.send("l-1", "from my laptop").await;
    assert_eq!(from_laptop.status, StatusCode::CREATED);
    assert!(from_laptop.body["visitorToken"].is_string(), "the first message names the new customer in a fresh token");
    let mut phone = Visitor::new(&app, &channel);
    let on_phone = phone.session(signed_in).await;
    assert!(on_phone.body["visitor"]["customerId"].is_string());
    assert_eq!(on_phone.body["conversation"]["id"], from_laptop.body["conversation"]["id"], "the same conversation");
    assert_eq!(on_phone.body["messages"][0]["text"], "from my laptop");

    let forged = Visitor::new(&app, &channel)
        .call(Method::POST, "sessions", Some(json!({"identifier": "user-42", "identifierHash": identity_hash("user-43")})))
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{}", forged.body);
    assert_eq!(forged.error_code(), "identity_rejected");
    let unhashed = Visitor::new(&app, &channel).call(Method::POST, "sessions", Some(json!({"identifier": "user-42"}))).await;
    assert_eq!(unhashed.status, StatusCode::UNAUTHORIZED);

    // identityRequired: anonymous visitors get no session.
    let members_only = create_widget(&app, &owner, json!({"identitySecret": SECRET, "identityRequired": true})).await;
    let anonymous = Visitor::new(&app, &members_only).call(Method::POST, "sessions", Some(json!({}))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.error_code(), "identity_required");
    let member = Visitor::new(&app, &members_only)
        .call(Method::POST, "sessions", Some(json!({"identifier": "m-1", "identifierHash": identity_hash("m-1")})))
        .await;
    assert_eq!(member.status, StatusCode::OK, "{}", member.body);
}

async fn visitor_tokens_and_user_tokens_never_stand_in_for_each_other(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("tokens@acme.io").await;
    let channel = create_widget(&app, &owner, json!({"allowedOrigins": [SHOP, "https://*.acme.dev"]})).await;
    let other_channel = create_widget(&app, &owner, json!({})).await;
    let mut visitor = Visitor::new(&app, &channel);
    visitor.session(json!({})).await;
    let visitor_token = visitor.token.clone().expect("visitor token");

    let as_user = app.get("/api/conversations", &visitor_token).await;
    assert_eq!(as_user.status, StatusCode::UNAUTHORIZED, "a visitor token is no user token");
    let user_as_visitor = Visitor { token: Some(owner.access_token.clone()), ..Visitor::new(&app, &channel) };
    assert_eq!(user_as_visitor.call(Method::GET, "messages", None).await.status, StatusCode::UNAUTHORIZED);
    let elsewhere = Visitor { token: Some(visitor_token.clone()), ..Visitor::new(&app, &other_channel) };
    assert_eq!(elsewhere.call(Method::GET, "messages", None).await.status, StatusCode::UNAUTHORIZED, "bound to its channel");
    assert_eq!(visitor.call(Method::GET, "messages", None).await.status, StatusCode::OK);
    let socket_as_user =
        SocketClient::connect(&app.base_url(), Some(&visitor_token), &[]).await.next("connect_error", WAIT).await;
    assert!(socket_as_user.is_some(), "the inbox namespace refuses visitor tokens");

    // Origins: the channel's, its wildcard's subdomains, never another site, never none.
    let sub = Visitor { origin: "https://help.acme.dev".into(), ..Visitor::new(&app, &channel) };
    assert_eq!(sub.call(Method::POST, "sessions", Some(json!({}))).await.status, StatusCode::OK);
    let foreign = Visitor { origin: "https://evil.example".into(), ..Visitor::new(&app, &channel) };
    let refused = foreign.call(Method::POST, "sessions", Some(json!({}))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.error_code(), "origin_not_allowed");
    assert_eq!(refused.headers["access-control-allow-origin"], "https://evil.example", "readable, so the widget can stop");
    let apex = Visitor { origin: "https://acme.dev".into(), ..Visitor::new(&app, &channel) };
    assert_eq!(apex.call(Method::POST, "sessions", Some(json!({}))).await.status, StatusCode::FORBIDDEN);
    let bare = app.client.post(app.url(&visitor.path("sessions"))).json(&json!({})).send().await.expect("sent");
    assert_eq!(bare.status(), StatusCode::FORBIDDEN, "no Origin: not from a page");
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url(&visitor.path("messages")))
        .header("origin", SHOP)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .expect("sent");
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers()["access-control-allow-origin"], SHOP);
    let visitor_socket =
        SocketClient::visitor(&app.base_url(), &visitor_token, "https://evil.example").await.next("connect_error", WAIT).await;
    assert!(visitor_socket.is_some(), "the visitor namespace checks the page's origin too");

    // Not a visitor channel, not a channel, and a provider-style webhook posing as a visitor.
    let bot = app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}})).await;
    let bot_visitor = Visitor::new(&app, bot["id"].as_str().expect("id"));
    assert_eq!(bot_visitor.call(Method::POST, "sessions", Some(json!({}))).await.status, StatusCode::NOT_FOUND);
    let webhook = app.post(&format!("/api/webhooks/{channel}"), None, json!({"clientMessageId": "x", "text": "hi"})).await;
    assert_eq!(webhook.status, StatusCode::NOT_FOUND, "{}", webhook.body);
    let types = app.get("/api/channel-types", &owner.access_token).await;
    let widget = types.body.as_array().expect("types").iter().find(|t| t["type"] == "WIDGET").expect("WIDGET listed").clone();
    assert_eq!(widget["webhook"]["mode"], "visitor");
    assert!(
        widget["configSchema"].as_array().expect("schema").iter().any(|f| f["name"] == "identitySecret" && f["secret"] == true)
    );
    let channel_json = app.get(&format!("/api/channels/{channel}"), &owner.access_token).await;
    assert_eq!(channel_json.body["status"], "CONNECTED", "a widget is connected once it exists");

    // A widget whose config cannot work says so at once, and serves no visitor.
    let broken = app
        .create_channel(&owner, json!({"type": "WIDGET", "name": "Broken", "config": {"allowedOrigins": ["shop.example.com/*"]}}))
        .await;
    assert_eq!(broken["status"], "ERROR", "{broken}");
    assert!(broken["statusReason"].as_str().is_some_and(|r| r.contains("allowedOrigins")), "{broken}");
    let turned_away =
        Visitor::new(&app, broken["id"].as_str().expect("id")).call(Method::POST, "sessions", Some(json!({}))).await;
    assert_eq!(turned_away.status, StatusCode::NOT_FOUND);
    assert_eq!(turned_away.error_code(), "widget_unavailable");
}

async fn a_visitor_message_is_stored_once_and_the_reply_reaches_only_its_visitor(db: Db) {
    let app = spawn_app(db).await;
    let owner = app.register("flow@acme.io").await;
    let channel = create_widget(&app, &owner, json!({})).await;
    let mut inbox = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[&channel]).await;
    inbox.ready().await;

    let mut ann = Visitor::new(&app, &channel);
    let opened = ann.session(json!({"name": "Ann"})).await;
    assert_eq!(opened.body["channel"]["online"], true, "an inbox user is connected");
    let mut bob = Visitor::new(&app, &channel);
    bob.session(json!({"name": "Bob"})).await;
    let mut ann_socket = SocketClient::visitor(&app.base_url(), ann.token.as_deref().expect("token"), SHOP).await;
    ann_socket.ready().await;
    let mut bob_socket = SocketClient::visitor(&app.base_url(), bob.token.as_deref().expect("token"), SHOP).await;
    bob_socket.ready().await;

    let first = ann.send("ann-1", "Where is my order?").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let retried = ann.send("ann-1", "Where is my order?").await;
    assert_eq!(retried.status, StatusCode::OK, "a retried post answers the stored message");
    assert_eq!(retried.body["message"]["id"], first.body["message"]["id"]);
    let conversation_id = first.body["conversation"]["id"].as_str().expect("conversation").to_owned();
    let created = inbox.event("message-created", WAIT).await.expect("message-created in the inbox");
    assert_eq!(created["message"]["text"], "Where is my order?");
    let messages = app.get(&format!("/api/conversations/{conversation_id}/messages"), &owner.access_token).await;
    assert_eq!(messages.body["data"].as_array().expect("messages").len(), 1, "stored once");
    let listed = app.get(&format!("/api/conversations?channelInstanceId={channel}"), &owner.access_token).await;
    assert_eq!(listed.body["data"][0]["id"], conversation_id.as_str());
    // Bob, another visitor of the same widget, posting the same client id, is not Ann's duplicate.
    assert_eq!(bob.send("ann-1", "me too").await.status, StatusCode::CREATED);

    // Typing, both ways, to the right people only.
    assert_eq!(ann.call(Method::POST, "typing", Some(json!({"typing": true}))).await.status, StatusCode::NO_CONTENT);
    let typing = inbox.event("typing", WAIT).await.expect("visitor typing in the inbox");
    assert_eq!(
        typing,
        json!({"channelInstanceId": channel, "conversationId": conversation_id, "from": "visitor", "typing": true})
    );
    inbox.emit("typing", json!({"conversationId": conversation_id}), true).await;
    let ack = inbox.next("ack", WAIT).await.expect("typing ack");
    assert_eq!(ack["reply"], json!({"ok": true}));
    let agent_typing = ann_socket.event("typing", WAIT).await.expect("agent typing at the visitor");
    assert_eq!(agent_typing, json!({"conversationId": conversation_id, "from": "agent", "typing": true}));

    // The agent replies through the send API; the queue hands it to Ann's socket, SENT.
    let sent = app
        .post(
            "/api/messages/send",
            Some(&owner.access_token),
            json!({"conversationId": conversation_id, "text": "It ships today."}),
        )
        .await;
    assert!(sent.status.is_success(), "{}", sent.body);
    let reply_id = sent.body["message"]["id"].as_str().or(sent.body["id"].as_str()).expect("reply id").to_owned();
    let delivered = ann_socket.event("message", WAIT).await.expect("the reply at the visitor");
    assert_eq!(delivered["from"], "agent");
    assert_eq!(delivered["text"], "It ships today.");
    assert_eq!(delivered["status"], "SENT");
    assert_eq!(delivered["id"], reply_id.as_str());
    let stored = app.message_with_status(&owner, &conversation_id, &reply_id, "SENT").await;
    assert_eq!(stored["providerMessageId"], reply_id.as_str());

    // Seen by the visitor: READ in the inbox.
    let read = ann.call(Method::POST, "read", None).await;
    assert_eq!(read.body["read"], 1, "{}", read.body);
    app.message_with_status(&owner, &conversation_id, &reply_id, "READ").await;
    let resumed = ann.session(json!({})).await;
    assert_eq!(resumed.body["unreadCount"], 0);

    // An offline visitor gets the reply with the next session, counted unread.
    drop(ann_socket);
    let later = app
        .post(
            "/api/messages/send",
            Some(&owner.access_token),
            json!({"conversationId": conversation_id, "text": "Tracking: 123"}),
        )
        .await;
    let later_id = later.body["message"]["id"].as_str().or(later.body["id"].as_str()).expect("id").to_owned();
    app.message_with_status(&owner, &conversation_id, &later_id, "SENT").await;
    let back = ann.session(json!({})).await;
    assert_eq!(back.body["unreadCount"], 1);
    assert_eq!(back.body["messages"].as_array().expect("history").last().expect("last")["text"], "Tracking: 123");

    // Bob heard nothing of Ann's conversation; Ann's messages never name their provider internals.
    let bob_heard = bob_socket.events_within("message", Duration::from_millis(500)).await;
    assert!(bob_heard.iter().all(|m| m["text"] == "me too"), "Bob hears only his own: {bob_heard:?}");
    assert!(bob_socket.seen.iter().all(|l| l["name"] != "typing"), "{:?}", bob_socket.seen);
    assert!(
        back.body["messages"].as_array().expect("history").iter().all(|m| m.get("raw").is_none() && m.get("error").is_none())
    );

    // Another tenant sees none of it and cannot type into it.
    let rival = app.register("rival@other.io").await;
    let theirs = app.get(&format!("/api/conversations/{conversation_id}"), &rival.access_token).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let mut rival_socket = SocketClient::connect(&app.base_url(), Some(&rival.access_token), &[]).await;
    rival_socket.ready().await;
    rival_socket.emit("typing", json!({"conversationId": conversation_id}), true).await;
    let refused = rival_socket.next("ack", WAIT).await.expect("ack");
    assert_eq!(refused["reply"]["ok"], false);
    let channels = app.get("/api/channels", &rival.access_token).await;
    assert_eq!(channels.body, json!([]));
}

/// The smallest PNG: a 1x1 transparent pixel.
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
    0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];

async fn uploads_are_capped_typed_and_served_from_an_unguessable_url(db: Db) {
    let app = spawn_app_with(db, |config| config.visitors.max_upload_bytes = 4096).await;
    let owner = app.register("files@acme.io").await;
    let channel = create_widget(&app, &owner, json!({})).await;
    let mut ann = Visitor::new(&app, &channel);
    ann.session(json!({})).await;

    let uploaded = ann.upload(PIXEL_PNG.to_vec(), "pixel.png", "image/png").await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    assert_eq!(uploaded.body["kind"], "image");
    let url = uploaded.body["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with(&format!("/api/widget/{channel}/attachments/")) && url.len() > 80,
        "relative without a public URL: {url}"
    );
    let served = app.client.get(app.url(&url)).send().await.expect("download");
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.headers()["cross-origin-resource-policy"], "cross-origin");
    assert!(served.headers()["content-security-policy"].to_str().expect("csp").contains("sandbox"));
    assert_eq!(served.bytes().await.expect("body").as_ref(), PIXEL_PNG);
    // One character off (never the same one: a token may well end in `x`).
    let last = if url.ends_with('x') { "y" } else { "x" };
    let guessed = app.client.get(app.url(&format!("{}{last}", &url[..url.len() - 1]))).send().await.expect("download");
    assert_eq!(guessed.status(), StatusCode::NOT_FOUND);

    let html = ann.upload(b"<script>alert(1)</script>".to_vec(), "page.html", "text/html").await;
    assert_eq!(html.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let svg = ann.upload(b"<svg/>".to_vec(), "x.svg", "image/svg+xml").await;
    assert_eq!(svg.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "SVG can carry script");
    let big = ann.upload(vec![0u8; 5000], "big.pdf", "application/pdf").await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.body);
    let pdf = ann.upload(b"%PDF-1.4 tiny".to_vec(), "terms.pdf", "application/octet-stream").await;
    assert_eq!(pdf.body["mimeType"], "application/pdf", "typed by its extension when the browser does not know");
    let served_pdf = app.client.get(app.url(pdf.body["url"].as_str().expect("url"))).send().await.expect("download");
    let not_multipart = ann.call(Method::POST, "attachments", Some(json!({"file": "x"}))).await;
    assert!(not_multipart.status.is_client_error());
    assert_eq!(not_multipart.error_code(), "invalid_multipart");
    assert!(served_pdf.headers()["content-disposition"].to_str().expect("disposition").starts_with("attachment"));

    let upload_id = uploaded.body["id"].clone();
    let message = ann
        .call(
            Method::POST,
            "messages",
            Some(json!({"clientMessageId": "img-1", "text": "see", "attachments": [{"uploadId": upload_id}]})),
        )
        .await;
    assert_eq!(message.status, StatusCode::CREATED, "{}", message.body);
    assert_eq!(message.body["message"]["attachments"][0]["kind"], "image");
    assert_eq!(message.body["message"]["attachments"][0]["url"], url.as_str());
    let conversation_id = message.body["conversation"]["id"].as_str().expect("conversation");
    let inbox = app.get(&format!("/api/conversations/{conversation_id}/messages"), &owner.access_token).await;
    assert_eq!(inbox.body["data"][0]["attachments"][0]["url"], url.as_str());
    assert_eq!(inbox.body["data"][0]["attachments"][0]["mimeType"], "image/png");

    // Another visitor cannot attach Ann's file.
    let mut bob = Visitor::new(&app, &channel);
    bob.session(json!({})).await;
    let stolen = bob
        .call(Method::POST, "messages", Some(json!({"clientMessageId": "b-1", "attachments": [{"uploadId": upload_id}]})))
        .await;
    assert_eq!(stolen.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(stolen.error_code(), "unknown_upload");
    let many: Vec<Value> = (0..11).map(|_| json!({"uploadId": uuid::Uuid::new_v4()})).collect();
    let too_many = bob.call(Method::POST, "messages", Some(json!({"clientMessageId": "b-9", "attachments": many}))).await;
    assert_eq!(too_many.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_many.error_code(), "too_many_attachments");
    let empty = bob.call(Method::POST, "messages", Some(json!({"clientMessageId": "b-2", "text": "   "}))).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let long = bob.call(Method::POST, "messages", Some(json!({"clientMessageId": "b-3", "text": "x".repeat(4001)}))).await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn visitors_and_addresses_are_rate_limited_with_retry_after(db: Db) {
    let app = spawn_app_with(db, |config| {
        config.visitors.messages_per_minute = 6;
        config.visitors.sessions_per_minute = 9;
    })
    .await;
    let owner = app.register("limits@acme.io").await;
    let channel = create_widget(&app, &owner, json!({})).await;
    let mut ann = Visitor::new(&app, &channel);
    ann.session(json!({})).await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        statuses.push(ann.send(&format!("m-{n}"), "spam").await);
    }
    let limited = statuses.iter().find(|r| r.status == StatusCode::TOO_MANY_REQUESTS).expect("the burst is limited");
    assert!(limited.headers["retry-after"].to_str().expect("retry-after").parse::<u64>().expect("seconds") >= 1);
    assert_eq!(limited.error_code(), "too_many_requests");
    // The limit is per visitor: Bob still gets through.
    let mut bob = Visitor::new(&app, &channel);
    bob.session(json!({})).await;
    assert_eq!(bob.send("b-1", "hello").await.status, StatusCode::CREATED);

    // Sessions per address: a flood of new visitors from one address is cut.
    let mut last = StatusCode::OK;
    for _ in 0..10 {
        last = Visitor::new(&app, &channel).call(Method::POST, "sessions", Some(json!({}))).await.status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let count = eventually(WAIT, "the accepted messages stored", || async {
        let list = app.get(&format!("/api/conversations?channelInstanceId={channel}"), &owner.access_token).await;
        (list.body["data"].as_array().map(Vec::len) == Some(2)).then_some(2)
    })
    .await;
    assert_eq!(count, 2);
}

async fn an_expired_token_resumes_an_anonymous_visitor_but_not_an_identity(db: Db) {
    let app = spawn_app_with(db, |config| config.jwt.visitor_ttl = Duration::from_secs(1)).await;
    let owner = app.register("expiry@acme.io").await;
    let channel = create_widget(&app, &owner, json!({"identitySecret": SECRET})).await;
    let mut anonymous = Visitor::new(&app, &channel);
    let first = anonymous.session(json!({})).await;
    let mut signed_in = Visitor::new(&app, &channel);
    let verified = signed_in.session(json!({"identifier": "u-1", "identifierHash": identity_hash("u-1")})).await;
    assert_eq!(verified.body["visitor"]["id"], "id:u-1");
    tokio::time::sleep(Duration::from_secs(8)).await; // past expiry (whole seconds) and the 5 s leeway

    let expired = anonymous.token.clone().expect("token");
    let refused = Visitor { token: Some(expired), ..Visitor::new(&app, &channel) }.call(Method::GET, "messages", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "an expired token opens nothing but a session");
    let resumed = anonymous.session(json!({})).await;
    assert_eq!(resumed.body["visitor"]["id"], first.body["visitor"]["id"], "an anonymous visitor resumes");
    let after = signed_in.session(json!({})).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_ne!(after.body["visitor"]["id"], "id:u-1", "an identity is proven again, never resumed from an expired token");
    assert_eq!(after.body["visitor"]["verified"], false);
}
