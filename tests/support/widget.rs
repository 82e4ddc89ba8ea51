//! A website visitor of a WIDGET channel, speaking the visitor API as widget.js does: from a
//! page on `origin`, with the visitor token its session gave.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Reply, Session, TestApp, reply};

/// The origin the test pages are on (allowed by [`create_widget`]'s channels).
pub const SHOP: &str = "https://shop.example.com";

/// A WIDGET channel allowing `SHOP` (and whatever `config` adds).
pub async fn create_widget(app: &TestApp, session: &Session, config: Value) -> String {
    let mut full = json!({"allowedOrigins": [SHOP], "title": "Acme support", "greeting": "Hi! How can we help?"});
    if let (Some(base), Some(extra)) = (full.as_object_mut(), config.as_object()) {
        base.extend(extra.clone());
    }
    let channel = app.create_channel(session, json!({"type": "WIDGET", "name": "Website", "config": full})).await;
    channel["id"].as_str().expect("channel id").to_owned()
}

pub struct Visitor<'a> {
    pub app: &'a TestApp,
    pub channel_id: String,
    pub origin: String,
    pub token: Option<String>,
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp, channel_id: &str) -> Self {
        Self { app, channel_id: channel_id.to_owned(), origin: SHOP.to_owned(), token: None }
    }

    pub fn path(&self, action: &str) -> String {
        format!("/api/widget/{}/{action}", self.channel_id)
    }

    /// A visitor API call with this visitor's origin and token.
    pub async fn call(&self, method: Method, action: &str, body: Option<Value>) -> Reply {
        let mut request = self.app.client.request(method, self.app.url(&self.path(action))).header("origin", &self.origin);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("visitor request sent")).await
    }

    /// Opens (or resumes, with the token held) a session; keeps the token it gives.
    pub async fn session(&mut self, mut body: Value) -> Reply {
        if let (Some(token), Some(map)) = (&self.token, body.as_object_mut()) {
            map.entry("visitorToken").or_insert(json!(token));
        }
        let reply = self.call(Method::POST, "sessions", Some(body)).await;
        if let Some(token) = reply.body["visitorToken"].as_str() {
            self.token = Some(token.to_owned());
        }
        reply
    }

    pub async fn send(&self, client_message_id: &str, text: &str) -> Reply {
        self.call(Method::POST, "messages", Some(json!({"clientMessageId": client_message_id, "text": text}))).await
    }

    pub async fn upload(&self, bytes: Vec<u8>, file_name: &str, mime: &str) -> Reply {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()).mime_str(mime).expect("mime");
        let form = reqwest::multipart::Form::new().part("file", part);
        let mut request =
            self.app.client.post(self.app.url(&self.path("attachments"))).header("origin", &self.origin).multipart(form);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        reply(request.send().await.expect("upload sent")).await
    }
}
