//! `/api/users`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::password;
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, AuthUser};
use crate::state::AppState;
use crate::store::{NewUser, Role, StoreError, User, UserPatch};
use crate::validate;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InviteUserRequest {
    pub email: String,
    pub name: Option<String>,
    /// Defaults to `agent`.
    pub role: Option<Role>,
    /// The initial password; when absent one is generated and returned once.
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitedUser {
    #[serde(flatten)]
    pub user: User,
    /// Present only when the server generated the password; shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub name: Option<String>,
    pub role: Option<Role>,
}

/// Users of the caller's tenant, oldest first.
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])), responses(
    (status = 200, body = Vec<User>),
))]
pub async fn list(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(state.store.list_users(auth.tenant_id()).await?))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = User), (status = 404, body = ApiErrorBody)))]
pub async fn get(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<User>> {
    let user = state.store.get_user(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(user))
}

/// Adds a user to the caller's tenant with a role (owner/admin only; only an owner grants `owner`).
#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])), request_body = InviteUserRequest,
    responses(
        (status = 201, body = InvitedUser),
        (status = 403, body = ApiErrorBody),
        (status = 409, description = "email already registered", body = ApiErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id()))]
pub async fn invite(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<InviteUserRequest>,
) -> ApiResult<(StatusCode, Json<InvitedUser>)> {
    auth.require_manager()?;
    let role = req.role.unwrap_or(Role::Agent);
    ensure_may_grant(&auth, role)?;
    let email = validate::email(&req.email)?;
    let name = validate::optional_name("name", req.name.as_deref())?;
    let (password, temporary_password) = match req.password {
        Some(password) => {
            validate::password(&password)?;
            (password, None)
        }
        None => {
            let generated = generate_password();
            (generated.clone(), Some(generated))
        }
    };
    let password_hash = password::hash(password).await?;
    let user =
        state.store.create_user(auth.tenant_id(), NewUser { email, name, role, password_hash }).await.map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict("a user with this email already exists"),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(InvitedUser { user, temporary_password })))
}

/// Changes a user's name or role. A tenant always keeps at least one owner.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", security(("bearer" = [])), request_body = UpdateUserRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = User), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 409, description = "would leave the tenant without an owner", body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id()))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<User>> {
    auth.require_manager()?;
    let target = state.store.get_user(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    ensure_may_manage(&auth, &target)?;
    if let Some(role) = req.role {
        ensure_may_grant(&auth, role)?;
    }
    let patch = UserPatch { name: validate::optional_name("name", req.name.as_deref())?, role: req.role };
    let user = state.store.update_user(auth.tenant_id(), id, patch).await?.ok_or_else(|| ApiError::not_found("user"))?;
    if user.role != target.role {
        state.realtime.user_role_changed(id).await;
    }
    Ok(Json(user))
}

/// Removes a user from the tenant; its sessions end at once.
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 409, description = "would leave the tenant without an owner", body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id()))]
pub async fn remove(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    auth.require_manager()?;
    let target = state.store.get_user(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    ensure_may_manage(&auth, &target)?;
    // The store keeps the last owner, also against a concurrent demotion or removal (409).
    state.store.delete_user(auth.tenant_id(), id).await?;
    state.realtime.user_removed(id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Admins manage admins and agents; only owners touch owners.
fn ensure_may_manage(auth: &AuthUser, target: &User) -> ApiResult<()> {
    if target.role == Role::Owner && auth.role() != Role::Owner {
        return Err(ApiError::forbidden("only an owner can change or remove an owner"));
    }
    Ok(())
}

fn ensure_may_grant(auth: &AuthUser, role: Role) -> ApiResult<()> {
    if role == Role::Owner && auth.role() != Role::Owner {
        return Err(ApiError::forbidden("only an owner can grant the owner role"));
    }
    Ok(())
}

fn generate_password() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 15]>())
}
