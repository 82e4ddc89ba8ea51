//! Agents, teams and runs as the API speaks them, and the settings stored in an agent's `config`
//! (secrets sealed: the API key and HTTP tools' secret header values are never shown again).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::crypto::SecretBox;
use crate::error::ApiError;
use crate::plugins::fetch::{FetchFailure, check_target};
use crate::store::{AgentRow, AgentRunRow, TeamWithMembers};

pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful customer support assistant. Answer briefly and politely.";
const MAX_PROMPT_CHARS: usize = 20_000;
const MAX_HTTP_TOOLS: usize = 16;
const MAX_KEYWORDS: usize = 50;

/// The built-in tools an agent may be allowed to call (`route_to` is a team router's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinTool {
    /// Pause the bot on the conversation and leave it to a human (with a reason).
    HandoffToHuman,
    /// Close the conversation (with an optional summary).
    CloseConversation,
    /// Snooze the conversation until a time.
    SnoozeConversation,
    /// Read the customer's details.
    GetCustomer,
}

impl BuiltinTool {
    pub const ALL: [BuiltinTool; 4] =
        [BuiltinTool::HandoffToHuman, BuiltinTool::CloseConversation, BuiltinTool::SnoozeConversation, BuiltinTool::GetCustomer];

    pub fn name(self) -> &'static str {
        match self {
            BuiltinTool::HandoffToHuman => "handoff_to_human",
            BuiltinTool::CloseConversation => "close_conversation",
            BuiltinTool::SnoozeConversation => "snooze_conversation",
            BuiltinTool::GetCustomer => "get_customer",
        }
    }
}

/// The name of a team router's hand-over tool.
pub const ROUTE_TO: &str = "route_to";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerKind {
    /// Every customer turn.
    #[default]
    All,
    /// Turns matching one of `keywords`.
    Keyword,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MatchMode {
    /// The text contains the keyword (case-insensitive).
    #[default]
    Contains,
    /// The whole text is the keyword (case-insensitive, trimmed).
    Exact,
    /// The text starts with the keyword (case-insensitive).
    StartsWith,
    /// Each keyword is a regular expression.
    Regex,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    #[serde(rename = "type", default)]
    pub kind: TriggerKind,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub match_mode: MatchMode,
}

impl Trigger {
    /// Whether a customer's turn (its messages joined) sets the agent off.
    pub fn matches(&self, text: &str) -> bool {
        if self.kind == TriggerKind::All {
            return true;
        }
        let lower = text.trim().to_lowercase();
        self.keywords.iter().any(|keyword| match self.match_mode {
            MatchMode::Contains => lower.contains(&keyword.to_lowercase()),
            MatchMode::Exact => lower == keyword.trim().to_lowercase(),
            MatchMode::StartsWith => lower.starts_with(&keyword.to_lowercase()),
            MatchMode::Regex => compile(keyword).is_ok_and(|re| re.is_match(text)),
        })
    }
}

fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern).case_insensitive(true).size_limit(1 << 20).build()
}

/// A header an HTTP tool sends with a secret value (`Authorization`, `X-Api-Key`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretHeader {
    pub name: String,
    /// Sealed.
    pub value: String,
}

/// A tool the model may call that the host performs as an HTTP request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTool {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object).
    pub parameters: Value,
    pub url: String,
    pub method: String,
    pub secret_header: Option<SecretHeader>,
}

/// An agent's settings, stored as its `config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSettings {
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub system_prompt: String,
    pub base_url: Option<String>,
    /// Sealed.
    pub api_key: Option<String>,
    pub channel_instance_ids: Vec<Uuid>,
    pub trigger: Trigger,
    pub ignore_groups: bool,
    pub debounce_ms: u64,
    pub cooldown_seconds: u64,
    pub human_pause_minutes: u64,
    pub history_messages: u32,
    pub tools: Vec<BuiltinTool>,
    pub http_tools: Vec<HttpTool>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.into(),
            temperature: None,
            max_tokens: Some(1024),
            system_prompt: DEFAULT_SYSTEM_PROMPT.into(),
            base_url: None,
            api_key: None,
            channel_instance_ids: Vec::new(),
            trigger: Trigger::default(),
            ignore_groups: false,
            debounce_ms: 0,
            cooldown_seconds: 30,
            human_pause_minutes: 30,
            history_messages: 20,
            tools: vec![BuiltinTool::HandoffToHuman],
            http_tools: Vec::new(),
        }
    }
}

/// An agent as the runner uses it.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub settings: AgentSettings,
}

impl Agent {
    /// A stored agent; settings that no longer parse fall back to the defaults (and say so).
    pub fn from_row(row: &AgentRow) -> Self {
        let settings = serde_json::from_value(row.config.0.clone()).unwrap_or_else(|err| {
            tracing::warn!(agent.id = %row.id, error = %err, "agent settings do not parse; using the defaults");
            AgentSettings::default()
        });
        Self { id: row.id, name: row.name.clone(), active: row.is_active, created_at: row.created_at, settings }
    }

    pub fn covers_channel(&self, channel_id: Uuid) -> bool {
        self.settings.channel_instance_ids.is_empty() || self.settings.channel_instance_ids.contains(&channel_id)
    }
}

// ---------------------------------------------------------------------------------------------
// The API.

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretHeaderInput {
    pub name: String,
    /// Omitted on an update: the stored value of the same tool's header is kept.
    pub value: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpToolInput {
    /// `[A-Za-z0-9_-]{1,64}`, unique, not a built-in tool's name.
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (`{"type": "object", ...}`).
    #[schema(value_type = Object)]
    pub parameters: Option<Value>,
    /// http(s); `{name}` placeholders are filled from the model's arguments.
    pub url: String,
    /// GET, POST, PUT, PATCH or DELETE (default POST: the arguments as the JSON body).
    pub method: Option<String>,
    pub secret_header: Option<SecretHeaderInput>,
}

/// Create (name required) or update (every field optional) an agent.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub active: Option<bool>,
    pub model: Option<String>,
    /// 0 to 2; `null` for the model's default.
    #[serde(default, deserialize_with = "crate::validate::double_option")]
    #[schema(value_type = Option<f32>)]
    pub temperature: Option<Option<f32>>,
    #[serde(default, deserialize_with = "crate::validate::double_option")]
    #[schema(value_type = Option<u32>)]
    pub max_tokens: Option<Option<u32>>,
    pub system_prompt: Option<String>,
    /// An OpenAI-compatible base URL with `/v1` (`null`: the host's `OPENAI_BASE_URL`).
    #[serde(default, deserialize_with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub base_url: Option<Option<String>>,
    /// Write-only; `null` removes it (the host's `OPENAI_API_KEY` applies).
    #[serde(default, deserialize_with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<Option<String>>,
    /// Channels it answers on; empty: all of the tenant's.
    pub channel_instance_ids: Option<Vec<Uuid>>,
    pub trigger: Option<Trigger>,
    pub ignore_groups: Option<bool>,
    /// Waits this long after a customer's last message, so a burst is one turn (0 to 60000).
    pub debounce_ms: Option<u64>,
    /// At most one reply per this many seconds per conversation (default 30).
    pub cooldown_seconds: Option<u64>,
    /// How long a human reply pauses the bot (default 30).
    pub human_pause_minutes: Option<u64>,
    /// Past messages given to the model (1 to 100, default 20).
    pub history_messages: Option<u32>,
    pub tools: Option<Vec<BuiltinTool>>,
    pub http_tools: Option<Vec<HttpToolInput>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretHeaderView {
    pub name: String,
    pub has_value: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpToolView {
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub parameters: Value,
    pub url: String,
    pub method: String,
    pub secret_header: Option<SecretHeaderView>,
}

/// An agent as the API shows it: no secret, only whether one is set.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub system_prompt: String,
    pub base_url: Option<String>,
    pub has_api_key: bool,
    pub channel_instance_ids: Vec<Uuid>,
    pub trigger: Trigger,
    pub ignore_groups: bool,
    pub debounce_ms: u64,
    pub cooldown_seconds: u64,
    pub human_pause_minutes: u64,
    pub history_messages: u32,
    pub tools: Vec<BuiltinTool>,
    pub http_tools: Vec<HttpToolView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AgentView {
    pub fn of(row: &AgentRow) -> Self {
        let s = Agent::from_row(row).settings;
        Self {
            id: row.id,
            name: row.name.clone(),
            description: row.description.clone(),
            active: row.is_active,
            model: s.model,
            temperature: s.temperature,
            max_tokens: s.max_tokens,
            system_prompt: s.system_prompt,
            base_url: s.base_url,
            has_api_key: s.api_key.is_some(),
            channel_instance_ids: s.channel_instance_ids,
            trigger: s.trigger,
            ignore_groups: s.ignore_groups,
            debounce_ms: s.debounce_ms,
            cooldown_seconds: s.cooldown_seconds,
            human_pause_minutes: s.human_pause_minutes,
            history_messages: s.history_messages,
            tools: s.tools,
            http_tools: s
                .http_tools
                .into_iter()
                .map(|t| HttpToolView {
                    name: t.name,
                    description: t.description,
                    parameters: t.parameters,
                    url: t.url,
                    method: t.method,
                    secret_header: t.secret_header.map(|h| SecretHeaderView { name: h.name, has_value: !h.value.is_empty() }),
                })
                .collect(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Applies an input to stored settings (the defaults for a new agent), validating every field
/// it sets and sealing secrets. Channel ids are checked by the caller (they need the store).
pub fn apply_input(
    mut s: AgentSettings,
    input: AgentInput,
    secrets: &SecretBox,
    allow_private: bool,
) -> Result<AgentSettings, ApiError> {
    if let Some(model) = input.model {
        let model = model.trim();
        if model.is_empty() || model.len() > 200 {
            return Err(ApiError::validation("model: 1 to 200 characters"));
        }
        s.model = model.to_owned();
    }
    if let Some(temperature) = input.temperature {
        if temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(ApiError::validation("temperature: 0 to 2"));
        }
        s.temperature = temperature;
    }
    if let Some(max_tokens) = input.max_tokens {
        if max_tokens.is_some_and(|n| !(1..=128_000).contains(&n)) {
            return Err(ApiError::validation("maxTokens: 1 to 128000"));
        }
        s.max_tokens = max_tokens;
    }
    if let Some(prompt) = input.system_prompt {
        if prompt.trim().is_empty() || prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(ApiError::validation(format!("systemPrompt: 1 to {MAX_PROMPT_CHARS} characters")));
        }
        s.system_prompt = prompt;
    }
    if let Some(base_url) = input.base_url {
        s.base_url = match base_url.map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty()) {
            None => None,
            Some(url) => Some(checked_url("baseUrl", &url, allow_private)?),
        };
    }
    if let Some(api_key) = input.api_key {
        s.api_key = match api_key.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()) {
            None => None,
            Some(key) => {
                // It becomes an Authorization header value.
                if key.len() > 1024 || !key.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(ApiError::validation("apiKey: visible ASCII characters, at most 1024"));
                }
                Some(secrets.seal(&key))
            }
        };
    }
    if let Some(ids) = input.channel_instance_ids {
        s.channel_instance_ids = ids;
    }
    if let Some(trigger) = input.trigger {
        s.trigger = checked_trigger(trigger)?;
    }
    if let Some(v) = input.ignore_groups {
        s.ignore_groups = v;
    }
    if let Some(ms) = input.debounce_ms {
        if ms > 60_000 {
            return Err(ApiError::validation("debounceMs: 0 to 60000"));
        }
        s.debounce_ms = ms;
    }
    if let Some(secs) = input.cooldown_seconds {
        if secs > 86_400 {
            return Err(ApiError::validation("cooldownSeconds: 0 to 86400"));
        }
        s.cooldown_seconds = secs;
    }
    if let Some(minutes) = input.human_pause_minutes {
        if minutes > 60 * 24 * 30 {
            return Err(ApiError::validation("humanPauseMinutes: 0 to 43200"));
        }
        s.human_pause_minutes = minutes;
    }
    if let Some(n) = input.history_messages {
        if !(1..=100).contains(&n) {
            return Err(ApiError::validation("historyMessages: 1 to 100"));
        }
        s.history_messages = n;
    }
    if let Some(mut tools) = input.tools {
        tools.dedup();
        s.tools = tools;
    }
    if let Some(tools) = input.http_tools {
        s.http_tools = checked_http_tools(tools, &s.http_tools, secrets, allow_private)?;
    }
    Ok(s)
}

fn checked_url(field: &str, url: &str, allow_private: bool) -> Result<String, ApiError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| ApiError::validation(format!("{field}: not a URL")))?;
    if let Err(FetchFailure::Denied(why) | FetchFailure::InvalidRequest(why)) = check_target(&parsed, allow_private) {
        return Err(ApiError::validation(format!("{field}: {why}")));
    }
    Ok(url.to_owned())
}

fn checked_trigger(mut trigger: Trigger) -> Result<Trigger, ApiError> {
    trigger.keywords = trigger.keywords.into_iter().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
    if trigger.kind == TriggerKind::Keyword && trigger.keywords.is_empty() {
        return Err(ApiError::validation("trigger.keywords: a KEYWORD trigger needs at least one keyword"));
    }
    if trigger.keywords.len() > MAX_KEYWORDS || trigger.keywords.iter().any(|k| k.chars().count() > 200) {
        return Err(ApiError::validation(format!("trigger.keywords: at most {MAX_KEYWORDS}, each at most 200 characters")));
    }
    if trigger.match_mode == MatchMode::Regex {
        for (i, keyword) in trigger.keywords.iter().enumerate() {
            compile(keyword).map_err(|e| ApiError::validation(format!("trigger.keywords[{i}]: not a valid regex: {e}")))?;
        }
    }
    Ok(trigger)
}

fn checked_http_tools(
    tools: Vec<HttpToolInput>,
    stored: &[HttpTool],
    secrets: &SecretBox,
    allow_private: bool,
) -> Result<Vec<HttpTool>, ApiError> {
    if tools.len() > MAX_HTTP_TOOLS {
        return Err(ApiError::validation(format!("httpTools: at most {MAX_HTTP_TOOLS}")));
    }
    let mut out: Vec<HttpTool> = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let field = format!("httpTools[{i}]");
        let name = tool.name.trim().to_owned();
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(ApiError::validation(format!("{field}.name: 1 to 64 of A-Z a-z 0-9 _ -")));
        }
        if name == ROUTE_TO || BuiltinTool::ALL.iter().any(|b| b.name() == name) || out.iter().any(|t| t.name == name) {
            return Err(ApiError::validation(format!("{field}.name: {name} is taken")));
        }
        if tool.description.trim().is_empty() || tool.description.chars().count() > 1000 {
            return Err(ApiError::validation(format!("{field}.description: 1 to 1000 characters")));
        }
        let parameters = tool.parameters.unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        if parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(ApiError::validation(format!("{field}.parameters: a JSON Schema of type object")));
        }
        let url = checked_url(&format!("{field}.url"), tool.url.trim(), allow_private)?;
        let method = tool.method.unwrap_or_else(|| "POST".into()).trim().to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            return Err(ApiError::validation(format!("{field}.method: GET, POST, PUT, PATCH or DELETE")));
        }
        let secret_header = match tool.secret_header {
            None => None,
            Some(header) => {
                let header_name = header.name.trim().to_owned();
                if reqwest::header::HeaderName::from_bytes(header_name.as_bytes()).is_err() {
                    return Err(ApiError::validation(format!("{field}.secretHeader.name: not a header name")));
                }
                let value = match header.value {
                    Some(value) => {
                        if value.is_empty() || reqwest::header::HeaderValue::from_str(&value).is_err() {
                            return Err(ApiError::validation(format!("{field}.secretHeader.value: not a header value")));
                        }
                        secrets.seal(&value)
                    }
                    None => stored
                        .iter()
                        .find(|t| t.name == name)
                        .and_then(|t| t.secret_header.as_ref())
                        .map(|h| h.value.clone())
                        .ok_or_else(|| ApiError::validation(format!("{field}.secretHeader.value: required")))?,
                };
                Some(SecretHeader { name: header_name, value })
            }
        };
        out.push(HttpTool { name, description: tool.description.trim().to_owned(), parameters, url, method, secret_header });
    }
    Ok(out)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamMemberInput {
    pub agent_id: Uuid,
    /// What this member handles; the router reads it to choose.
    pub description: Option<String>,
}

/// Create (name, routerAgentId required) or update (members replace the stored ones) a team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub active: Option<bool>,
    /// The agent that answers first and hands the turn to a member with `route_to`.
    pub router_agent_id: Option<Uuid>,
    pub members: Option<Vec<TeamMemberInput>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamMemberView {
    pub agent_id: Uuid,
    pub description: Option<String>,
    pub position: i32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    pub router_agent_id: Option<Uuid>,
    pub members: Vec<TeamMemberView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TeamView {
    pub fn of(t: &TeamWithMembers) -> Self {
        Self {
            id: t.team.id,
            name: t.team.name.clone(),
            description: t.team.description.clone(),
            active: t.team.is_active,
            router_agent_id: t.team.router_agent_id,
            members: t
                .members
                .iter()
                .map(|m| TeamMemberView { agent_id: m.agent_id, description: m.description.clone(), position: m.position })
                .collect(),
            created_at: t.team.created_at,
            updated_at: t.team.updated_at,
        }
    }
}

/// One agent run on a conversation, as logged.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRunView {
    pub id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    /// The agent that answered (for a team, the member the router chose).
    pub agent_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    /// The reply it wrote.
    pub message_id: Option<Uuid>,
    /// REPLIED, HANDED_OFF, CLOSED, SNOOZED, NO_REPLY or FAILED.
    pub outcome: String,
    /// MODEL, or ECHO (the fallback without any model configured).
    pub mode: String,
    /// Every agent that took part, in order: `[{id, name, role}]`.
    #[schema(value_type = Vec<Object>)]
    pub agents: Value,
    /// Routing decisions, model calls and tool calls (arguments and results), in order.
    #[schema(value_type = Vec<Object>)]
    pub steps: Value,
    pub error: Option<String>,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub total_tokens: i32,
    pub latency_ms: i32,
    pub created_at: DateTime<Utc>,
}

impl AgentRunView {
    pub fn of(row: &AgentRunRow) -> Self {
        let content = &row.content.0;
        Self {
            id: row.id,
            conversation_id: row.conversation_id,
            job_id: row.job_id,
            agent_id: row.agent_id,
            team_id: row.team_id,
            message_id: row.message_id,
            outcome: row.outcome.clone(),
            mode: content["mode"].as_str().unwrap_or("MODEL").to_owned(),
            agents: content.get("agents").cloned().unwrap_or(Value::Array(Vec::new())),
            steps: content.get("steps").cloned().unwrap_or(Value::Array(Vec::new())),
            error: content["error"].as_str().map(str::to_owned),
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            total_tokens: row.prompt_tokens.saturating_add(row.completion_tokens),
            latency_ms: row.latency_ms,
            created_at: row.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyword(mode: MatchMode, keywords: &[&str]) -> Trigger {
        Trigger { kind: TriggerKind::Keyword, keywords: keywords.iter().map(|k| k.to_string()).collect(), match_mode: mode }
    }

    #[test]
    fn keyword_triggers_match_as_their_mode_says() {
        assert!(keyword(MatchMode::Contains, &["price"]).matches("What is the PRICE?"));
        assert!(!keyword(MatchMode::Contains, &["price"]).matches("hello"));
        assert!(keyword(MatchMode::Exact, &["menu"]).matches("  Menu "));
        assert!(!keyword(MatchMode::Exact, &["menu"]).matches("menu please"));
        assert!(keyword(MatchMode::StartsWith, &["/bot"]).matches("/bot hi"));
        assert!(keyword(MatchMode::Regex, &[r"order\s*#?\d+"]).matches("where is order #123"));
        assert!(Trigger::default().matches("anything"));
    }

    #[test]
    fn a_keyword_trigger_needs_keywords_and_valid_regexes() {
        assert!(checked_trigger(keyword(MatchMode::Contains, &[" "])).is_err());
        assert!(checked_trigger(keyword(MatchMode::Regex, &["("])).is_err());
        assert!(checked_trigger(keyword(MatchMode::Regex, &["a+"])).is_ok());
    }
}
