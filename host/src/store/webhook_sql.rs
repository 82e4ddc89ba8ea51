//! The SQL behind [`WebhookStore`](super::WebhookStore), written once for both databases like `sql.rs`.

macro_rules! impl_webhook_store {
    ($store:ty, $begin:literal, $skip_locked:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::WebhookStore for $store {
            async fn create_webhook_subscription(
                &self,
                tenant_id: Uuid,
                values: &WebhookSubscriptionValues,
            ) -> StoreResult<WebhookSubscriptionRow> {
                Ok(sqlx::query_as(
                    "INSERT INTO webhook_subscriptions (id, tenant_id, url, events, secret, is_active, description, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant_id)
                .bind(&values.url)
                .bind(Json(&values.events))
                .bind(&values.secret)
                .bind(values.is_active)
                .bind(&values.description)
                .bind(Utc::now())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn list_webhook_subscriptions(&self, tenant_id: Uuid) -> StoreResult<Vec<WebhookSubscriptionRow>> {
                Ok(sqlx::query_as("SELECT * FROM webhook_subscriptions WHERE tenant_id = $1 ORDER BY created_at, id")
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn get_webhook_subscription(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<WebhookSubscriptionRow>> {
                Ok(sqlx::query_as("SELECT * FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn update_webhook_subscription(
                &self,
                tenant_id: Uuid,
                id: Uuid,
                values: &WebhookSubscriptionValues,
            ) -> StoreResult<Option<WebhookSubscriptionRow>> {
                Ok(sqlx::query_as(
                    "UPDATE webhook_subscriptions SET url = $3, events = $4, secret = $5, description = $7, updated_at = $8,
                       disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END,
                       consecutive_failures = CASE WHEN $6 AND NOT is_active THEN 0 ELSE consecutive_failures END,
                       is_active = $6
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant_id)
                .bind(id)
                .bind(&values.url)
                .bind(Json(&values.events))
                .bind(&values.secret)
                .bind(values.is_active)
                .bind(&values.description)
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_webhook_subscription(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn active_webhook_subscriptions(&self, tenant_id: Uuid) -> StoreResult<Vec<WebhookSubscriptionRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM webhook_subscriptions WHERE tenant_id = $1 AND is_active ORDER BY created_at, id",
                )
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn claim_webhook_events(
                &self,
                worker: &str,
                lease: chrono::Duration,
                limit: i64,
            ) -> StoreResult<Vec<WebhookEventRow>> {
                let now = Utc::now();
                let mut events: Vec<WebhookEventRow> = sqlx::query_as(concat!(
                    "UPDATE webhook_events SET locked_by = $1, locked_until = $2
                     WHERE seq IN (SELECT seq FROM (SELECT seq FROM webhook_events
                       WHERE locked_until IS NULL OR locked_until < $3 ORDER BY seq LIMIT $4 ",
                    $skip_locked,
                    ") AS claim)
                     RETURNING seq, tenant_id, event, entity_id, ordering_key, status, occurred_at"
                ))
                .bind(worker)
                .bind(now + lease)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                events.sort_by_key(|e| e.seq);
                Ok(events)
            }

            async fn fan_out_webhook_events(
                &self,
                worker: &str,
                events: &[(i64, Vec<NewWebhookDelivery>)],
            ) -> StoreResult<()> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                for (seq, deliveries) in events {
                    let taken = sqlx::query("DELETE FROM webhook_events WHERE seq = $1 AND locked_by = $2")
                        .bind(seq)
                        .bind(worker)
                        .execute(&mut *tx)
                        .await?;
                    if taken.rows_affected() == 0 {
                        continue;
                    }
                    for delivery in deliveries {
                        insert_delivery(&mut *tx, delivery, WebhookDeliveryStatus::Pending, None, now).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_webhook_deliveries(
                &self,
                worker: &str,
                lease: chrono::Duration,
                limit: i64,
            ) -> StoreResult<Vec<WebhookDeliveryRow>> {
                let now = Utc::now();
                let mut claimed: Vec<WebhookDeliveryRow> = sqlx::query_as(concat!(
                    "UPDATE webhook_deliveries SET status = 'SENDING', locked_by = $1, locked_until = $2, updated_at = $3
                     WHERE id IN (SELECT id FROM (SELECT d.id FROM webhook_deliveries d
                       WHERE ((d.status = 'PENDING' AND d.next_attempt_at <= $3) OR (d.status = 'SENDING' AND d.locked_until < $3))
                         AND EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = d.subscription_id AND s.is_active)
                         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                           WHERE e.subscription_id = d.subscription_id AND e.ordering_key = d.ordering_key
                             AND e.event_seq < d.event_seq AND e.status IN ('PENDING', 'SENDING'))
                       ORDER BY d.event_seq LIMIT $4 ",
                    $skip_locked,
                    ") AS claim) RETURNING *"
                ))
                .bind(worker)
                .bind(now + lease)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                claimed.sort_by_key(|d| d.event_seq);
                Ok(claimed)
            }

            async fn insert_webhook_delivery(
                &self,
                delivery: &NewWebhookDelivery,
                worker: &str,
            ) -> StoreResult<WebhookDeliveryRow> {
                insert_delivery(&self.pool, delivery, WebhookDeliveryStatus::Sending, Some(worker), Utc::now()).await
            }

            async fn record_webhook_attempt(
                &self,
                delivery: &WebhookDeliveryRow,
                worker: &str,
                attempt: &WebhookAttempt,
            ) -> StoreResult<Option<WebhookDeliveryRow>> {
                let now = Utc::now();
                let delivered = attempt.status == WebhookDeliveryStatus::Delivered;
                let mut tx = self.pool.begin_with($begin).await?;
                let stored: Option<WebhookDeliveryRow> = sqlx::query_as(
                    "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, next_attempt_at = $4,
                       locked_by = NULL, locked_until = NULL, response_status = $5, response_body = $6, last_error = $7,
                       attempt_log = $8, delivered_at = CASE WHEN $9 THEN $10 ELSE delivered_at END, updated_at = $10
                     WHERE id = $1 AND locked_by = $2 AND status = 'SENDING' RETURNING *",
                )
                .bind(delivery.id)
                .bind(worker)
                .bind(attempt.status)
                .bind(attempt.next_attempt_at)
                .bind(attempt.response_status)
                .bind(&attempt.response_body)
                .bind(&attempt.error)
                .bind(Json(&attempt.attempt_log))
                .bind(delivered)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if stored.is_some() {
                    if delivered {
                        sqlx::query(
                            "UPDATE webhook_subscriptions SET consecutive_failures = 0 WHERE id = $1 AND consecutive_failures <> 0",
                        )
                        .bind(delivery.subscription_id)
                        .execute(&mut *tx)
                        .await?;
                    } else {
                        let reason = format!(
                            "switched off after {} failed deliveries in a row; the last: {}",
                            attempt.disable_after,
                            attempt.error.as_deref().unwrap_or("no answer")
                        );
                        sqlx::query(
                            "UPDATE webhook_subscriptions SET consecutive_failures = consecutive_failures + 1,
                               disabled_reason = CASE WHEN is_active AND consecutive_failures + 1 >= $2 THEN $3 ELSE disabled_reason END,
                               is_active = CASE WHEN consecutive_failures + 1 >= $2 THEN FALSE ELSE is_active END,
                               updated_at = $4
                             WHERE id = $1",
                        )
                        .bind(delivery.subscription_id)
                        .bind(attempt.disable_after)
                        .bind(reason)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(stored)
            }

            async fn release_webhook_work(&self, worker: &str) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'PENDING', locked_by = NULL, locked_until = NULL
                     WHERE status = 'SENDING' AND locked_by = $1",
                )
                .bind(worker)
                .execute(&self.pool)
                .await?;
                sqlx::query("UPDATE webhook_events SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1")
                    .bind(worker)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_webhook_deliveries(
                &self,
                tenant_id: Uuid,
                subscription_id: Uuid,
                status: Option<WebhookDeliveryStatus>,
                limit: i64,
            ) -> StoreResult<Vec<WebhookDeliveryRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM webhook_deliveries WHERE tenant_id = $1 AND subscription_id = $2
                       AND ($3 IS NULL OR status = $3)
                     ORDER BY created_at DESC, id DESC LIMIT $4",
                )
                .bind(tenant_id)
                .bind(subscription_id)
                .bind(status)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn get_webhook_delivery(
                &self,
                tenant_id: Uuid,
                subscription_id: Uuid,
                id: Uuid,
            ) -> StoreResult<Option<WebhookDeliveryRow>> {
                Ok(sqlx::query_as("SELECT * FROM webhook_deliveries WHERE tenant_id = $1 AND subscription_id = $2 AND id = $3")
                    .bind(tenant_id)
                    .bind(subscription_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn redeliver_webhook_delivery(
                &self,
                tenant_id: Uuid,
                subscription_id: Uuid,
                id: Uuid,
            ) -> StoreResult<Option<WebhookDeliveryRow>> {
                let updated: Option<WebhookDeliveryRow> = sqlx::query_as(
                    "UPDATE webhook_deliveries SET status = 'PENDING', attempts = 0, next_attempt_at = $4, updated_at = $4
                     WHERE tenant_id = $1 AND subscription_id = $2 AND id = $3 AND status <> 'SENDING' RETURNING *",
                )
                .bind(tenant_id)
                .bind(subscription_id)
                .bind(id)
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await?;
                match updated {
                    Some(row) => Ok(Some(row)),
                    None => self.get_webhook_delivery(tenant_id, subscription_id, id).await,
                }
            }
        }

        async fn insert_delivery<'e, E>(
            executor: E,
            delivery: &NewWebhookDelivery,
            status: WebhookDeliveryStatus,
            worker: Option<&str>,
            now: DateTime<Utc>,
        ) -> StoreResult<WebhookDeliveryRow>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
        {
            Ok(sqlx::query_as(
                "INSERT INTO webhook_deliveries (id, tenant_id, subscription_id, event, payload, ordering_key, event_seq,
                   status, next_attempt_at, locked_by, locked_until, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $9, $9) RETURNING *",
            )
            .bind(delivery.id)
            .bind(delivery.tenant_id)
            .bind(delivery.subscription_id)
            .bind(&delivery.event)
            .bind(&delivery.payload)
            .bind(delivery.ordering_key)
            .bind(delivery.event_seq)
            .bind(status)
            .bind(now)
            .bind(worker)
            .bind(worker.map(|_| now + chrono::Duration::minutes(5)))
            .fetch_one(executor)
            .await?)
        }
    };
}

pub(super) use impl_webhook_store;
