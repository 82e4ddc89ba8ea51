//! `/api/webhook-subscriptions`: owners and admins subscribe URLs to events, read each
//! subscription's deliveries, redeliver one, and send a test delivery.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

use super::model::{self, CreatedSubscription, DeliveryView, SubscriptionInput, SubscriptionView};
use super::{TEST_EVENT, dispatcher};
use crate::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::state::AppState;
use crate::store::{NewWebhookDelivery, WebhookDeliveryStatus, WebhookSubscriptionRow, WebhookSubscriptionValues};
use crate::validate;

#[utoipa::path(get, path = "/api/webhook-subscriptions", tag = "webhook-subscriptions", security(("bearer" = [])),
    responses((status = 200, body = Vec<SubscriptionView>), (status = 403, body = ApiErrorBody)))]
pub async fn list(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Json<Vec<SubscriptionView>>> {
    auth.require_manager()?;
    Ok(Json(state.store.list_webhook_subscriptions(auth.tenant_id()).await?.iter().map(SubscriptionView::of).collect()))
}

/// Subscribes a URL to events. The answer holds the signing secret (given, or generated): the
/// only time it is shown.
#[utoipa::path(post, path = "/api/webhook-subscriptions", tag = "webhook-subscriptions", security(("bearer" = [])),
    request_body = SubscriptionInput,
    responses((status = 201, body = CreatedSubscription), (status = 403, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id()), err(level = "warn"))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(input): ApiJson<SubscriptionInput>,
) -> ApiResult<(StatusCode, Json<CreatedSubscription>)> {
    auth.require_manager()?;
    let url = model::target_url(input.url.as_deref().unwrap_or_default(), state.config.providers.allow_private_fetch)?;
    let events = model::events(input.events.as_deref().unwrap_or_default())?;
    let secret = match input.secret.as_deref() {
        Some(secret) => model::secret(secret)?,
        None => model::generate_secret(),
    };
    let values = WebhookSubscriptionValues {
        url,
        events,
        secret: state.secrets.seal(&secret),
        is_active: input.active.unwrap_or(true),
        description: validate::optional_name("description", input.description.as_deref())?,
    };
    let row = state.store.create_webhook_subscription(auth.tenant_id(), &values).await?;
    Ok((StatusCode::CREATED, Json(CreatedSubscription { subscription: SubscriptionView::of(&row), secret })))
}

#[utoipa::path(get, path = "/api/webhook-subscriptions/{id}", tag = "webhook-subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ApiErrorBody)))]
pub async fn get(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<SubscriptionView>> {
    auth.require_manager()?;
    Ok(Json(SubscriptionView::of(&subscription(&state, &auth, id).await?)))
}

/// Changes the fields given. A new `secret` replaces the old one at once (it is not shown back);
/// `active: true` switches a subscription the dispatcher switched off on again.
#[utoipa::path(patch, path = "/api/webhook-subscriptions/{id}", tag = "webhook-subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = SubscriptionInput,
    responses((status = 200, body = SubscriptionView), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), subscription.id = %id), err(level = "warn"))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<SubscriptionInput>,
) -> ApiResult<Json<SubscriptionView>> {
    auth.require_manager()?;
    let stored = subscription(&state, &auth, id).await?;
    let values = WebhookSubscriptionValues {
        url: match input.url.as_deref() {
            Some(url) => model::target_url(url, state.config.providers.allow_private_fetch)?,
            None => stored.url.clone(),
        },
        events: match input.events.as_deref() {
            Some(events) => model::events(events)?,
            None => stored.events.0.clone(),
        },
        secret: match input.secret.as_deref() {
            Some(secret) => state.secrets.seal(&model::secret(secret)?),
            None => stored.secret.clone(),
        },
        is_active: input.active.unwrap_or(stored.is_active),
        description: match input.description.as_deref() {
            Some(description) => validate::optional_name("description", Some(description))?,
            None => stored.description.clone(),
        },
    };
    let row = state
        .store
        .update_webhook_subscription(auth.tenant_id(), id, &values)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook subscription"))?;
    if row.is_active {
        state.webhooks.wake();
    }
    Ok(Json(SubscriptionView::of(&row)))
}

/// Deletes the subscription and its deliveries (pending ones are not sent).
#[utoipa::path(delete, path = "/api/webhook-subscriptions/{id}", tag = "webhook-subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn remove(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<StatusCode> {
    auth.require_manager()?;
    if state.store.delete_webhook_subscription(auth.tenant_id(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook subscription"))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveriesQuery {
    /// PENDING, SENDING, DELIVERED or DEAD; all when omitted.
    pub status: Option<WebhookDeliveryStatus>,
    /// 1 to 200; 50 by default.
    pub limit: Option<i64>,
}

/// A subscription's deliveries, newest first, with the last answer (status and the start of its
/// body) and the latest attempts.
#[utoipa::path(get, path = "/api/webhook-subscriptions/{id}/deliveries", tag = "webhook-subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path), DeliveriesQuery),
    responses((status = 200, body = Vec<DeliveryView>), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    auth.require_manager()?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "limit: 1 to 200"));
    }
    subscription(&state, &auth, id).await?;
    let rows = state.store.list_webhook_deliveries(auth.tenant_id(), id, query.status, limit).await?;
    Ok(Json(rows.iter().map(DeliveryView::of).collect()))
}

#[utoipa::path(get, path = "/api/webhook-subscriptions/{id}/deliveries/{deliveryId}", tag = "webhook-subscriptions",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("deliveryId" = Uuid, Path)),
    responses((status = 200, body = DeliveryView), (status = 404, body = ApiErrorBody)))]
pub async fn delivery(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, delivery_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<DeliveryView>> {
    auth.require_manager()?;
    let row = state
        .store
        .get_webhook_delivery(auth.tenant_id(), id, delivery_id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook delivery"))?;
    Ok(Json(DeliveryView::of(&row)))
}

/// Sends a delivery again (the same body, freshly signed) with a new run of attempts; 409 while
/// it is being sent.
#[utoipa::path(post, path = "/api/webhook-subscriptions/{id}/deliveries/{deliveryId}/redeliver", tag = "webhook-subscriptions",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("deliveryId" = Uuid, Path)),
    responses((status = 202, body = DeliveryView), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), delivery.id = %delivery_id), err(level = "warn"))]
pub async fn redeliver(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, delivery_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    auth.require_manager()?;
    let row = state
        .store
        .redeliver_webhook_delivery(auth.tenant_id(), id, delivery_id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook delivery"))?;
    if row.status == WebhookDeliveryStatus::Sending {
        return Err(ApiError::conflict("the delivery is being sent; try again when it is done"));
    }
    state.webhooks.wake();
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::of(&row))))
}

/// Sends a `webhook.test` event to the subscription now and answers how it went (one attempt,
/// no retries; it is listed with the other deliveries).
#[utoipa::path(post, path = "/api/webhook-subscriptions/{id}/test", tag = "webhook-subscriptions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DeliveryView), (status = 404, body = ApiErrorBody)))]
#[tracing::instrument(skip_all, fields(tenant.id = %auth.tenant_id(), subscription.id = %id), err(level = "warn"))]
pub async fn test(State(state): State<AppState>, auth: AuthUser, ApiPath(id): ApiPath<Uuid>) -> ApiResult<Json<DeliveryView>> {
    auth.require_manager()?;
    let subscription = subscription(&state, &auth, id).await?;
    let delivery_id = Uuid::now_v7();
    let payload = json!({
        "id": delivery_id,
        "event": TEST_EVENT,
        "tenantId": auth.tenant_id(),
        "occurredAt": chrono::Utc::now(),
        "data": {"subscriptionId": id, "message": "A test delivery from OmniChat."},
    });
    let worker = format!("test-{delivery_id}");
    let new = NewWebhookDelivery {
        id: delivery_id,
        tenant_id: auth.tenant_id(),
        subscription_id: id,
        event: TEST_EVENT.to_owned(),
        payload: payload.to_string(),
        ordering_key: None,
        event_seq: 0,
    };
    let leased = state.store.insert_webhook_delivery(&new, &worker).await?;
    let client = state.bridge_deps.fetcher.http_client();
    let row = dispatcher::deliver(&state, &client, &worker, &subscription, &leased, false).await?.unwrap_or(leased);
    Ok(Json(DeliveryView::of(&row)))
}

async fn subscription(state: &AppState, auth: &AuthUser, id: Uuid) -> ApiResult<WebhookSubscriptionRow> {
    state.store.get_webhook_subscription(auth.tenant_id(), id).await?.ok_or_else(|| ApiError::not_found("webhook subscription"))
}
