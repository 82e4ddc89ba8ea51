//! `/api/agents`, `/api/agent-teams` (owners and admins change them; any user reads them) and
//! `GET /api/conversations/:id/agent-runs`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::model::{AgentInput, AgentRunView, AgentView, TeamInput, TeamView, apply_input};
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::state::AppState;
use crate::store::{AgentValues, TeamValues};
use crate::validate;

const MAX_TEAM_MEMBERS: usize = 20;

#[utoipa::path(get, path = "/api/agents", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Vec<AgentView>)))]
pub async fn list(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<Vec<AgentView>>> {
    Ok(Json(state.store.list_agents(auth.tenant_id()).await?.iter().map(AgentView::of).collect()))
}

/// Creates an agent. The first active agent whose channels and trigger fit a customer's turn
/// answers it; `apiKey` is write-only.
#[utoipa::path(post, path = "/api/agents", tag = "agents", security(("bearer" = [])), request_body = AgentInput,
    responses((status = 201, body = AgentView), (status = 403, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id()), err(level = "warn"))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(input): ApiJson<AgentInput>,
) -> ApiResult<(StatusCode, Json<AgentView>)> {
    auth.require_manager()?;
    let name = validate::name("name", input.name.as_deref().unwrap_or_default())?;
    let values = values(&state, &auth, name, input, None).await?;
    let row = state.store.create_agent(auth.tenant_id(), &values).await?;
    Ok((StatusCode::CREATED, Json(AgentView::of(&row))))
}

#[utoipa::path(get, path = "/api/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ApiErrorBody)))]
pub async fn get(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<AgentView>> {
    let row = state.store.get_agent(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(Json(AgentView::of(&row)))
}

/// Changes the fields given; `apiKey: null` removes the key, an omitted one keeps it.
#[utoipa::path(patch, path = "/api/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = AgentInput,
    responses((status = 200, body = AgentView), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), agent.id = %id), err(level = "warn"))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<AgentInput>,
) -> ApiResult<Json<AgentView>> {
    auth.require_manager()?;
    let stored = state.store.get_agent(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
    let name = match input.name.as_deref() {
        Some(name) => validate::name("name", name)?,
        None => stored.name.clone(),
    };
    let mut values = values(&state, &auth, name, input, Some(&stored)).await?;
    if values.description.is_none() {
        values.description = stored.description.clone();
    }
    let row = state.store.update_agent(auth.tenant_id(), id, &values).await?.ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(Json(AgentView::of(&row)))
}

#[utoipa::path(delete, path = "/api/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn remove(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    auth.require_manager()?;
    if state.store.delete_agent(auth.tenant_id(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("agent"))
    }
}

/// The stored form of an agent input: validated, secrets sealed, channels of the caller's tenant.
async fn values(
    state: &AppState,
    auth: &AuthUser,
    name: String,
    mut input: AgentInput,
    stored: Option<&crate::store::AgentRow>,
) -> ApiResult<AgentValues> {
    let base = stored.map(|row| super::model::Agent::from_row(row).settings).unwrap_or_default();
    let description = validate::optional_name("description", input.description.take().as_deref())?;
    let active = input.active.take().or(stored.map(|r| r.is_active)).unwrap_or(true);
    if let Some(ids) = &input.channel_instance_ids {
        for (i, id) in ids.iter().enumerate() {
            if state.store.get_channel(auth.tenant_id(), *id).await?.is_none() {
                return Err(ApiError::validation(format!("channelInstanceIds[{i}]: no such channel in this tenant")));
            }
        }
    }
    let settings = apply_input(base, input, &state.secrets, state.config.providers.allow_private_fetch)?;
    let config = serde_json::to_value(&settings).map_err(ApiError::internal)?;
    Ok(AgentValues { name, description, is_active: active, config })
}

#[utoipa::path(get, path = "/api/agent-teams", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Vec<TeamView>)))]
pub async fn list_teams(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<Vec<TeamView>>> {
    Ok(Json(state.store.list_teams(auth.tenant_id()).await?.iter().map(TeamView::of).collect()))
}

/// Creates a team: its router agent answers first and may hand a turn to one member with
/// `route_to`; members answer only through their team.
#[utoipa::path(post, path = "/api/agent-teams", tag = "agents", security(("bearer" = [])), request_body = TeamInput,
    responses((status = 201, body = TeamView), (status = 403, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id()), err(level = "warn"))]
pub async fn create_team(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(input): ApiJson<TeamInput>,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    auth.require_manager()?;
    let values = team_values(&state, &auth, input, None).await?;
    let team = state.store.create_team(auth.tenant_id(), &values).await?;
    Ok((StatusCode::CREATED, Json(TeamView::of(&team))))
}

#[utoipa::path(get, path = "/api/agent-teams/{id}", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = TeamView), (status = 404, body = ApiErrorBody)))]
pub async fn get_team(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<TeamView>> {
    let team = state.store.get_team(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("agent team"))?;
    Ok(Json(TeamView::of(&team)))
}

/// Changes the fields given; `members`, when given, replace the team's members.
#[utoipa::path(patch, path = "/api/agent-teams/{id}", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = TeamInput,
    responses((status = 200, body = TeamView), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn update_team(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<TeamInput>,
) -> ApiResult<Json<TeamView>> {
    auth.require_manager()?;
    let stored = state.store.get_team(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("agent team"))?;
    let values = team_values(&state, &auth, input, Some(&stored)).await?;
    let team = state.store.update_team(auth.tenant_id(), id, &values).await?.ok_or_else(|| ApiError::not_found("agent team"))?;
    Ok(Json(TeamView::of(&team)))
}

#[utoipa::path(delete, path = "/api/agent-teams/{id}", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn remove_team(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    auth.require_manager()?;
    if state.store.delete_team(auth.tenant_id(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("agent team"))
    }
}

async fn team_values(
    state: &AppState,
    auth: &AuthUser,
    input: TeamInput,
    stored: Option<&crate::store::TeamWithMembers>,
) -> ApiResult<TeamValues> {
    let name = match (input.name.as_deref(), stored) {
        (Some(name), _) => validate::name("name", name)?,
        (None, Some(t)) => t.team.name.clone(),
        (None, None) => return Err(ApiError::validation("name: required")),
    };
    let description = match input.description.as_deref() {
        Some(d) => validate::optional_name("description", Some(d))?,
        None => stored.and_then(|t| t.team.description.clone()),
    };
    let router = input
        .router_agent_id
        .or(stored.and_then(|t| t.team.router_agent_id))
        .ok_or_else(|| ApiError::validation("routerAgentId: required"))?;
    if state.store.get_agent(auth.tenant_id(), router).await?.is_none() {
        return Err(ApiError::validation("routerAgentId: no such agent in this tenant"));
    }
    let members: Vec<(Uuid, Option<String>)> = match input.members {
        Some(members) => {
            if members.len() > MAX_TEAM_MEMBERS {
                return Err(ApiError::validation(format!("members: at most {MAX_TEAM_MEMBERS}")));
            }
            let mut out: Vec<(Uuid, Option<String>)> = Vec::with_capacity(members.len());
            for (i, member) in members.into_iter().enumerate() {
                if member.agent_id == router || out.iter().any(|(id, _)| *id == member.agent_id) {
                    return Err(ApiError::validation(format!("members[{i}].agentId: the router or a member twice")));
                }
                if state.store.get_agent(auth.tenant_id(), member.agent_id).await?.is_none() {
                    return Err(ApiError::validation(format!("members[{i}].agentId: no such agent in this tenant")));
                }
                let description = member.description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
                if description.as_ref().is_some_and(|d| d.chars().count() > 1000) {
                    return Err(ApiError::validation(format!("members[{i}].description: at most 1000 characters")));
                }
                out.push((member.agent_id, description));
            }
            out
        }
        None => stored.map(|t| t.members.iter().map(|m| (m.agent_id, m.description.clone())).collect()).unwrap_or_default(),
    };
    let is_active = input.active.or(stored.map(|t| t.team.is_active)).unwrap_or(true);
    Ok(TeamValues { name, description, is_active, router_agent_id: router, members })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RunsQuery {
    /// 1 to 200; 50 by default.
    pub limit: Option<i64>,
}

/// The agent runs on a conversation, newest first: who took part, routing, tool calls with
/// their arguments and results, tokens, latency and outcome.
#[utoipa::path(get, path = "/api/conversations/{id}/agent-runs", tag = "agents", security(("bearer" = [])),
    params(("id" = Uuid, Path), RunsQuery),
    responses((status = 200, body = Vec<AgentRunView>), (status = 404, body = ApiErrorBody)))]
pub async fn runs(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> ApiResult<Json<Vec<AgentRunView>>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "limit: 1 to 200"));
    }
    state.store.get_conversation(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("conversation"))?;
    let rows = state.store.list_agent_runs(auth.tenant_id(), id, limit).await?;
    Ok(Json(rows.iter().map(AgentRunView::of).collect()))
}
