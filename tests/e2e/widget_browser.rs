//! The widget in a real browser (Debian's chromium, driven by playwright-core): a page on another
//! origin, under a strict CSP, embeds `/widget.js` with its one tag; a visitor chats with an
//! agent who answers through the send API. Screenshots are written to
//! `target/tmp/browser/widget/` (looked at when the widget changes).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use omnichat_tests::browser::{self, Browser};
use omnichat_tests::socket::SocketClient;
use omnichat_tests::widget::create_widget;
use omnichat_tests::{Db, eventually, spawn_app};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// A site of its own (another port: another origin) whose page embeds the widget exactly as
/// the README says, under the CSP a careful site has: no inline script or style anywhere.
async fn serve_shop(host: SocketAddr, channel_id: &str) -> SocketAddr {
    let page = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>Acme shop</title><link rel=stylesheet href=/shop.css></head><body><h1>Acme shop</h1>\
         <p>Fine things, shipped fast.</p><button>A button of the shop</button>\
         <script src=\"http://{host}/widget.js\" data-channel=\"{channel_id}\" async></script></body></html>"
    );
    let csp = format!(
        "default-src 'none'; script-src http://{host}; connect-src http://{host} ws://{host}; img-src http://{host} data:; \
         style-src 'self'; base-uri 'none'; form-action 'none'"
    );
    // The shop's own CSS styles every button red: none of it may reach the widget.
    let css = "body{font-family:serif;margin:2rem}button{background:rgb(255,0,0)!important;color:#fff}";
    let app = Router::new()
        .route(
            "/",
            get(move || {
                let headers = [(CONTENT_TYPE, "text/html; charset=utf-8".to_owned()), (CONTENT_SECURITY_POLICY, csp.clone())];
                std::future::ready((headers, page.clone()).into_response())
            }),
        )
        .route("/shop.css", get(move || async move { ([("content-type", "text/css")], css).into_response() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the shop");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn shadow(expr: &str) -> Value {
    json!({"cmd": "eval", "expr": format!("(() => {{ const root = document.querySelector('#omnichat-widget').shadowRoot; return {expr}; }})()")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_chats_with_an_agent_in_a_real_browser() {
    if !browser::available() {
        return;
    }
    let app = spawn_app(Db::Sqlite).await;
    let owner = app.register("browser@acme.io").await;
    // The shop's origin is known once it listens: the channel allows it right after.
    let channel = create_widget(&app, &owner, json!({})).await;
    let shop = serve_shop(app.addr, &channel).await;
    let shop_origin = format!("http://{shop}");
    let config = json!({"config": {"allowedOrigins": [shop_origin], "title": "Acme support", "greeting": "Hi! How can we help?",
        "color": "#0a7d4f", "offlineMessage": "We reply within a day.", "preChatForm": {"name": "required", "email": "optional"}}});
    let updated = app.patch(&format!("/api/channels/{channel}"), &owner.access_token, config).await;
    assert!(updated.status.is_success(), "{}", updated.body);

    let mut inbox = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[&channel]).await;
    inbox.ready().await;
    let mut browser = Browser::launch(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser/widget")).await;

    let loaded = browser.run(json!({"cmd": "goto", "url": format!("{shop_origin}/")})).await;
    if loaded["ready"] != true {
        let diagnostics = browser.run(json!({"cmd": "diagnostics"})).await;
        panic!("the widget did not start: {loaded}\n{diagnostics}");
    }
    browser.screenshot("widget-closed.png").await;
    browser.run(json!({"cmd": "open"})).await;
    let greeting = browser.run(shadow("root.querySelector('[data-omnichat=greeting]')?.textContent")).await;
    assert!(greeting["value"].as_str().is_some_and(|g| g.contains("How can we help")), "{greeting}");
    let form = browser.run(shadow("!!root.querySelector('[data-omnichat=prechat]')")).await;
    assert_eq!(form["value"], true, "the pre-chat form asks for the name first");
    browser.run(json!({"cmd": "prechat", "name": "Ann Browser", "email": "ann@example.com"})).await;

    let sent = browser.run(json!({"cmd": "send", "text": "Hello from a real browser"})).await;
    assert_ne!(sent["status"], "failed", "{sent}");
    let created = inbox.event("message-created", WAIT).await.unwrap_or_else(|| panic!("no message-created: {:?}", inbox.seen));
    assert_eq!(created["message"]["text"], "Hello from a real browser");
    let conversation_id = created["conversationId"].as_str().expect("conversation").to_owned();
    let listed = app.get(&format!("/api/conversations?channelInstanceId={channel}"), &owner.access_token).await;
    assert_eq!(listed.body["data"][0]["id"], conversation_id.as_str());
    let customer = app.get(&format!("/api/customers?channelInstanceId={channel}"), &owner.access_token).await;
    assert_eq!(customer.body["data"][0]["name"], "Ann Browser");

    // The agent types, then answers with text that must never become markup.
    inbox.emit("typing", json!({"conversationId": conversation_id, "typing": true}), true).await;
    browser.run(json!({"cmd": "waitTyping", "visible": true})).await;
    let answer = "It ships today <img src=x onerror=alert(1)> track it at https://example.com/track?id=7";
    let reply = app
        .post("/api/messages/send", Some(&owner.access_token), json!({"conversationId": conversation_id, "text": answer}))
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    let reply_id = reply.body["id"].as_str().expect("reply id").to_owned();
    browser.run(json!({"cmd": "waitMessage", "text": "It ships today", "from": "agent"})).await;
    let markup = browser
        .run(shadow("[...root.querySelectorAll('[data-omnichat=message][data-from=agent] [data-omnichat=message-text]')].map(t => ({imgs: t.querySelectorAll('img').length, links: [...t.querySelectorAll('a')].map(a => a.href + '|' + a.rel), text: t.textContent}))"))
        .await;
    let shown = &markup["value"][0];
    assert_eq!(shown["imgs"], 0, "agent text is text: {markup}");
    assert!(shown["text"].as_str().is_some_and(|t| t.contains("<img src=x")), "{markup}");
    let link = shown["links"][0].as_str().unwrap_or_default();
    assert!(link.starts_with("https://example.com/track?id=7|") && link.contains("noopener"), "a safe link: {markup}");
    // The window is open and visible: the reply is seen.
    app.message_with_status(&owner, &conversation_id, &reply_id, "READ").await;
    let open = browser.screenshot("widget-open.png").await;
    assert!(std::fs::metadata(&open).map(|m| m.len() > 5_000).unwrap_or(false), "a screenshot at {}", open.display());

    // An image, uploaded through the widget's file input, shown inline.
    let pixel = browser.out_dir.join("checker.png");
    std::fs::write(&pixel, include_bytes!("../fixtures/checker.png")).expect("write the image");
    let attached = browser.run(json!({"cmd": "attach", "path": pixel.display().to_string()})).await;
    assert_eq!(attached["kind"], "image", "{attached}");
    browser.run(json!({"cmd": "waitImage", "from": "visitor"})).await;
    let stored = eventually(WAIT, "the image message in the inbox", || async {
        let messages = app.get(&format!("/api/conversations/{conversation_id}/messages"), &owner.access_token).await;
        messages.body["data"].as_array()?.iter().find(|m| m["attachments"][0]["kind"] == "image").cloned()
    })
    .await;
    assert!(
        stored["attachments"][0]["url"].as_str().is_some_and(|u| u.starts_with(&format!("/api/widget/{channel}/attachments/")))
    );

    // A reload keeps the history (the token is in localStorage, never in a URL).
    browser.run(json!({"cmd": "reload"})).await;
    browser.run(json!({"cmd": "open"})).await;
    let history = browser.run(json!({"cmd": "messages"})).await;
    let texts: Vec<&str> = history["messages"].as_array().expect("messages").iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.iter().any(|t| t.contains("Hello from a real browser")), "{history}");
    assert!(texts.iter().any(|t| t.contains("It ships today")), "{history}");
    let stored_token =
        browser.run(json!({"cmd": "eval", "expr": format!("localStorage.getItem('omnichat:{channel}:token')")})).await;
    assert!(stored_token["value"].as_str().is_some_and(|t| t.split('.').count() == 3), "{stored_token}");
    let url = browser.run(json!({"cmd": "eval", "expr": "location.href"})).await;
    assert!(!url["value"].as_str().unwrap_or_default().contains("token"));

    // The shop's CSS stays out of the widget, and the widget's out of the shop.
    let bubble = browser.run(shadow("getComputedStyle(root.querySelector('[data-omnichat=bubble]')).backgroundColor")).await;
    assert_ne!(bubble["value"], "rgb(255, 0, 0)", "the shop's button style leaked into the widget");
    let shop_button = browser
        .run(json!({"cmd": "eval", "expr": "getComputedStyle(document.querySelector('body > button')).backgroundColor"}))
        .await;
    assert_eq!(shop_button["value"], "rgb(255, 0, 0)");
    let globals = browser.run(json!({"cmd": "eval", "expr": "[typeof window.io, typeof window.OmniChat.open]"})).await;
    assert_eq!(globals["value"], json!(["undefined", "function"]), "socket.io stays inside the widget");

    // Escape closes the window and gives the focus back to the bubble.
    let closed = browser.run(json!({"cmd": "close"})).await;
    assert_eq!(closed["focus"], "bubble", "{closed}");

    // A reply while the window is closed: the unread badge counts it.
    let later = app
        .post(
            "/api/messages/send",
            Some(&owner.access_token),
            json!({"conversationId": conversation_id, "text": "Anything else?"}),
        )
        .await;
    assert!(later.status.is_success(), "{}", later.body);
    let mut badge = Value::Null;
    for _ in 0..100 {
        badge = browser.run(json!({"cmd": "badge"})).await;
        if badge["visible"] == true && badge["text"] == "1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((&badge["visible"], &badge["text"]), (&json!(true), &json!("1")), "{badge}");

    // The JS API.
    browser.run(json!({"cmd": "eval", "expr": "window.OmniChat.open(); window.OmniChat.close()"})).await;
    let closed = browser.run(shadow("root.querySelector('[data-omnichat=window]').getAttribute('data-open')")).await;
    assert_eq!(closed["value"], "false");
    browser.run(json!({"cmd": "eval", "expr": "window.OmniChat.toggle()"})).await;
    let reopened = browser.run(shadow("root.querySelector('[data-omnichat=window]').getAttribute('data-open')")).await;
    assert_eq!(reopened["value"], "true");

    // A forged identity is refused, from this very page.
    let forged = browser
        .run(json!({"cmd": "eval", "expr": format!(
            "fetch('{}/api/widget/{channel}/sessions', {{method: 'POST', headers: {{'content-type': 'application/json'}}, \
             body: JSON.stringify({{identifier: 'ceo@acme.io', identifierHash: '00'.repeat(32)}})}}).then(r => r.status)",
            app.base_url())}))
        .await;
    assert_eq!(forged["value"], 401);

    // Another tab's reset() (its storage event) makes this tab follow: a new visitor, nothing shown
    // of the last one, and the old token never written back.
    let key = format!("omnichat:{channel}:token");
    let before = browser.run(json!({"cmd": "eval", "expr": format!("localStorage.getItem('{key}')")})).await;
    browser
        .run(json!({"cmd": "eval", "expr": format!(
            "localStorage.removeItem('{key}'); window.dispatchEvent(new StorageEvent('storage', {{key: '{key}', newValue: null}})); true")}))
        .await;
    let mut shown = usize::MAX;
    for _ in 0..100 {
        let history = browser.run(json!({"cmd": "messages"})).await;
        shown = history["messages"].as_array().map(Vec::len).unwrap_or(usize::MAX);
        if shown == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown, 0, "the reset visitor's messages are gone");
    let after = browser.run(json!({"cmd": "eval", "expr": format!("localStorage.getItem('{key}')")})).await;
    assert!(after["value"].is_string() && after["value"] != before["value"], "a new visitor's token: {after}");

    // Nothing broke the page's CSP, and the page logged no error.
    let diagnostics = browser.run(json!({"cmd": "diagnostics"})).await;
    assert_eq!(diagnostics["csp"], json!([]), "CSP violations: {diagnostics}");
    assert_eq!(diagnostics["pageErrors"], json!([]), "page errors: {diagnostics}");

    // On a phone the window takes the screen.
    browser.run(json!({"cmd": "viewport", "width": 390, "height": 760})).await;
    browser.run(json!({"cmd": "reload"})).await;
    browser.run(json!({"cmd": "open"})).await;
    let width = browser.run(shadow("root.querySelector('[data-omnichat=window]').getBoundingClientRect().width")).await;
    assert!(width["value"].as_f64().is_some_and(|w| w >= 380.0), "full width on a phone: {width}");
    browser.screenshot("widget-phone.png").await;

    // The same page on an origin the widget does not allow gets no session and shows nothing.
    let foreign =
        browser.run(json!({"cmd": "goto", "url": format!("http://localhost:{}/", shop.port()), "timeoutMs": 8000})).await;
    assert_eq!(foreign["ready"], false, "{foreign}");
    assert_eq!(foreign["error"]["status"], 403, "{foreign}");
    let bubble = browser.run(json!({"cmd": "eval", "expr": "!!document.querySelector('#omnichat-widget')?.shadowRoot?.querySelector('[data-omnichat=bubble]')"})).await;
    assert_eq!(bubble["value"], false, "nothing rendered for a foreign origin");
    browser.run(json!({"cmd": "quit"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_is_small_cacheable_and_the_demo_page_embeds_it() {
    let app = spawn_app(Db::Sqlite).await;
    let gzipped = app.client.get(app.url("/widget.js")).header("accept-encoding", "gzip").send().await.expect("script");
    assert_eq!(gzipped.status(), 200);
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["cross-origin-resource-policy"], "cross-origin", "loadable from any site");
    assert!(gzipped.headers()["content-type"].to_str().expect("type").starts_with("text/javascript"));
    let etag = gzipped.headers()["etag"].to_str().expect("etag").to_owned();
    let size = gzipped.bytes().await.expect("body").len();
    assert!(size <= 40 * 1024, "widget.js is {size} bytes gzipped; the budget is 40 KB");
    let again = app.client.get(app.url("/widget.js")).header("if-none-match", &etag).send().await.expect("script");
    assert_eq!(again.status(), 304);
    let plain = app.client.get(app.url("/widget.js")).send().await.expect("script").text().await.expect("text");
    for forbidden in ["eval(", "new Function(", "innerHTML ="] {
        assert!(!plain.contains(forbidden), "widget.js uses {forbidden}");
    }

    // The vendored socket.io-client is the one tests/js pins, byte for byte.
    let vendored = include_str!("../../host/assets/vendor/socket.io.min.js");
    let pinned = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js/node_modules/socket.io-client/dist/socket.io.min.js");
    if let Ok(pinned) = std::fs::read_to_string(&pinned) {
        assert_eq!(vendored, pinned, "host/assets/vendor/socket.io.min.js differs from the npm package tests/js pins");
    }

    let owner = app.register("demo@acme.io").await;
    let channel = create_widget(&app, &owner, json!({})).await;
    let demo = app.client.get(app.url(&format!("/widget/demo?channel={channel}"))).send().await.expect("demo");
    assert_eq!(demo.status(), 200);
    assert!(demo.headers()["content-security-policy"].to_str().expect("csp").contains("script-src 'self'"));
    let html = demo.text().await.expect("html");
    assert!(html.contains(&format!("data-channel=\"{channel}\"")), "{html}");
    let bad = app.client.get(app.url("/widget/demo?channel=%3Cscript%3E")).send().await.expect("demo");
    assert_eq!(bad.status(), 422);
}
