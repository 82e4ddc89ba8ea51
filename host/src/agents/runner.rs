//! The agent runner: claims due agent jobs (one per inbound message, written in the message's own
//! transaction) with a lease, waits out the debounce, checks that the bot may answer, runs the
//! agent (a bounded loop of model calls and tool calls, a team's router handing over to a
//! member), and queues the reply like a human's. The reply's idempotency key is the job's id,
//! so a job run twice (a crash, an expired lease) still sends one reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestToolMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequest,
};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use uuid::Uuid;

use super::llm::{Endpoint, ModelClient, ModelError, echo_reply, truncate};
use super::model::{Agent, ROUTE_TO};
use super::tools::{ToolScope, definitions};
use crate::state::AppState;
use crate::store::{
    AgentJob, AgentJobStatus, Channel, Conversation, ConversationFacts, ConversationStatus, Customer, Enqueued, Message,
    MessageDirection, NewAgentRun, NewOutboundMessage, PageQuery, StoreError, TeamWithMembers,
};

/// Model calls in one turn (tool calls between them), a router's hand-over included.
const MAX_MODEL_CALLS: usize = 6;
/// Messages read to find the customer's turn and the history.
const RECENT_MESSAGES: i64 = 100;

/// What became of a job this time round.
enum Step {
    Finish(AgentJobStatus, String),
    /// Due again at this time; with an error, the attempt counts.
    Later(DateTime<Utc>, Option<String>),
}

/// Runs until `shutdown` turns true, then waits a while for turns in flight and hands back the rest.
pub async fn run(state: AppState, model: Arc<ModelClient>, mut shutdown: watch::Receiver<bool>) {
    let config = state.config.agents.clone();
    let worker = format!("agents-{}", Uuid::new_v4());
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let lease = chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::minutes(5));
    tracing::info!(worker = %worker, concurrency = config.concurrency, "agent runner started");
    while !*shutdown.borrow() {
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                permit = slots.acquire() => drop(permit),
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let claimed = match state.store.claim_agent_jobs(&worker, lease, free as i64).await {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(error = %err, "agents: cannot claim jobs");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = state.agent_wake.notified() => {}
                _ = tokio::time::sleep(config.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        for job in claimed {
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let state = state.clone();
            let model = model.clone();
            tokio::spawn(async move {
                let _slot = slot;
                process(&state, &model, job).await;
            });
        }
    }
    let all = u32::try_from(config.concurrency).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await;
    match state.store.release_agent_jobs(&worker).await {
        Ok(released) => tracing::info!(worker = %worker, released, "agent runner stopped"),
        Err(err) => tracing::warn!(error = %err, "agents: cannot release claimed jobs; their lease will"),
    }
}

#[tracing::instrument(skip_all, fields(tenant.id = %job.tenant_id, conversation.id = %job.conversation_id, job.id = %job.id))]
async fn process(state: &AppState, model: &ModelClient, job: AgentJob) {
    let step = match turn(state, model, &job).await {
        Ok(step) => step,
        Err(err) => {
            // The database failed under us: try again a little later (no attempt counted).
            tracing::warn!(error = %err, "agents: turn interrupted; retrying");
            Step::Later(Utc::now() + chrono::Duration::seconds(5), None)
        }
    };
    let recorded = match step {
        Step::Finish(status, outcome) => {
            tracing::debug!(%status, outcome, "agent job finished");
            state.store.finish_agent_job(&job, status, &outcome, None).await
        }
        Step::Later(at, error) => state.store.reschedule_agent_job(&job, at, error.as_deref()).await,
    };
    if let Err(err) = recorded {
        tracing::warn!(error = %err, "agents: cannot record the job; its lease will return it");
    }
    // A later job of the same conversation may have waited for this one.
    state.agent_wake.notify_one();
}

fn skip(reason: &str) -> Result<Step, StoreError> {
    Ok(Step::Finish(AgentJobStatus::Skipped, reason.to_owned()))
}

/// Decides and, where the bot may answer, runs one turn.
async fn turn(state: &AppState, model: &ModelClient, job: &AgentJob) -> Result<Step, StoreError> {
    let store = &state.store;
    let tenant_id = job.tenant_id;
    let Some(conversation) = store.get_conversation(tenant_id, job.conversation_id).await? else {
        return skip("the conversation is gone");
    };
    let mut recent = store.list_messages(tenant_id, conversation.id, &PageQuery { after: None, limit: RECENT_MESSAGES }).await?;
    recent.reverse(); // oldest first
    // A burst is one turn: the job of its last message answers it; earlier ones stand down.
    let newest = match recent.iter().rev().find(|m| m.direction == MessageDirection::Inbound) {
        Some(newest) if newest.id == job.message_id => newest.created_at,
        _ => return skip("superseded by a later message"),
    };
    let (Some(customer), Some(channel)) = (
        store.get_customer(tenant_id, conversation.customer_id).await?,
        store.get_channel(tenant_id, conversation.channel_instance_id).await?,
    ) else {
        return skip("the customer or the channel is gone");
    };
    let agents: Vec<Agent> = store.list_agents(tenant_id).await?.iter().map(Agent::from_row).collect();
    let teams = store.list_teams(tenant_id).await?;
    let candidates: Vec<(&Agent, Option<&TeamWithMembers>)> =
        responders(&agents, &teams).into_iter().filter(|(agent, _)| agent.covers_channel(channel.id)).collect();
    if candidates.is_empty() {
        return skip("no active agent answers on this channel");
    }

    let now = Utc::now();
    let debounce = candidates.iter().map(|(a, _)| a.settings.debounce_ms).max().unwrap_or(0);
    let due = newest + chrono::Duration::milliseconds(i64::try_from(debounce).unwrap_or(0));
    if due > now {
        return Ok(Step::Later(due, None));
    }
    if conversation.status != ConversationStatus::Open {
        return skip(&format!("the conversation is {}", conversation.status));
    }
    if conversation.assignee_id.is_some() {
        return skip("a human is assigned");
    }
    if conversation.bot_paused_at(now) {
        return skip("the bot is paused on this conversation");
    }
    // The last messages usually are the whole conversation: then its past needs no more queries.
    let facts = if recent.len() < RECENT_MESSAGES as usize {
        ConversationFacts {
            first_message: recent
                .iter()
                .find(|m| m.direction != MessageDirection::System)
                .map(|m| (m.direction, m.sender_user_id.is_some())),
            last_agent_reply_at: recent.iter().rev().find(|m| m.sender_agent_id.is_some()).map(|m| m.created_at),
        }
    } else {
        store.conversation_facts(tenant_id, conversation.id).await?
    };
    if matches!(facts.first_message, Some((MessageDirection::Outbound, _))) {
        return skip("the business started this conversation");
    }

    let turn_text = customer_turn(&recent);
    let group = conversation.is_group_of(&customer);
    let Some((agent, team)) = candidates
        .into_iter()
        .find(|(agent, _)| agent.settings.trigger.matches(&turn_text) && !(group && agent.settings.ignore_groups))
    else {
        return skip(if group { "no agent answers this group turn" } else { "no agent's trigger matched" });
    };
    if let Some(last) = facts.last_agent_reply_at {
        let cooldown_ends = last + chrono::Duration::seconds(i64::try_from(agent.settings.cooldown_seconds).unwrap_or(0));
        if cooldown_ends > now {
            return Ok(Step::Later(cooldown_ends, None));
        }
    }

    let mut scope = ToolScope { state, conversation, customer: &customer, channel: &channel, action: None };
    let mut log = RunLog::default();
    log.join(agent, if team.is_some() { "router" } else { "agent" });
    let started = Instant::now();

    if let Some(budget) = state.config.agents.daily_tokens {
        let midnight = now.date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
        let used = store.agent_tokens_since(tenant_id, midnight).await?;
        if u64::try_from(used).unwrap_or(0) >= budget {
            scope.hand_off(&format!("{}: the daily AI token budget ({budget}) is spent; a human takes over", agent.name)).await?;
            log.error = Some(format!("daily token budget of {budget} spent ({used} used)"));
            record_run(state, job, &scope, agent, team, &log, None, "HANDED_OFF", started).await?;
            return Ok(Step::Finish(AgentJobStatus::Done, "HANDED_OFF: token budget spent".into()));
        }
    }

    let context = Context { recent: &recent, customer: &customer, channel: &channel, turn_text: &turn_text };
    let answered = answer(state, model, agent, team, &agents, &context, &mut scope, &mut log).await;
    let (reply, answering) = match answered {
        Ok(done) => done,
        Err(ModelError::Transient(error)) if job.attempts + 1 < state.config.agents.max_attempts => {
            tracing::info!(attempt = job.attempts + 1, error, "agents: model call failed; will retry");
            return Ok(Step::Later(Utc::now() + backoff(state.config.agents.base_backoff, job.attempts + 1), Some(error)));
        }
        Err(err) => {
            let error = match err {
                ModelError::Transient(e) => format!("gave up after {} attempts: {e}", job.attempts + 1),
                ModelError::Permanent(e) => e,
            };
            tracing::warn!(error, "agents: the model failed; handing the conversation to a human");
            scope.hand_off(&format!("{} could not answer ({}); a human takes over", agent.name, truncate(&error, 200))).await?;
            log.error = Some(error.clone());
            record_run(state, job, &scope, agent, team, &log, None, "FAILED", started).await?;
            return Ok(Step::Finish(AgentJobStatus::Failed, format!("FAILED: {}", truncate(&error, 500))));
        }
    };
    let answering = agents.iter().find(|a| a.id == answering).unwrap_or(agent);
    let reply = reply.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let mut message_id = None;
    if let Some(text) = reply {
        let sent = send_reply(state, job, &scope.conversation, answering, text).await?;
        message_id = Some(sent.id);
    }
    let outcome = match (scope.action, message_id) {
        (Some(action), _) => action,
        (None, Some(_)) => "REPLIED",
        (None, None) => "NO_REPLY",
    };
    record_run(state, job, &scope, answering, team, &log, message_id, outcome, started).await?;
    Ok(Step::Finish(AgentJobStatus::Done, outcome.to_owned()))
}

/// Who may answer a turn, oldest first: active agents, except those that are members of an
/// active team (they answer only when its router hands them a turn). A router comes with its team.
fn responders<'a>(agents: &'a [Agent], teams: &'a [TeamWithMembers]) -> Vec<(&'a Agent, Option<&'a TeamWithMembers>)> {
    let active_teams: Vec<&TeamWithMembers> =
        teams.iter().filter(|t| t.team.is_active && t.team.router_agent_id.is_some()).collect();
    let is_member = |agent: &Agent| {
        active_teams.iter().any(|t| t.team.router_agent_id != Some(agent.id) && t.members.iter().any(|m| m.agent_id == agent.id))
    };
    agents
        .iter()
        .filter(|agent| agent.active && !is_member(agent))
        .map(|agent| (agent, active_teams.iter().copied().find(|t| t.team.router_agent_id == Some(agent.id))))
        .collect()
}

/// The customer's turn: their messages since the business last wrote, joined.
fn customer_turn(recent: &[Message]) -> String {
    let start = recent.iter().rposition(|m| m.direction == MessageDirection::Outbound).map(|i| i + 1).unwrap_or(0);
    recent[start..].iter().filter(|m| m.direction == MessageDirection::Inbound).map(content_of).collect::<Vec<_>>().join("\n")
}

/// A message's text, with its attachments named (the model sees no media).
fn content_of(message: &Message) -> String {
    let mut text = message.text.clone().unwrap_or_default();
    for attachment in message.attachments.0.as_array().into_iter().flatten() {
        let kind = attachment["kind"].as_str().unwrap_or("file");
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("[{kind} attached]"));
    }
    text
}

struct Context<'a> {
    recent: &'a [Message],
    customer: &'a Customer,
    channel: &'a Channel,
    turn_text: &'a str,
}

/// The run log: who took part, each step, tokens.
#[derive(Default)]
struct RunLog {
    agents: Vec<Value>,
    steps: Vec<Value>,
    prompt_tokens: u32,
    completion_tokens: u32,
    echo: bool,
    error: Option<String>,
}

impl RunLog {
    fn join(&mut self, agent: &Agent, role: &str) {
        self.agents.push(json!({"id": agent.id, "name": agent.name, "role": role}));
    }
}

/// Runs `agent` (and, for a router, the member it hands over to): the reply text, if any, and
/// the id of the agent that gave it.
#[allow(clippy::too_many_arguments)]
async fn answer(
    state: &AppState,
    model: &ModelClient,
    agent: &Agent,
    team: Option<&TeamWithMembers>,
    agents: &[Agent],
    context: &Context<'_>,
    scope: &mut ToolScope<'_>,
    log: &mut RunLog,
) -> Result<(Option<String>, Uuid), ModelError> {
    let members: Vec<&Agent> = team
        .map(|t| {
            t.members.iter().filter_map(|m| agents.iter().find(|a| a.id == m.agent_id && a.active && a.id != agent.id)).collect()
        })
        .unwrap_or_default();
    let roster: Vec<(String, String)> = members
        .iter()
        .map(|a| {
            let handles = team
                .and_then(|t| t.members.iter().find(|m| m.agent_id == a.id))
                .and_then(|m| m.description.clone())
                .unwrap_or_default();
            (a.name.clone(), handles)
        })
        .collect();

    let mut current = agent;
    let mut endpoint = endpoint_of(state, current);
    let mut routed = false;
    let mut messages = prompt(current, context, &roster);
    for _ in 0..MAX_MODEL_CALLS {
        if matches!(endpoint, Endpoint::Echo) {
            log.echo = true;
            log.steps.push(json!({"type": "echo", "agent": current.name}));
            return Ok((Some(echo_reply(context.turn_text)), current.id));
        }
        let offered_roster: &[(String, String)] = if routed { &[] } else { &roster };
        let tools = definitions(current, offered_roster);
        let request = CreateChatCompletionRequest {
            model: current.settings.model.clone(),
            messages: messages.clone(),
            temperature: current.settings.temperature,
            max_completion_tokens: current.settings.max_tokens,
            tools: (!tools.is_empty()).then_some(tools),
            ..Default::default()
        };
        let called = Instant::now();
        let response = model.complete(&endpoint, request).await?;
        let (prompt_tokens, completion_tokens) =
            response.usage.as_ref().map(|u| (u.prompt_tokens, u.completion_tokens)).unwrap_or_default();
        log.prompt_tokens += prompt_tokens;
        log.completion_tokens += completion_tokens;
        log.steps.push(json!({
            "type": "model", "agent": current.name, "model": current.settings.model,
            "latencyMs": called.elapsed().as_millis() as u64, "promptTokens": prompt_tokens, "completionTokens": completion_tokens,
        }));
        let Some(choice) = response.choices.into_iter().next() else {
            return Err(ModelError::Permanent("the model's answer has no choices".into()));
        };
        let calls: Vec<_> = choice
            .message
            .tool_calls
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|call| match call {
                ChatCompletionMessageToolCalls::Function(f) => Some(f),
                ChatCompletionMessageToolCalls::Custom(_) => None,
            })
            .collect();
        if calls.is_empty() {
            return Ok((choice.message.content, current.id));
        }
        messages.push(ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
            content: choice.message.content.clone().map(Into::into),
            tool_calls: choice.message.tool_calls.clone(),
            ..Default::default()
        }));
        let mut handed_over = None;
        for call in &calls {
            let arguments: Value = serde_json::from_str(&call.function.arguments).unwrap_or(Value::Null);
            if call.function.name == ROUTE_TO && !routed && !members.is_empty() {
                let wanted = arguments["agent"].as_str().unwrap_or_default().trim();
                match members.iter().find(|m| m.name.eq_ignore_ascii_case(wanted) || m.id.to_string() == wanted) {
                    Some(member) => {
                        log.steps.push(json!({
                            "type": "route", "from": current.name, "to": member.name, "toAgentId": member.id,
                            "reason": arguments["reason"].as_str(),
                        }));
                        handed_over = Some(*member);
                        break;
                    }
                    None => {
                        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                        let result = json!({"error": format!("no member named {wanted:?}; choose one of {}", names.join(", "))});
                        log.steps.push(json!({"type": "tool", "agent": current.name, "name": ROUTE_TO, "arguments": arguments, "result": result}));
                        messages.push(tool_result(&call.id, &result));
                    }
                }
                continue;
            }
            let result =
                scope.call(current, &call.function.name, &arguments).await.map_err(|e| ModelError::Transient(e.to_string()))?;
            log.steps.push(json!({"type": "tool", "agent": current.name, "name": call.function.name, "arguments": arguments, "result": result}));
            messages.push(tool_result(&call.id, &result));
        }
        if let Some(member) = handed_over {
            routed = true;
            current = member;
            log.join(member, "member");
            endpoint = endpoint_of(state, current);
            messages = prompt(current, context, &[]);
        }
    }
    log.error = Some(format!("no answer after {MAX_MODEL_CALLS} model calls"));
    Ok((None, current.id))
}

fn tool_result(call_id: &str, result: &Value) -> ChatCompletionRequestMessage {
    ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
        content: result.to_string().into(),
        tool_call_id: call_id.to_owned(),
    })
}

fn endpoint_of(state: &AppState, agent: &Agent) -> Endpoint {
    let key = agent.settings.api_key.as_deref().and_then(|sealed| match state.secrets.open(sealed) {
        Ok(key) => Some(SecretString::from(key)),
        Err(_) => {
            tracing::warn!(agent.id = %agent.id, "agents: the agent's API key cannot be opened (was OMNICHAT_SECRET_KEY changed?)");
            None
        }
    });
    Endpoint::resolve(agent.settings.base_url.as_deref(), key, &state.config.agents)
}

/// The system prompt with the turn's context, then the last `historyMessages` messages as turns.
fn prompt(agent: &Agent, context: &Context<'_>, roster: &[(String, String)]) -> Vec<ChatCompletionRequestMessage> {
    let customer = context.customer.name.as_deref().unwrap_or("a customer");
    let mut system = format!(
        "{}\n\nYou are replying to {customer} on the {} channel \"{}\". Now: {}.",
        agent.settings.system_prompt,
        context.channel.channel_type,
        context.channel.name,
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if !roster.is_empty() {
        system.push_str("\n\nYou lead a team. When a member is better suited to answer, call route_to with its name. Members:");
        for (name, handles) in roster {
            system.push_str(&format!("\n- {name}: {handles}"));
        }
    }
    let mut messages = vec![ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage::from(system))];
    let history = agent.settings.history_messages as usize;
    let turns: Vec<&Message> = context.recent.iter().filter(|m| m.direction != MessageDirection::System).collect();
    for message in &turns[turns.len().saturating_sub(history)..] {
        let content = content_of(message);
        if content.is_empty() {
            continue;
        }
        messages.push(match message.direction {
            MessageDirection::Inbound => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage::from(content)),
            _ => ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage::from(content)),
        });
    }
    messages
}

/// Queues the reply as the agent's OUTBOUND message, keyed by the job (a second run replays it).
async fn send_reply(
    state: &AppState,
    job: &AgentJob,
    conversation: &Conversation,
    agent: &Agent,
    text: String,
) -> Result<Message, StoreError> {
    let new = NewOutboundMessage {
        tenant_id: job.tenant_id,
        conversation: conversation.clone(),
        sender_user_id: None,
        sender_agent_id: Some(agent.id),
        text: Some(truncate(&text, 4000)),
        attachments: Value::Array(Vec::new()),
        idempotency_key: Some(format!("agent-job:{}", job.id)),
        max_attempts: state.config.queue.max_attempts,
    };
    match state.store.enqueue_outbound(&new).await? {
        Enqueued::Queued { message, conversation } => {
            state.realtime.message_created(job.tenant_id, &message).await;
            state.realtime.conversation_updated(job.tenant_id, &conversation).await;
            state.queue.wake();
            Ok(message)
        }
        Enqueued::Replayed(message) => Ok(message),
    }
}

#[allow(clippy::too_many_arguments)]
async fn record_run(
    state: &AppState,
    job: &AgentJob,
    scope: &ToolScope<'_>,
    agent: &Agent,
    team: Option<&TeamWithMembers>,
    log: &RunLog,
    message_id: Option<Uuid>,
    outcome: &str,
    started: Instant,
) -> Result<(), StoreError> {
    let run = NewAgentRun {
        tenant_id: job.tenant_id,
        conversation_id: scope.conversation.id,
        job_id: job.id,
        team_id: team.map(|t| t.team.id),
        agent_id: Some(agent.id),
        message_id,
        outcome: outcome.to_owned(),
        content: json!({
            "mode": if log.echo { "ECHO" } else { "MODEL" },
            "agents": log.agents,
            "steps": log.steps,
            "error": log.error,
        }),
        prompt_tokens: i32::try_from(log.prompt_tokens).unwrap_or(i32::MAX),
        completion_tokens: i32::try_from(log.completion_tokens).unwrap_or(i32::MAX),
        latency_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
    };
    state.store.insert_agent_run(&run).await?;
    metrics::counter!("omnichat_agent_runs_total", "outcome" => outcome.to_owned()).increment(1);
    Ok(())
}

/// `base * 2^(attempt-1)`, capped at 5 minutes, times a jitter in [0.5, 1.5).
fn backoff(base: Duration, attempt: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(16);
    let delay = base.saturating_mul(1 << exponent).min(Duration::from_secs(300));
    chrono::Duration::from_std(delay.mul_f64(0.5 + rand::random::<f64>())).unwrap_or(chrono::Duration::seconds(60))
}
