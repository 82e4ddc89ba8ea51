//! Operations: Prometheus metrics at `/metrics` (parsed as the text format, counters moving with
//! traffic, the optional token), the OpenAPI document (a schema and an example for every body),
//! and Swagger UI at `/api/docs` in a real browser with nothing fetched from outside the host.

use std::collections::HashMap;
use std::time::Duration;

use omnichat_tests::browser::{self, Browser};
use omnichat_tests::fake::FakeProvider;
use omnichat_tests::{Db, TestApp, eventually, id_of, spawn_app, spawn_app_with, telegram_text};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::on_both_databases;

on_both_databases!(metrics_parse_as_prometheus_text_and_move_with_traffic, the_metrics_token_guards_metrics);

/// Every sample of a scrape: `name{label="value",...}` (labels sorted) -> value.
async fn scrape(app: &TestApp, token: Option<&str>) -> HashMap<String, f64> {
    let mut request = omnichat_tests::http_client().get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let text = response.text().await.expect("body");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format");
    let mut samples = HashMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        labels.sort();
        let value = match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => continue,
        };
        samples.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
    }
    samples
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

async fn metrics_parse_as_prometheus_text_and_move_with_traffic(db: Db) {
    let telegram = FakeProvider::start().await;
    let telegram_url = telegram.base_url();
    let app = spawn_app_with(db, move |config| config.providers.telegram_api_base_url = telegram_url).await;
    let owner = app.register(&format!("owner-{}@shop.io", uuid::Uuid::new_v4().simple())).await;
    let channel =
        app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "12:METRICS"}})).await;
    let channel_id = id_of(&channel).to_string();
    let before = scrape(&app, None).await;

    let update = telegram_text(1, 1, 4242, "count me");
    assert_eq!(app.telegram_update(&channel_id, &update, None).await.status, StatusCode::OK);
    assert_eq!(app.telegram_update(&channel_id, &update, None).await.status, StatusCode::OK);
    let conversation = app.telegram_conversation(&owner, &channel_id, 4242).await;
    let sent = app
        .post("/api/messages/send", Some(&owner.access_token), json!({"conversationId": conversation["id"], "text": "counted"}))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    telegram.wait_for(1, Duration::from_secs(10)).await;

    let stored = r#"omnichat_inbound_messages_total{channel_type="TELEGRAM_BOT",result="stored"}"#;
    let duplicate = r#"omnichat_inbound_messages_total{channel_type="TELEGRAM_BOT",result="duplicate"}"#;
    let webhook =
        r#"omnichat_http_requests_total{method="POST",route="/api/telegram/bot/webhook/:channelInstanceId",status="200"}"#;
    let latency = r#"omnichat_http_request_duration_seconds{method="POST",route="/api/telegram/bot/webhook/:channelInstanceId"}"#;
    let delivered = r#"omnichat_outbound_deliveries_total{channel_type="TELEGRAM_BOT",outcome="sent"}"#;
    let after = eventually(Duration::from_secs(10), "the delivery counted", || async {
        let after = scrape(&app, None).await;
        (value(&after, delivered) > value(&before, delivered)).then_some(after)
    })
    .await;
    assert!(value(&after, stored) >= value(&before, stored) + 1.0, "{stored}");
    assert!(value(&after, duplicate) >= value(&before, duplicate) + 1.0, "{duplicate}");
    assert!(
        value(&after, webhook) >= value(&before, webhook) + 2.0,
        "{webhook}: {:?}",
        after.keys().filter(|k| k.contains("http_requests")).collect::<Vec<_>>()
    );
    assert!(
        value(&after, latency) >= value(&before, latency) + 2.0,
        "{latency}: {:?}",
        after.keys().filter(|k| k.contains("duration")).collect::<Vec<_>>()
    );
    assert!(after.keys().any(|k| k.starts_with("omnichat_plugin_calls_total{") && k.contains(r#"plugin="telegram-bot""#)));
    for gauge in [
        r#"omnichat_queue_jobs{status="PENDING"}"#,
        r#"omnichat_queue_jobs{status="DEAD"}"#,
        "omnichat_queue_oldest_due_age_seconds{}",
        r#"omnichat_socketio_connections{namespace="/"}"#,
        r#"omnichat_bridge_sessions{bridge="WHATSAPP",state="running"}"#,
    ] {
        assert!(after.contains_key(gauge), "{gauge} is exported");
    }
}

async fn the_metrics_token_guards_metrics(db: Db) {
    let app = spawn_app_with(db, |config| config.metrics_token = Some("scrape-secret-1".to_owned().into())).await;
    let http = omnichat_tests::http_client();
    let bare = http.get(app.url("/metrics")).send().await.expect("scrape");
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let wrong = http.get(app.url("/metrics")).bearer_auth("scrape-secret-2").send().await.expect("scrape");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(!scrape(&app, Some("scrape-secret-1")).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_openapi_document_has_schemas_and_examples() {
    let app = spawn_app(Db::Sqlite).await;
    let doc = app.request(reqwest::Method::GET, "/api/openapi.json", None, None).await.body;
    let mut missing = Vec::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let mut bodies: Vec<(String, &Value)> = Vec::new();
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                bodies.extend(content.iter().map(|(t, c)| (format!("request {t}"), c)));
            }
            let responses = operation["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path} documents no response");
            for (status, response) in responses {
                match response["content"].as_object() {
                    Some(content) => bodies.extend(content.iter().map(|(t, c)| (format!("{status} {t}"), c))),
                    None if status == "204" || status.starts_with('3') => {}
                    None => missing.push(format!("{method} {path} {status}: no body")),
                }
            }
            for (what, content) in bodies {
                if content.get("schema").is_none() || (content.get("example").is_none() && content.get("examples").is_none()) {
                    missing.push(format!("{method} {path} {what}"));
                }
            }
        }
    }
    assert!(operations >= 50, "{operations} operations");
    assert!(missing.is_empty(), "without a schema or an example: {missing:#?}");
    for path in ["/api/webhook-subscriptions", "/api/webhook-subscriptions/{id}/deliveries/{deliveryId}/redeliver", "/metrics"] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    let created =
        &doc["paths"]["/api/webhook-subscriptions"]["post"]["responses"]["201"]["content"]["application/json"]["example"];
    assert!(created["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_docs_load_in_a_browser_from_the_host_alone() {
    if !browser::available() {
        return;
    }
    let app = spawn_app(Db::Sqlite).await;
    let base = app.base_url();
    let mut browser = Browser::launch(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser/api-docs")).await;
    let visited = browser.run(json!({"cmd": "visit", "url": format!("{base}/api/docs/")})).await;
    assert_eq!(visited["status"], 200, "{visited}");
    let operations = browser.run(json!({"cmd": "waitSelector", "selector": ".swagger-ui .opblock", "timeoutMs": 30000})).await;
    assert!(operations["count"].as_u64().is_some_and(|n| n >= 50), "{operations}");
    let title =
        browser.run(json!({"cmd": "eval", "expr": "document.querySelector('.swagger-ui .title')?.textContent || ''"})).await;
    assert!(title["value"].as_str().is_some_and(|t| t.contains("OmniChat API")), "{title}");
    browser.screenshot("api-docs.png").await;
    let diagnostics = browser.run(json!({"cmd": "diagnostics"})).await;
    let requests: Vec<&str> = diagnostics["requests"].as_array().expect("requests").iter().filter_map(Value::as_str).collect();
    assert!(requests.iter().any(|url| url.ends_with("/api/openapi.json")), "{requests:?}");
    let outside: Vec<&&str> = requests.iter().filter(|url| !url.starts_with(&base) && !url.starts_with("data:")).collect();
    assert!(outside.is_empty(), "requests outside the host: {outside:?}");
    assert_eq!(diagnostics["pageErrors"], json!([]), "{diagnostics}");
    assert_eq!(diagnostics["failedRequests"], json!([]), "{diagnostics}");
    assert_eq!(diagnostics["httpErrors"], json!([]), "{diagnostics}");
    let csp_errors: Vec<&Value> = diagnostics["console"]
        .as_array()
        .expect("console")
        .iter()
        .filter(|m| m["text"].as_str().is_some_and(|t| t.contains("Content Security Policy")))
        .collect();
    assert!(csp_errors.is_empty(), "{csp_errors:?}");
}
