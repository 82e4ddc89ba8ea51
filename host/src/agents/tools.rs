//! What an agent may do besides answering: the built-in tools (hand-off, close, snooze, read the
//! customer), a team router's `route_to`, and the agent's HTTP tools, called through the guarded
//! fetcher with their secret header filled in there (never seen by the model or a log).

use std::time::{Duration, Instant};

use async_openai::types::chat::{ChatCompletionTool, ChatCompletionTools, FunctionObject};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::model::{Agent, BuiltinTool, HttpTool, ROUTE_TO};
use crate::plugins::fetch::{ChannelSecrets, FetchFailure, FetchRequest};
use crate::state::AppState;
use crate::store::{BotStatus, Channel, Conversation, ConversationPatch, ConversationStatus, Customer, StoreError};

const HTTP_TOOL_TIMEOUT: Duration = Duration::from_secs(15);
/// What a tool's answer may put into the model's context.
const MAX_RESULT_CHARS: usize = 4000;

fn function(name: &str, description: &str, parameters: Value) -> ChatCompletionTools {
    ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObject {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            parameters: Some(parameters),
            strict: None,
        },
    })
}

/// The tools offered to `agent`; `members` (name, what it handles) adds `route_to` for a router.
pub fn definitions(agent: &Agent, members: &[(String, String)]) -> Vec<ChatCompletionTools> {
    let mut tools: Vec<ChatCompletionTools> = agent
        .settings
        .tools
        .iter()
        .map(|tool| match tool {
            BuiltinTool::HandoffToHuman => function(
                tool.name(),
                "Hand the conversation to a human agent when you cannot help, the customer asks for a person, or the matter is sensitive.",
                json!({"type": "object", "properties": {"reason": {"type": "string", "description": "why a human should take over"}}, "required": ["reason"]}),
            ),
            BuiltinTool::CloseConversation => function(
                tool.name(),
                "Close the conversation once the customer's request is fully resolved.",
                json!({"type": "object", "properties": {"summary": {"type": "string", "description": "a one-line summary of the resolution"}}}),
            ),
            BuiltinTool::SnoozeConversation => function(
                tool.name(),
                "Snooze the conversation until a later time (it reopens when the customer writes).",
                json!({"type": "object", "properties": {"until": {"type": "string", "format": "date-time", "description": "RFC 3339 time"}}, "required": ["until"]}),
            ),
            BuiltinTool::GetCustomer => function(
                tool.name(),
                "Read the customer's profile: name, username, phone, channel and stored details.",
                json!({"type": "object", "properties": {}}),
            ),
        })
        .collect();
    for tool in &agent.settings.http_tools {
        tools.push(function(&tool.name, &tool.description, tool.parameters.clone()));
    }
    if !members.is_empty() {
        let names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
        tools.push(function(
            ROUTE_TO,
            "Hand this turn to the team member best suited to answer it.",
            json!({"type": "object", "properties": {
                "agent": {"type": "string", "enum": names, "description": "the member's name"},
                "reason": {"type": "string"}
            }, "required": ["agent"]}),
        ));
    }
    tools
}

/// The conversation a turn works on, as tools change it; the events they cause.
pub struct ToolScope<'a> {
    pub state: &'a AppState,
    pub conversation: Conversation,
    pub customer: &'a Customer,
    pub channel: &'a Channel,
    /// Set by `handoff_to_human`, `close_conversation`, `snooze_conversation`.
    pub action: Option<&'static str>,
}

impl ToolScope<'_> {
    /// Runs a built-in or HTTP tool; the answer goes back to the model as the tool's result.
    pub async fn call(&mut self, agent: &Agent, name: &str, arguments: &Value) -> Result<Value, StoreError> {
        if let Some(tool) = agent.settings.tools.iter().find(|t| t.name() == name) {
            return self.builtin(agent, *tool, arguments).await;
        }
        if let Some(tool) = agent.settings.http_tools.iter().find(|t| t.name == name) {
            return Ok(self.http(tool, arguments).await);
        }
        Ok(json!({"error": format!("no tool named {name} is available")}))
    }

    async fn builtin(&mut self, agent: &Agent, tool: BuiltinTool, arguments: &Value) -> Result<Value, StoreError> {
        let text = |key: &str| arguments.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        match tool {
            BuiltinTool::HandoffToHuman => {
                let reason = text("reason").unwrap_or("the agent asked for a human");
                self.hand_off(&format!("{} handed the conversation to a human: {reason}", agent.name)).await?;
                Ok(json!({"ok": true, "note": "A human will take over; tell the customer so briefly."}))
            }
            BuiltinTool::CloseConversation => {
                let note = match text("summary") {
                    Some(summary) => format!("{} closed the conversation: {summary}", agent.name),
                    None => format!("{} closed the conversation", agent.name),
                };
                self.set_status(ConversationStatus::Closed, &note).await?;
                self.action = Some("CLOSED");
                Ok(json!({"ok": true}))
            }
            BuiltinTool::SnoozeConversation => {
                let Some(until) = text("until").and_then(|u| DateTime::parse_from_rfc3339(u).ok()) else {
                    return Ok(json!({"error": "until: an RFC 3339 time such as 2026-12-24T09:00:00Z"}));
                };
                let until = until.with_timezone(&Utc);
                self.set_status(
                    ConversationStatus::Snoozed,
                    &format!("{} snoozed the conversation until {}", agent.name, until.to_rfc3339()),
                )
                .await?;
                self.action = Some("SNOOZED");
                Ok(json!({"ok": true, "until": until}))
            }
            BuiltinTool::GetCustomer => Ok(json!({
                "name": self.customer.name,
                "username": self.customer.username,
                "phone": self.customer.phone,
                "externalId": self.customer.external_id,
                "channelType": self.channel.channel_type.as_str(),
                "channelName": self.channel.name,
                "metadata": self.customer.metadata.0,
                "customerSince": self.customer.created_at,
            })),
        }
    }

    /// The bot pauses on the conversation until resumed; it stays OPEN for the humans, and a
    /// SYSTEM note says why.
    pub async fn hand_off(&mut self, note: &str) -> Result<(), StoreError> {
        let patch = ConversationPatch { bot: Some((BotStatus::Paused, None)), ..Default::default() };
        self.apply(&patch, note).await?;
        self.action = Some("HANDED_OFF");
        Ok(())
    }

    async fn set_status(&mut self, status: ConversationStatus, note: &str) -> Result<(), StoreError> {
        self.apply(&ConversationPatch { status: Some(status), ..Default::default() }, note).await
    }

    async fn apply(&mut self, patch: &ConversationPatch, note: &str) -> Result<(), StoreError> {
        let tenant_id = self.conversation.tenant_id;
        if let Some(updated) = self.state.store.update_conversation(tenant_id, self.conversation.id, patch).await? {
            self.conversation = updated;
        }
        let message = self.state.store.insert_system_message(&self.conversation, note).await?;
        self.state.realtime.message_created(tenant_id, &message).await;
        if let Some(updated) = self.state.store.get_conversation(tenant_id, self.conversation.id).await? {
            self.conversation = updated;
        }
        self.state.realtime.conversation_updated(tenant_id, &self.conversation).await;
        Ok(())
    }

    /// The tool's request: `{name}` placeholders in the URL take the arguments of that name;
    /// the rest go as the query (GET, DELETE) or as the JSON body.
    async fn http(&self, tool: &HttpTool, arguments: &Value) -> Value {
        let mut rest = arguments.as_object().cloned().unwrap_or_default();
        let mut url = tool.url.clone();
        for (key, value) in arguments.as_object().into_iter().flatten() {
            let placeholder = format!("{{{key}}}");
            if url.contains(&placeholder) {
                let text = argument_text(value);
                url = url.replace(
                    &placeholder,
                    &percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC).to_string(),
                );
                rest.remove(key);
            }
        }
        let mut headers = vec![("accept".to_owned(), "application/json".to_owned())];
        let mut secrets = ChannelSecrets::default();
        if let Some(header) = &tool.secret_header {
            match self.state.secrets.open(&header.value) {
                Ok(value) => {
                    secrets.insert("header".into(), SecretString::from(value));
                    headers.push((header.name.clone(), "{{secret:header}}".into()));
                }
                Err(_) => return json!({"error": "the tool's secret header cannot be read (was OMNICHAT_SECRET_KEY changed?)"}),
            }
        }
        let body = if matches!(tool.method.as_str(), "GET" | "DELETE") {
            if !rest.is_empty()
                && let Ok(mut parsed) = reqwest::Url::parse(&url)
            {
                parsed.query_pairs_mut().extend_pairs(rest.iter().map(|(k, v)| (k, argument_text(v))));
                url = parsed.into();
            }
            None
        } else {
            headers.push(("content-type".into(), "application/json".into()));
            Some(serde_json::to_vec(&Value::Object(rest)).unwrap_or_default())
        };
        let request = FetchRequest { method: tool.method.clone(), url, headers, body };
        let deadline = Instant::now() + HTTP_TOOL_TIMEOUT;
        match self.state.bridge_deps.fetcher.fetch(request, None, &secrets, deadline).await {
            Ok(response) => {
                let text = String::from_utf8_lossy(&response.body);
                let body = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(|_| text.chars().count() <= MAX_RESULT_CHARS)
                    .unwrap_or_else(|| Value::String(super::llm::truncate(&text, MAX_RESULT_CHARS)));
                json!({"status": response.status, "body": body})
            }
            Err(FetchFailure::Denied(why)) => json!({"error": format!("refused: {why}")}),
            Err(FetchFailure::Timeout) => json!({"error": "the tool did not answer in time"}),
            Err(FetchFailure::TooLarge) => json!({"error": "the tool's answer is too large"}),
            Err(FetchFailure::InvalidRequest(why) | FetchFailure::Failed(why)) => json!({"error": why}),
        }
    }
}

/// A model's argument as URL text: a string as it is, anything else as JSON.
fn argument_text(value: &Value) -> String {
    value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())
}
