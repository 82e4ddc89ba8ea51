//! The web console at `/`: served from the binary under a strict CSP, and used in a real browser
//! (Debian's chromium, driven by playwright-core) the way a person uses it, by labels, roles and
//! visible text: sign up, add a Telegram bot, a customer's message appears live, reply, the
//! reply is sent; a dead letter retried from the queue page; a WhatsApp channel paired through
//! its live QR code; a user invited and signed in. Screenshots are written to
//! `target/tmp/browser/console/` (looked at when the console changes).

use std::path::PathBuf;
use std::time::Duration;

use omnichat::Connectors;
use omnichat::bridges::whatsapp::client::WaEvent;
use omnichat_tests::browser::{self, Browser};
use omnichat_tests::fake::FakeProvider;
use omnichat_tests::whatsapp::WhatsAppScript;
use omnichat_tests::{Db, TestApp, eventually, spawn_app, spawn_app_with_connectors, telegram_text};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_from_the_binary_under_a_strict_csp() {
    let app = spawn_app(Db::Sqlite).await;
    let page = app.client.get(app.url("/")).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    for directive in
        ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(page.headers()["content-type"].to_str().expect("type").starts_with("text/html"));
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"<meta name="omnichat-socket-path" content="/socket.io">"#), "{html}");
    assert!(!html.contains("<script>") && !html.contains("style="), "nothing inline");

    let script = app.client.get(app.url("/console/app.js")).header("accept-encoding", "gzip").send().await.expect("js");
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(script.headers()["content-encoding"], "gzip");
    let etag = script.headers()["etag"].to_str().expect("etag").to_owned();
    let again = app.client.get(app.url("/console/app.js")).header("if-none-match", &etag).send().await.expect("js");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let socket_io = app.client.get(app.url("/console/vendor/socket.io.min.js")).send().await.expect("socket.io");
    assert_eq!(socket_io.status(), StatusCode::OK);
    assert!(socket_io.text().await.expect("text").contains("Socket.IO"), "the vendored client");

    let missing = app.client.get(app.url("/console/nope.js")).send().await.expect("404");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.expect("json")["error"]["code"], "not_found");
    let traversal = app.client.get(app.url("/console/..%2F..%2FCargo.toml")).send().await.expect("404");
    assert_eq!(traversal.status(), StatusCode::NOT_FOUND);
    // The API's own routes are untouched.
    assert_eq!(app.client.get(app.url("/api/nope")).send().await.expect("404").status(), StatusCode::NOT_FOUND);
}

/// The browser, with a few words for what a person does.
struct Person {
    browser: Browser,
    base: String,
}

impl Person {
    async fn goto(&mut self, path: &str) -> Value {
        self.browser.run(json!({"cmd": "goto", "url": format!("{}{path}", self.base)})).await
    }
    async fn fill(&mut self, label: &str, value: &str) {
        self.browser.run(json!({"cmd": "fill", "label": label, "value": value})).await;
    }
    async fn choose(&mut self, label: &str, value: &str) {
        self.browser.run(json!({"cmd": "selectOption", "label": label, "value": value})).await;
    }
    async fn button(&mut self, name: &str) {
        self.browser.run(json!({"cmd": "click", "role": "button", "name": name, "exact": true})).await;
    }
    async fn link(&mut self, name: &str) {
        self.browser.run(json!({"cmd": "click", "role": "link", "name": name, "exact": true})).await;
    }
    async fn heading(&mut self, text: &str) {
        self.browser.run(json!({"cmd": "waitVisible", "role": "heading", "name": text, "exact": true})).await;
    }
    async fn sees(&mut self, css: &str, text: &str) -> String {
        let answer = self.browser.run(json!({"cmd": "waitText", "css": css, "text": text, "timeoutMs": 20000})).await;
        answer["text"].as_str().unwrap_or_default().to_owned()
    }
    async fn eval(&mut self, expr: &str) -> Value {
        self.browser.run(json!({"cmd": "eval", "expr": expr})).await["value"].clone()
    }
    async fn screenshot(&mut self, file: &str) -> PathBuf {
        self.browser.screenshot(file).await
    }
    /// Nothing went wrong in the page: no uncaught error, no CSP violation, no console error but
    /// the ones `allowed` names (a 404 the console expects, such as a QR code not there yet).
    async fn clean(&mut self, allowed: &[&str]) {
        let diagnostics = self.browser.run(json!({"cmd": "diagnostics", "clear": true})).await;
        assert_eq!(diagnostics["pageErrors"], json!([]), "{diagnostics}");
        assert_eq!(diagnostics["csp"], json!([]), "{diagnostics}");
        assert_eq!(diagnostics["failedRequests"], json!([]), "{diagnostics}");
        let unexpected: Vec<&Value> = diagnostics["httpErrors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter(|e| !allowed.iter().any(|a| e["url"].as_str().is_some_and(|u| u.contains(a))))
            .collect();
        assert!(unexpected.is_empty(), "unexpected HTTP errors: {unexpected:?}\n{diagnostics}");
        let errors: Vec<&Value> = diagnostics["console"]
            .as_array()
            .expect("console")
            .iter()
            .filter(|m| m["type"] == "error" && !m["text"].as_str().is_some_and(|t| t.starts_with("Failed to load resource")))
            .collect();
        assert!(errors.is_empty(), "console errors: {errors:?}");
    }
}

async fn conversation_of(app: &TestApp, token: &str) -> (String, Vec<Value>) {
    let list = app.get("/api/conversations?limit=10", token).await.body;
    let id = list["data"][0]["id"].as_str().expect("a conversation").to_owned();
    let messages = app.get(&format!("/api/conversations/{id}/messages?limit=100"), token).await.body;
    (id, messages["data"].as_array().expect("messages").clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_runs_its_inbox_from_the_console_in_a_real_browser() {
    use base64::Engine;
    if !browser::available() {
        return;
    }
    let telegram = FakeProvider::start().await;
    let script = WhatsAppScript::new();
    let telegram_url = telegram.base_url();
    let app = spawn_app_with_connectors(
        Db::Sqlite,
        move |config| config.providers.telegram_api_base_url = telegram_url,
        Connectors { whatsapp: script.connector(), ..Default::default() },
    )
    .await;
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser/console");
    let mut me = Person { browser: Browser::launch_console(out).await, base: app.base_url() };

    // A newcomer opens the host and is asked to sign in; the form works from the keyboard.
    let loaded = me.goto("/").await;
    assert_eq!(loaded["status"], 200, "{loaded}");
    me.heading("Sign in to OmniChat").await;
    let order = me.browser.run(json!({"cmd": "focusOrder", "count": 4})).await;
    assert_eq!(order["order"], json!(["Email", "Password", "Sign in", "Create a workspace"]), "{order}");
    me.screenshot("sign-in.png").await;

    // Sign up: a workspace and its owner.
    me.link("Create a workspace").await;
    me.heading("Create your workspace").await;
    me.fill("Workspace name", "Acme Shoes").await;
    me.fill("Your name", "Olivia Owner").await;
    me.fill("Email", "olivia@acme-shoes.io").await;
    me.fill("Password", "correct horse battery").await;
    me.button("Create workspace").await;
    me.sees(".topbar", "Acme Shoes").await;
    me.sees(".conv-list", "No conversations").await;
    let login = app.login("olivia@acme-shoes.io", "correct horse battery").await;
    assert_eq!(login.status, StatusCode::OK, "the account the console made signs in: {}", login.body);
    let token = login.body["accessToken"].as_str().expect("token").to_owned();

    // Add a Telegram bot channel from the form its config schema builds.
    me.link("Channels").await;
    me.heading("Channels").await;
    me.link("Add channel").await;
    me.choose("Type", "TELEGRAM_BOT").await;
    me.fill("Name", "Acme bot").await;
    me.fill("botToken (required)", "123:SECRET").await;
    me.button("Add channel").await;
    me.heading("Acme bot").await;
    let channel_id = me.eval("location.hash.split('/')[2]").await.as_str().expect("id").to_owned();
    let webhook = me.browser.run(json!({"cmd": "value", "label": "Webhook URL"})).await;
    assert_eq!(webhook["value"], format!("{}/api/webhooks/{channel_id}", app.base_url()));
    let stored = app.get(&format!("/api/channels/{channel_id}"), &token).await.body;
    assert_eq!(stored["config"]["botToken"], "********", "the secret was stored, and is not shown");
    let page_text = me.browser.run(json!({"cmd": "text", "css": "main"})).await;
    assert!(!page_text["text"].as_str().expect("text").contains("123:SECRET"), "the token is never shown again");

    // A field stored behind the page's back (a connect generates Telegram's secretToken) survives
    // a rename and a new bot token from the settings form (the config is sent over a fresh read).
    let secret = app
        .patch(
            &format!("/api/channels/{channel_id}"),
            &token,
            json!({"config": {"botToken": "********", "secretToken": "hook-secret"}}),
        )
        .await;
    assert_eq!(secret.status, StatusCode::OK, "{}", secret.body);
    me.fill("Name", "Acme Shoes bot").await;
    me.fill("botToken (required)", "123:ROTATED").await;
    me.button("Save").await;
    me.sees(".toasts", "Saved").await;
    assert_eq!(app.get(&format!("/api/channels/{channel_id}"), &token).await.body["name"], "Acme Shoes bot");
    let raw = app.db.raw_channel_config(channel_id.parse().expect("uuid")).await;
    assert!(raw.contains("secretToken") && raw.contains("botToken"), "both secrets kept: {raw}");
    assert!(!raw.contains("hook-secret") && !raw.contains("123:ROTATED"), "sealed at rest: {raw}");

    // A customer writes: the conversation appears live, unread.
    me.link("Inbox").await;
    me.sees(".conv-list", "No conversations").await;
    let update = telegram_text(1, 11, 4242, "Where is my order #1234?");
    assert_eq!(app.telegram_update(&channel_id, &update, Some("hook-secret")).await.status, StatusCode::OK);
    me.sees(".conv-list", "Bob Builder").await;
    me.browser.run(json!({"cmd": "waitVisible", "css": ".conv-list .unread", "hasText": "1"})).await;

    // Open it: the thread shows the message and the unread marker goes.
    me.browser.run(json!({"cmd": "click", "css": ".conv-list a", "hasText": "Bob Builder"})).await;
    me.sees(".messages", "Where is my order #1234?").await;
    me.browser.run(json!({"cmd": "waitHidden", "css": ".conv-list .unread"})).await;
    let (conversation_id, _) = conversation_of(&app, &token).await;
    let read = app.get(&format!("/api/conversations/{conversation_id}"), &token).await.body;
    assert_eq!(read["unreadCount"], 0, "opening it marked it read: {read}");

    // A second message arrives while it is open, and the customer is typing.
    let update = telegram_text(2, 12, 4242, "It was due yesterday");
    assert_eq!(app.telegram_update(&channel_id, &update, Some("hook-secret")).await.status, StatusCode::OK);
    me.sees(".messages", "It was due yesterday").await;
    eventually(WAIT, "the open conversation to be read again", || async {
        let read = app.get(&format!("/api/conversations/{conversation_id}"), &token).await.body;
        (read["unreadCount"] == 0).then_some(())
    })
    .await;

    // Reply: the fake Bot API gets it, and the thread shows it sent.
    me.fill("Reply", "It ships today, sorry for the wait!").await;
    me.browser.run(json!({"cmd": "press", "label": "Reply", "key": "Enter"})).await;
    let sent = telegram.wait_for(1, WAIT).await;
    assert_eq!(sent[0].path, "/bot123:ROTATED/sendMessage", "the token typed in the settings form");
    assert_eq!(sent[0].body, json!({"chat_id": "4242", "text": "It ships today, sorry for the wait!"}));
    me.browser
        .run(json!({"cmd": "waitAttr", "css": ".msg.outbound", "nth": "last", "name": "data-status", "value": "SENT", "timeoutMs": 20000}))
        .await;
    me.sees(".msg.outbound >> nth=-1", "SENT").await;

    // Assign it to me; snooze it (it leaves the open list) and reopen it.
    let my_id = login.body["user"]["id"].as_str().expect("user id").to_owned();
    me.choose("Assign to", &my_id).await;
    me.sees(".conv-list", "→ me").await;
    let assigned = app.get(&format!("/api/conversations/{conversation_id}"), &token).await.body;
    assert_eq!(assigned["assigneeId"], my_id.as_str());
    me.button("Snooze").await;
    me.sees(".conv-list", "No conversations").await;
    me.button("Reopen").await;
    me.sees(".conv-list", "Bob Builder").await;
    let reopened = app.get(&format!("/api/conversations/{conversation_id}"), &token).await.body;
    assert_eq!(reopened["status"], "OPEN");
    me.screenshot("inbox.png").await;

    // A reply the provider refuses for good becomes a dead letter, retried from the queue page.
    telegram.script([(403, json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}))]);
    me.fill("Reply", "Are you still there?").await;
    me.button("Send").await;
    me.browser
        .run(json!({"cmd": "waitAttr", "css": ".msg.outbound", "nth": "last", "name": "data-status", "value": "FAILED", "timeoutMs": 20000}))
        .await;
    me.sees(".msg.outbound >> nth=-1", "bot was blocked").await;
    me.link("Queue").await;
    me.heading("Queue").await;
    me.sees(".table-wrap", "bot was blocked by the user").await;
    me.screenshot("queue-dead-letter.png").await;
    me.browser.run(json!({"cmd": "click", "role": "button", "name": "Retry"})).await;
    me.sees(".table-wrap", "No dead letters").await;
    let (_, messages) = conversation_of(&app, &token).await;
    let retried = messages.iter().find(|m| m["text"] == "Are you still there?").expect("the retried reply");
    let retried_id = retried["id"].as_str().expect("id").to_owned();
    app.message_with_status(&omnichat_tests::Session::from_auth(&login.body), &conversation_id, &retried_id, "SENT").await;
    assert_eq!(telegram.requests().len(), 3, "sent, refused, sent again");
    me.clean(&[]).await;

    // WhatsApp: the QR code appears, is replaced by the next one, and pairing connects it.
    me.link("Channels").await;
    me.link("Add channel").await;
    me.choose("Type", "WHATSAPP").await;
    me.fill("Name", "Shop WhatsApp").await;
    me.button("Add channel").await;
    me.heading("Shop WhatsApp").await;
    let qr = json!({"cmd": "waitAttr", "css": ".qr-box img", "name": "data-version"});
    let first = me.browser.run(qr.clone()).await["value"].clone();
    let loaded = me
        .eval(
            "(async () => { const img = document.querySelector('.qr-box img'); await img.decode(); return img.naturalWidth; })()",
        )
        .await;
    assert!(loaded.as_u64().is_some_and(|w| w > 100), "the QR image decoded: {loaded}");
    let first_src = me.browser.run(json!({"cmd": "attr", "css": ".qr-box img", "name": "src"})).await["value"].clone();
    let channels = app.get("/api/channels", &token).await.body;
    let wa = channels.as_array().expect("channels").iter().find(|c| c["type"] == "WHATSAPP").expect("wa").clone();
    let qr_svg = format!("/api/channels/{}/whatsapp/qr.svg", wa["id"].as_str().expect("id"));
    let svg_now =
        || async { app.client.get(app.url(&qr_svg)).bearer_auth(&token).send().await.expect("qr").text().await.expect("svg") };
    let first_svg = svg_now().await;
    me.screenshot("whatsapp-qr.png").await;
    script.emit(WaEvent::Qr { code: "2@the-next-qr-code".into(), ttl: Duration::from_secs(20) });
    let mut next = qr.clone();
    next["changedFrom"] = first.clone();
    me.browser.run(next).await;
    let next_src = me.browser.run(json!({"cmd": "attr", "css": ".qr-box img", "name": "src"})).await["value"].clone();
    assert_ne!(first_src, next_src, "a new image replaced the old one");
    // What the page shows, pixel for pixel, is the current code's image and not the first one's.
    let current_svg = svg_now().await;
    assert_ne!(current_svg, first_svg);
    let same_as = |svg: &str| {
        let data = base64::engine::general_purpose::STANDARD.encode(svg);
        format!(
            "(async () => {{ const shown = document.querySelector('.qr-box img'); const other = new Image(); \
             other.src = 'data:image/svg+xml;base64,{data}'; await other.decode(); await shown.decode(); \
             const px = (img) => {{ const c = document.createElement('canvas'); c.width = c.height = 200; const x = c.getContext('2d'); \
             x.drawImage(img, 0, 0, 200, 200); return Array.from(x.getImageData(0, 0, 200, 200).data).join(); }}; \
             return px(shown) === px(other); }})()"
        )
    };
    assert_eq!(me.eval(&same_as(&current_svg)).await, true, "the page shows the current code");
    assert_eq!(me.eval(&same_as(&first_svg)).await, false, "not the first one");
    assert_eq!(app.get(&qr_svg.replace(".svg", ""), &token).await.body["qr"], "2@the-next-qr-code");
    script.pair().await;
    me.sees(".qr-box", "Connected").await;
    me.sees(".page-header", "CONNECTED").await;
    me.screenshot("whatsapp-connected.png").await;
    me.clean(&["/whatsapp/qr.svg"]).await;

    // Invite a user: the one-time password is shown once; they sign in with it.
    me.link("Users").await;
    me.heading("Users").await;
    me.fill("Email", "alex@acme-shoes.io").await;
    me.fill("Name", "Alex Agent").await;
    me.choose("Role", "agent").await;
    me.button("Invite").await;
    me.browser.run(json!({"cmd": "waitVisible", "role": "dialog"})).await;
    let password = me.browser.run(json!({"cmd": "value", "label": "Temporary password"})).await["value"]
        .as_str()
        .expect("password")
        .to_owned();
    assert!(password.len() >= 12, "{password}");
    me.button("Done").await;
    me.sees(".table-wrap", "alex@acme-shoes.io").await;
    me.button("Sign out").await;
    me.heading("Sign in to OmniChat").await;
    me.fill("Email", "alex@acme-shoes.io").await;
    me.fill("Password", &password).await;
    me.browser.run(json!({"cmd": "press", "label": "Password", "key": "Enter"})).await;
    me.sees(".me", "agent").await;
    me.sees(".conv-list", "Bob Builder").await;
    me.link("Users").await;
    me.sees("main", "Only owners and admins manage users.").await;

    // On a phone: the inbox list, then the thread on its own, nothing wider than the screen.
    me.browser.run(json!({"cmd": "viewport", "width": 390, "height": 844})).await;
    me.link("Inbox").await;
    me.browser.run(json!({"cmd": "click", "css": ".conv-list a", "hasText": "Bob Builder"})).await;
    me.sees(".messages", "It ships today").await;
    let overflow = me.eval("document.documentElement.scrollWidth - window.innerWidth").await;
    assert_eq!(overflow, 0, "no horizontal scrolling on a phone");
    me.screenshot("inbox-phone.png").await;
    me.clean(&[]).await;

    // Another tenant's console shows none of this.
    me.browser.run(json!({"cmd": "newSession"})).await;
    let other = app.register("someone@else.io").await;
    assert_eq!(app.get("/api/conversations", &other.access_token).await.body["data"], json!([]));
    me.goto("/").await;
    me.heading("Sign in to OmniChat").await;
    me.fill("Email", "someone@else.io").await;
    me.fill("Password", omnichat_tests::PASSWORD).await;
    me.button("Sign in").await;
    me.sees(".conv-list", "No conversations").await;
    me.link("Channels").await;
    me.sees("main", "No channels yet").await;
    me.clean(&[]).await;
}

/// A 1×1 PNG: what the account's photo "is", so the browser has a real image to decode.
const PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_account_an_ai_agent_and_a_colleague_in_the_console() {
    use base64::Engine;
    use omnichat_tests::socket::SocketClient;
    use omnichat_tests::telegram::{TelegramScript, private_message};

    if !browser::available() {
        return;
    }
    let script = TelegramScript::new();
    script.update(|s| s.password = Some(("hunter2".into(), "the usual".into())));
    // Access tokens of 62 s: the console refreshes them in the background after 5 s.
    let app = spawn_app_with_connectors(
        Db::Sqlite,
        |config| {
            config.bridges.telegram_api = Some((12345, "0123456789abcdef".to_owned().into()));
            config.agents.openai_base_url = None;
            config.agents.openai_api_key = None;
            config.jwt.access_ttl = Duration::from_secs(62);
        },
        Connectors { telegram: script.connector(), ..Default::default() },
    )
    .await;
    let owner = app.register("owner@tg-console.io").await;
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser/console");
    let mut me = Person { browser: Browser::launch_console(out).await, base: app.base_url() };
    me.goto("/").await;
    me.fill("Email", "owner@tg-console.io").await;
    me.fill("Password", omnichat_tests::PASSWORD).await;
    me.button("Sign in").await;
    me.sees(".conv-list", "No conversations").await;
    let first_token = me.eval("JSON.parse(localStorage.getItem('omnichat.session')).accessToken").await;

    // Telegram user account: phone -> code -> two-step password.
    me.link("Channels").await;
    me.link("Add channel").await;
    me.choose("Type", "TELEGRAM_USER").await;
    me.fill("Name", "Support account").await;
    me.fill("Phone number", "+4915112345678").await;
    me.button("Add channel").await;
    me.heading("Support account").await;
    me.fill("Login code", "24680").await;
    me.button("Confirm code").await;
    me.sees("main", "the usual").await;
    me.fill("Two-step verification password", "hunter2").await;
    me.button("Sign in").await;
    me.sees("main", "Signed in").await;
    me.sees(".page-header", "CONNECTED").await;
    me.screenshot("telegram-user-connected.png").await;

    // An AI agent (the echo fallback: no model configured) made on the agents page.
    me.link("Agents").await;
    me.heading("Agents").await;
    me.button("New agent").await;
    me.fill("Name", "Shopbot").await;
    me.fill("System prompt", "You answer for Acme Shoes.").await;
    me.button("Create agent").await;
    me.sees(".table-wrap", "Shopbot").await;
    let agents = app.get("/api/agents", &owner.access_token).await.body;
    assert_eq!(agents[0]["name"], "Shopbot", "{agents}");
    assert_eq!(agents[0]["systemPrompt"], "You answer for Acme Shoes.");
    me.screenshot("agents.png").await;

    // A photo from a customer: shown in the thread through the media route; the agent answers.
    me.link("Inbox").await;
    script.update(|s| {
        s.media = base64::engine::general_purpose::STANDARD.decode(PIXEL_PNG).expect("png");
        let mut message = private_message(1, 5003, "my shoe came like this", false);
        message.attachments =
            vec![json!({"kind": "image", "url": null, "mimeType": "image/png", "fileName": "shoe.png", "size": 70,
            "extra": {"photoId": "5123", "accessHash": "-77", "fileReference": "AQID", "dcId": 2, "thumbSize": "y"}})];
        s.feed.push(message);
    });
    me.sees(".conv-list", "User 5003").await;
    me.browser.run(json!({"cmd": "click", "css": ".conv-list a", "hasText": "User 5003"})).await;
    me.sees(".messages", "my shoe came like this").await;
    let decoded = me
        .eval("(async () => { for (let i = 0; i < 200; i++) { const img = document.querySelector('.msg img.media'); if (img && img.complete && img.naturalWidth) return img.naturalWidth; await new Promise(r => setTimeout(r, 50)); } return 0; })()")
        .await;
    assert_eq!(decoded, 1, "the photo came through the media route and decoded");
    me.sees(".messages", "Echo: my shoe came like this").await;
    me.browser
        .run(json!({"cmd": "waitAttr", "css": ".msg.outbound", "nth": "last", "name": "data-status", "value": "SENT", "timeoutMs": 20000}))
        .await;
    me.sees(".msg.outbound >> nth=-1", "AI agent").await;
    me.sees(".details", "REPLIED").await;
    me.sees(".details", "Shopbot").await;

    // Pause the bot on this conversation, then resume it.
    me.button("Pause bot").await;
    me.sees(".thread-head", "PAUSED").await;
    let conversations = app.get("/api/conversations", &owner.access_token).await.body;
    let conversation_id = conversations["data"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(conversations["data"][0]["botStatus"], "PAUSED");
    me.button("Resume bot").await;
    me.sees(".thread-head", "ACTIVE").await;

    // A colleague typing on the same conversation shows in the thread.
    let colleague = app
        .post(
            "/api/users",
            Some(&owner.access_token),
            json!({"email": "colleague@tg-console.io", "name": "Casey", "password": "another good password"}),
        )
        .await;
    assert_eq!(colleague.status, StatusCode::CREATED, "{}", colleague.body);
    let login = app.login("colleague@tg-console.io", "another good password").await;
    let mut socket = SocketClient::connect(&app.base_url(), login.body["accessToken"].as_str(), &[]).await;
    socket.ready().await;
    socket.emit("typing", json!({"conversationId": conversation_id, "typing": true}), true).await;
    me.sees(".typing", "Casey is typing").await;
    me.screenshot("inbox-agent-reply.png").await;

    // The access token was refreshed in the background, and the page kept working on the new one.
    let refreshed = me
        .eval(&format!(
            "(async () => {{ for (let i = 0; i < 400; i++) {{ if (JSON.parse(localStorage.getItem('omnichat.session')).accessToken !== {first_token}) return true; await new Promise(r => setTimeout(r, 50)); }} return false; }})()"
        ))
        .await;
    assert_eq!(refreshed, true, "the access token was refreshed in the background");
    // The page's requests now go with the new token: a page of data loads, and the server takes it.
    let accepted = me
        .eval("(async () => (await fetch('/api/auth/me', {headers: {authorization: 'Bearer ' + JSON.parse(localStorage.getItem('omnichat.session')).accessToken}})).status)()")
        .await;
    assert_eq!(accepted, 200);
    me.link("Channels").await;
    me.sees("main", "Support account").await;
    me.link("Inbox").await;
    me.browser.run(json!({"cmd": "click", "css": ".conv-list a", "hasText": "User 5003"})).await;
    script.incoming(2, 5003, "thanks!");
    me.sees(".messages", "thanks!").await;

    // A team: Shopbot routes, a second agent (made over the API) handles returns.
    let returns = app.post("/api/agents", Some(&owner.access_token), json!({"name": "Returns"})).await;
    assert_eq!(returns.status, StatusCode::CREATED, "{}", returns.body);
    me.link("Agents").await;
    me.sees(".table-wrap", "Returns").await;
    me.button("New team").await;
    me.fill("Name", "Front desk").await;
    me.browser.run(json!({"cmd": "selectOption", "label": "Router agent", "option": "Shopbot"})).await;
    me.browser.run(json!({"cmd": "check", "label": "Returns", "checked": true})).await;
    me.fill("What Returns handles", "returns and refunds").await;
    me.button("Create team").await;
    me.sees("main", "Front desk").await;
    let teams = app.get("/api/agent-teams", &owner.access_token).await.body;
    assert_eq!(teams[0]["name"], "Front desk", "{teams}");
    assert_eq!(teams[0]["routerAgentId"], agents[0]["id"]);
    assert_eq!(
        teams[0]["members"],
        json!([{"agentId": returns.body["id"], "description": "returns and refunds", "position": 0}])
    );
    me.clean(&["/api/telegram/user/confirm"]).await;
}
