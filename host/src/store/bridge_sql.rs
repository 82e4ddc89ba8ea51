//! The SQL behind [`BridgeStore`](super::BridgeStore): the native bridges' session state, written
//! once for both databases like `sql.rs`.

macro_rules! impl_bridge_store {
    ($store:ty, $begin:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::BridgeStore for $store {
            async fn reset_telegram_session(
                &self,
                tenant_id: Uuid,
                channel_id: Uuid,
                phone_number: &str,
            ) -> StoreResult<TelegramSessionRow> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let row: TelegramSessionRow = sqlx::query_as(
                    "INSERT INTO telegram_sessions (id, tenant_id, channel_instance_id, session_type, phone_number, created_at, updated_at)
                     VALUES ($1, $2, $3, 'user', $4, $5, $5)
                     ON CONFLICT (channel_instance_id) DO UPDATE SET phone_number = excluded.phone_number, data = '{}',
                       update_state = NULL, pending_login = NULL, login_expires_at = NULL, updated_at = excluded.updated_at
                     RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant_id)
                .bind(channel_id)
                .bind(phone_number)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM telegram_peers WHERE session_id = $1").bind(row.id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn get_telegram_session(&self, session_id: Uuid) -> StoreResult<Option<TelegramSessionRow>> {
                Ok(sqlx::query_as("SELECT * FROM telegram_sessions WHERE id = $1")
                    .bind(session_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn telegram_session_of_channel(
                &self,
                tenant_id: Uuid,
                channel_id: Uuid,
            ) -> StoreResult<Option<TelegramSessionRow>> {
                Ok(sqlx::query_as("SELECT * FROM telegram_sessions WHERE tenant_id = $1 AND channel_instance_id = $2")
                    .bind(tenant_id)
                    .bind(channel_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn save_telegram_session_data(&self, session_id: Uuid, data: &serde_json::Value) -> StoreResult<()> {
                sqlx::query("UPDATE telegram_sessions SET data = $2, updated_at = $3 WHERE id = $1")
                    .bind(session_id)
                    .bind(Json(data))
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn save_telegram_update_state(&self, session_id: Uuid, state: &serde_json::Value) -> StoreResult<()> {
                sqlx::query("UPDATE telegram_sessions SET update_state = $2, updated_at = $3 WHERE id = $1")
                    .bind(session_id)
                    .bind(Json(state))
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_telegram_peer(&self, session_id: Uuid, peer_id: i64) -> StoreResult<Option<TelegramPeerRow>> {
                Ok(sqlx::query_as(
                    "SELECT peer_id, peer_kind, access_hash, data FROM telegram_peers WHERE session_id = $1 AND peer_id = $2",
                )
                .bind(session_id)
                .bind(peer_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn get_telegram_self_peer(&self, session_id: Uuid) -> StoreResult<Option<TelegramPeerRow>> {
                Ok(sqlx::query_as(
                    "SELECT peer_id, peer_kind, access_hash, data FROM telegram_peers
                     WHERE session_id = $1 AND peer_kind = 'self' LIMIT 1",
                )
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn put_telegram_peers(&self, session_id: Uuid, peers: &[TelegramPeerRow]) -> StoreResult<()> {
                if peers.is_empty() {
                    return Ok(());
                }
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                for peer in peers {
                    sqlx::query(
                        "INSERT INTO telegram_peers (session_id, peer_id, peer_kind, access_hash, data, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (session_id, peer_id) DO UPDATE SET peer_kind = excluded.peer_kind,
                           access_hash = COALESCE(excluded.access_hash, telegram_peers.access_hash),
                           data = excluded.data, updated_at = excluded.updated_at",
                    )
                    .bind(session_id)
                    .bind(peer.peer_id)
                    .bind(&peer.peer_kind)
                    .bind(peer.access_hash)
                    .bind(&peer.data)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_telegram_session(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM telegram_sessions WHERE tenant_id = $1 AND channel_instance_id = $2")
                    .bind(tenant_id)
                    .bind(channel_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_live_telegram_sessions(&self) -> StoreResult<Vec<TelegramSessionRow>> {
                Ok(sqlx::query_as(
                    "SELECT s.* FROM telegram_sessions s JOIN channel_instances c ON c.id = s.channel_instance_id
                     WHERE s.session_type = 'user' AND c.type = 'TELEGRAM_USER' AND c.status = 'CONNECTED'
                     ORDER BY s.created_at, s.id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn whatsapp_session_for_channel(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<WhatsAppSessionRow> {
                let now = Utc::now();
                Ok(sqlx::query_as(
                    "INSERT INTO whatsapp_sessions (id, tenant_id, channel_instance_id, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $4)
                     ON CONFLICT (channel_instance_id) DO UPDATE SET updated_at = whatsapp_sessions.updated_at
                     RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant_id)
                .bind(channel_id)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn get_whatsapp_session(&self, session_id: Uuid) -> StoreResult<Option<WhatsAppSessionRow>> {
                Ok(sqlx::query_as("SELECT * FROM whatsapp_sessions WHERE id = $1")
                    .bind(session_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn whatsapp_session_of_channel(
                &self,
                tenant_id: Uuid,
                channel_id: Uuid,
            ) -> StoreResult<Option<WhatsAppSessionRow>> {
                Ok(sqlx::query_as("SELECT * FROM whatsapp_sessions WHERE tenant_id = $1 AND channel_instance_id = $2")
                    .bind(tenant_id)
                    .bind(channel_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn save_whatsapp_device(&self, session_id: Uuid, device: Option<&[u8]>) -> StoreResult<()> {
                sqlx::query("UPDATE whatsapp_sessions SET device = $2, updated_at = $3 WHERE id = $1")
                    .bind(session_id)
                    .bind(device)
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_whatsapp_qr(
                &self,
                session_id: Uuid,
                qr: Option<&str>,
                expires_at: Option<DateTime<Utc>>,
            ) -> StoreResult<()> {
                sqlx::query("UPDATE whatsapp_sessions SET qr = $2, qr_expires_at = $3, updated_at = $4 WHERE id = $1")
                    .bind(session_id)
                    .bind(qr)
                    .bind(expires_at)
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn whatsapp_keys_get(
                &self,
                session_id: Uuid,
                key_type: &str,
                key_ids: &[String],
            ) -> StoreResult<Vec<(String, Vec<u8>)>> {
                let mut found = Vec::with_capacity(key_ids.len());
                for key_id in key_ids {
                    let row: Option<(String, Vec<u8>)> = sqlx::query_as(
                        "SELECT key_id, value FROM whatsapp_keys WHERE session_id = $1 AND key_type = $2 AND key_id = $3",
                    )
                    .bind(session_id)
                    .bind(key_type)
                    .bind(key_id)
                    .fetch_optional(&self.pool)
                    .await?;
                    found.extend(row);
                }
                Ok(found)
            }

            async fn whatsapp_keys_put(&self, session_id: Uuid, key_type: &str, entries: &[(String, Vec<u8>)]) -> StoreResult<()> {
                if entries.is_empty() {
                    return Ok(());
                }
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                for (key_id, value) in entries {
                    sqlx::query(
                        "INSERT INTO whatsapp_keys (session_id, key_type, key_id, value, updated_at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (session_id, key_type, key_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    )
                    .bind(session_id)
                    .bind(key_type)
                    .bind(key_id)
                    .bind(value)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn whatsapp_keys_delete(&self, session_id: Uuid, key_type: &str, key_ids: &[String]) -> StoreResult<u64> {
                let mut deleted = 0;
                let mut tx = self.pool.begin_with($begin).await?;
                for key_id in key_ids {
                    let done = sqlx::query("DELETE FROM whatsapp_keys WHERE session_id = $1 AND key_type = $2 AND key_id = $3")
                        .bind(session_id)
                        .bind(key_type)
                        .bind(key_id)
                        .execute(&mut *tx)
                        .await?;
                    deleted += done.rows_affected();
                }
                tx.commit().await?;
                Ok(deleted)
            }

            async fn whatsapp_keys_list(&self, session_id: Uuid, key_type: &str, prefix: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
                Ok(sqlx::query_as(
                    "SELECT key_id, value FROM whatsapp_keys
                     WHERE session_id = $1 AND key_type = $2 AND substr(key_id, 1, length($3)) = $3 ORDER BY key_id",
                )
                .bind(session_id)
                .bind(key_type)
                .bind(prefix)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn clear_whatsapp_session(&self, session_id: Uuid) -> StoreResult<()> {
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query("DELETE FROM whatsapp_keys WHERE session_id = $1").bind(session_id).execute(&mut *tx).await?;
                sqlx::query("UPDATE whatsapp_sessions SET device = NULL, qr = NULL, qr_expires_at = NULL, updated_at = $2 WHERE id = $1")
                    .bind(session_id)
                    .bind(Utc::now())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_live_whatsapp_sessions(&self) -> StoreResult<Vec<WhatsAppSessionRow>> {
                Ok(sqlx::query_as(
                    "SELECT s.* FROM whatsapp_sessions s JOIN channel_instances c ON c.id = s.channel_instance_id
                     WHERE c.type = 'WHATSAPP' AND c.status IN ('CONNECTED', 'CONNECTING')
                     ORDER BY s.created_at, s.id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn acquire_session_lease(
                &self,
                kind: SessionKind,
                session_id: Uuid,
                owner: &str,
                until: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let sql = match kind {
                    SessionKind::Telegram => {
                        "UPDATE telegram_sessions SET lease_owner = $2, lease_until = $3
                         WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until IS NULL OR lease_until < $4)"
                    }
                    SessionKind::WhatsApp => {
                        "UPDATE whatsapp_sessions SET lease_owner = $2, lease_until = $3
                         WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until IS NULL OR lease_until < $4)"
                    }
                };
                let done =
                    sqlx::query(sql).bind(session_id).bind(owner).bind(until).bind(Utc::now()).execute(&self.pool).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_session_lease(&self, kind: SessionKind, session_id: Uuid, owner: &str) -> StoreResult<()> {
                let sql = match kind {
                    SessionKind::Telegram => {
                        "UPDATE telegram_sessions SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2"
                    }
                    SessionKind::WhatsApp => {
                        "UPDATE whatsapp_sessions SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2"
                    }
                };
                sqlx::query(sql).bind(session_id).bind(owner).execute(&self.pool).await?;
                Ok(())
            }

            async fn set_telegram_pending_login(
                &self,
                session_id: Uuid,
                sealed: Option<&str>,
                expires_at: Option<DateTime<Utc>>,
            ) -> StoreResult<()> {
                sqlx::query("UPDATE telegram_sessions SET pending_login = $2, login_expires_at = $3, updated_at = $4 WHERE id = $1")
                    .bind(session_id)
                    .bind(sealed)
                    .bind(expires_at)
                    .bind(Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_bridge_request(&self, request: &BridgeRequest) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO bridge_requests (id, owner, channel_instance_id, kind, payload, status, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7)",
                )
                .bind(request.id)
                .bind(&request.owner)
                .bind(request.channel_instance_id)
                .bind(&request.kind)
                .bind(&request.payload)
                .bind(request.created_at)
                .bind(request.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn claim_bridge_requests(&self, owner: &str) -> StoreResult<Vec<BridgeRequest>> {
                Ok(sqlx::query_as(
                    "UPDATE bridge_requests SET status = 'RUNNING'
                     WHERE owner = $1 AND status = 'PENDING' AND expires_at > $2
                     RETURNING *",
                )
                .bind(owner)
                .bind(Utc::now())
                .fetch_all(&self.pool)
                .await?)
            }

            async fn finish_bridge_request(&self, id: Uuid, outcome: Result<&[u8], (&str, &str)>) -> StoreResult<()> {
                let (status, result, code, error) = match outcome {
                    Ok(bytes) => ("DONE", Some(bytes), None, None),
                    Err((code, error)) => ("FAILED", None, Some(code), Some(error)),
                };
                sqlx::query("UPDATE bridge_requests SET status = $2, result = $3, error_code = $4, error = $5 WHERE id = $1")
                    .bind(id)
                    .bind(status)
                    .bind(result)
                    .bind(code)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn take_bridge_request(&self, id: Uuid) -> StoreResult<Option<BridgeRequest>> {
                Ok(sqlx::query_as("DELETE FROM bridge_requests WHERE id = $1 AND status IN ('DONE', 'FAILED') RETURNING *")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn delete_bridge_request(&self, id: Uuid) -> StoreResult<()> {
                sqlx::query("DELETE FROM bridge_requests WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(())
            }

            async fn purge_bridge_requests(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                let purged =
                    sqlx::query("DELETE FROM bridge_requests WHERE expires_at < $1").bind(before).execute(&self.pool).await?;
                Ok(purged.rows_affected())
            }
        }
    };
}

pub(crate) use impl_bridge_store;
