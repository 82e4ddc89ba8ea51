//! The SQL behind [`Store`](super::Store), written once for both databases. SQLite and PostgreSQL
//! accept the same `$n` placeholders, `RETURNING` and `ON CONFLICT`, so one body serves both;
//! the macro instantiates it per pool type. Where the dialects differ the caller passes the piece
//! (how a write transaction begins). Times are bound from Rust, never `now()`, for the same reason.

macro_rules! impl_store {
    ($store:ty, $begin:literal, $skip_locked:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn migrate(&self) -> $crate::store::StoreResult<()> {
                Self::MIGRATOR.run(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.close_direct().await;
                self.pool.close().await;
            }

            async fn create_tenant_with_owner(
                &self,
                tenant_name: &str,
                owner: NewUser,
            ) -> StoreResult<(Tenant, User)> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let tenant: Tenant = sqlx::query_as(
                    "INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant_name)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let user: User = sqlx::query_as(
                    "INSERT INTO users (id, tenant_id, email, name, role, password_hash, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant.id)
                .bind(&owner.email)
                .bind(&owner.name)
                .bind(owner.role)
                .bind(&owner.password_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok((tenant, user))
            }

            async fn get_tenant(&self, tenant_id: Uuid) -> StoreResult<Option<Tenant>> {
                Ok(sqlx::query_as("SELECT * FROM tenants WHERE id = $1")
                    .bind(tenant_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn get_user(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn list_users(&self, tenant_id: Uuid) -> StoreResult<Vec<User>> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE tenant_id = $1 ORDER BY created_at, id")
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn create_user(&self, tenant_id: Uuid, user: NewUser) -> StoreResult<User> {
                let now = Utc::now();
                Ok(sqlx::query_as(
                    "INSERT INTO users (id, tenant_id, email, name, role, password_hash, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant_id)
                .bind(&user.email)
                .bind(&user.name)
                .bind(user.role)
                .bind(&user.password_hash)
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn update_user(
                &self,
                tenant_id: Uuid,
                user_id: Uuid,
                patch: UserPatch,
            ) -> StoreResult<Option<User>> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let demotes = patch.role.is_some_and(|role| role != Role::Owner);
                if demotes {
                    lock_tenant(&mut *tx, tenant_id, now).await?;
                }
                let user: Option<User> = sqlx::query_as(
                    "UPDATE users SET name = COALESCE($3, name), role = COALESCE($4, role), updated_at = $5
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(patch.name)
                .bind(patch.role)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if demotes && user.is_some() && owners(&mut *tx, tenant_id).await? == 0 {
                    return Err(StoreError::LastOwner);
                }
                tx.commit().await?;
                Ok(user)
            }

            async fn delete_user(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                lock_tenant(&mut *tx, tenant_id, now).await?;
                let role: Option<Role> = sqlx::query_scalar("DELETE FROM users WHERE tenant_id = $1 AND id = $2 RETURNING role")
                    .bind(tenant_id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if role == Some(Role::Owner) && owners(&mut *tx, tenant_id).await? == 0 {
                    return Err(StoreError::LastOwner);
                }
                tx.commit().await?;
                Ok(role.is_some())
            }

            async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()> {
                insert_refresh_token(&self.pool, &token).await
            }

            async fn rotate_refresh_token(
                &self,
                old_hash: &str,
                new: NewRefreshToken,
                sealed_new: &str,
                grace: std::time::Duration,
            ) -> StoreResult<Rotation> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                // Spending the token is the first statement: on PostgreSQL a concurrent rotation
                // waits on the row lock and then finds the token spent; SQLite serialises writers.
                let spent: Option<(Uuid, Uuid, Uuid, DateTime<Utc>)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET revoked_at = $1, replaced_by = $2, successor_token = $4
                     WHERE token_hash = $3 AND revoked_at IS NULL
                     RETURNING id, tenant_id, user_id, expires_at",
                )
                .bind(now)
                .bind(new.id)
                .bind(old_hash)
                .bind(sealed_new)
                .fetch_optional(&mut *tx)
                .await?;
                let outcome = match spent {
                    Some((id, tenant_id, user_id, expires_at)) if expires_at > now => {
                        match user_of(&mut *tx, tenant_id, user_id).await? {
                            Some(user) => {
                                insert_refresh_token(&mut *tx, &new).await?;
                                // The predecessor's grace is over: its copy of this token goes.
                                sqlx::query("UPDATE refresh_tokens SET successor_token = NULL WHERE replaced_by = $1")
                                    .bind(id)
                                    .execute(&mut *tx)
                                    .await?;
                                Rotation::Rotated(user)
                            }
                            None => Rotation::Invalid,
                        }
                    }
                    Some(_) => Rotation::Invalid,
                    None => {
                        let known: Option<(Uuid, Uuid, Option<DateTime<Utc>>, Option<String>)> = sqlx::query_as(
                            "SELECT tenant_id, user_id, revoked_at, successor_token FROM refresh_tokens WHERE token_hash = $1",
                        )
                        .bind(old_hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                        let since = now - chrono::Duration::from_std(grace).unwrap_or_default();
                        match known {
                            Some((tenant_id, user_id, Some(revoked_at), Some(sealed_successor))) if revoked_at > since => {
                                // The successor must still be live: once it is spent, this is reuse.
                                let live: Option<Uuid> = sqlx::query_scalar(
                                    "SELECT next.id FROM refresh_tokens spent JOIN refresh_tokens next ON next.id = spent.replaced_by
                                     WHERE spent.token_hash = $1 AND next.revoked_at IS NULL AND next.expires_at > $2",
                                )
                                .bind(old_hash)
                                .bind(now)
                                .fetch_optional(&mut *tx)
                                .await?;
                                match (live, user_of(&mut *tx, tenant_id, user_id).await?) {
                                    (Some(_), Some(user)) => Rotation::Repeated { user, sealed_successor },
                                    _ => revoke_family_of(&mut *tx, old_hash, now).await?,
                                }
                            }
                            Some(_) => revoke_family_of(&mut *tx, old_hash, now).await?,
                            None => Rotation::Invalid,
                        }
                    }
                };
                tx.commit().await?;
                Ok(outcome)
            }

            async fn revoke_refresh_family(&self, tenant_id: Uuid, family_id: Uuid) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $1), successor_token = NULL
                     WHERE tenant_id = $2 AND family_id = $3 AND (revoked_at IS NULL OR successor_token IS NOT NULL)",
                )
                .bind(Utc::now())
                .bind(tenant_id)
                .bind(family_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn create_channel(&self, tenant_id: Uuid, channel: NewChannel) -> StoreResult<Channel> {
                let now = Utc::now();
                Ok(sqlx::query_as(
                    "INSERT INTO channel_instances
                       (id, tenant_id, type, status, name, external_id, config, metadata, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant_id)
                .bind(channel.channel_type)
                .bind(ChannelStatus::Disconnected)
                .bind(&channel.name)
                .bind(&channel.external_id)
                .bind(Json(&channel.config))
                .bind(Json(&channel.metadata))
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn list_channels(&self, tenant_id: Uuid) -> StoreResult<Vec<Channel>> {
                Ok(sqlx::query_as("SELECT * FROM channel_instances WHERE tenant_id = $1 ORDER BY created_at, id")
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn get_channel(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<Option<Channel>> {
                Ok(sqlx::query_as("SELECT * FROM channel_instances WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(channel_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn update_channel(
                &self,
                tenant_id: Uuid,
                channel_id: Uuid,
                patch: ChannelPatch,
            ) -> StoreResult<Option<Channel>> {
                let set_external_id = patch.external_id.is_some();
                let channel = sqlx::query_as(
                    "UPDATE channel_instances SET
                       name = COALESCE($3, name),
                       external_id = CASE WHEN $4 THEN $5 ELSE external_id END,
                       config = COALESCE($6, config),
                       metadata = COALESCE($7, metadata),
                       updated_at = $8
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant_id)
                .bind(channel_id)
                .bind(patch.name)
                .bind(set_external_id)
                .bind(patch.external_id.flatten())
                .bind(patch.config.map(Json))
                .bind(patch.metadata.map(Json))
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await;
                // Also after an error (the statement may have run); a cancelled call leaves it to
                // the trigger's notification.
                self.channel_changed(channel_id);
                Ok(channel?)
            }

            async fn set_channel_status(
                &self,
                tenant_id: Uuid,
                channel_id: Uuid,
                status: ChannelStatus,
                reason: Option<&str>,
            ) -> StoreResult<Option<Channel>> {
                let channel = sqlx::query_as(
                    "UPDATE channel_instances SET status = $3, status_reason = $4, updated_at = $5
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant_id)
                .bind(channel_id)
                .bind(status)
                .bind(reason)
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await;
                // Also after an error (the statement may have run); a cancelled call leaves it to
                // the trigger's notification.
                self.channel_changed(channel_id);
                Ok(channel?)
            }

            async fn delete_channel(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM channel_instances WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(channel_id)
                    .execute(&self.pool)
                    .await;
                self.channel_changed(channel_id);
                Ok(done?.rows_affected() > 0)
            }
            async fn find_channel(&self, channel_id: Uuid) -> StoreResult<Option<Channel>> {
                // A webhook's lookup: PostgreSQL runs it on the webhook path's own connections.
                self.channel_by_id(channel_id).await
            }

            async fn find_channels_by_external_id(
                &self,
                channel_type: &ChannelType,
                external_id: &str,
            ) -> StoreResult<Vec<Channel>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM channel_instances WHERE type = $1 AND external_id = $2
                     ORDER BY verified_at IS NULL, created_at, id LIMIT 100",
                )
                .bind(channel_type)
                .bind(external_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn set_channel_verified(&self, tenant_id: Uuid, channel_id: Uuid, verified: bool) -> StoreResult<()> {
                let done = sqlx::query("UPDATE channel_instances SET verified_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(channel_id)
                    .bind(verified.then(Utc::now))
                    .execute(&self.pool)
                    .await;
                self.channel_changed(channel_id);
                done?;
                Ok(())
            }

            async fn ingest_message(&self, msg: &NewInboundMessage) -> StoreResult<Ingested> {
                // Batched with concurrent calls; how a batch reaches the database is the dialect's.
                self.ingest(msg).await
            }

            async fn list_conversations(&self, tenant_id: Uuid, query: &ConversationQuery) -> StoreResult<Vec<Conversation>> {
                let (assignee_filter, assignee_id) = match query.assignee {
                    None => (0i32, None),
                    Some(AssigneeFilter::Unassigned) => (1, None),
                    Some(AssigneeFilter::User(id)) => (2, Some(id)),
                };
                let (after_at, after_id) = query.after.unzip();
                Ok(sqlx::query_as(
                    "SELECT * FROM conversations
                     WHERE tenant_id = $1
                       AND ($2 IS NULL OR status = $2)
                       AND ($3 IS NULL OR channel_instance_id = $3)
                       AND ($4 = 0 OR ($4 = 1 AND assignee_id IS NULL) OR ($4 = 2 AND assignee_id = $5))
                       AND ($6 IS NULL OR customer_id = $6)
                       AND ($7 IS NULL OR last_message_at < $7 OR (last_message_at = $7 AND id < $8))
                     ORDER BY last_message_at DESC, id DESC
                     LIMIT $9",
                )
                .bind(tenant_id)
                .bind(query.status)
                .bind(query.channel_instance_id)
                .bind(assignee_filter)
                .bind(assignee_id)
                .bind(query.customer_id)
                .bind(after_at)
                .bind(after_id)
                .bind(query.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn get_conversation(&self, tenant_id: Uuid, conversation_id: Uuid) -> StoreResult<Option<Conversation>> {
                Ok(sqlx::query_as("SELECT * FROM conversations WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(conversation_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn mark_conversation_read(
                &self,
                tenant_id: Uuid,
                user_id: Uuid,
                conversation_id: Uuid,
                at: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO conversation_reads (user_id, conversation_id, last_read_at)
                     SELECT $1, id, $3 FROM conversations WHERE id = $2 AND tenant_id = $4
                     ON CONFLICT (user_id, conversation_id) DO UPDATE SET last_read_at = excluded.last_read_at",
                )
                .bind(user_id)
                .bind(conversation_id)
                .bind(at)
                .bind(tenant_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn read_states(&self, user_id: Uuid, conversation_ids: &[Uuid]) -> StoreResult<Vec<ReadState>> {
                if conversation_ids.is_empty() {
                    return Ok(Vec::new());
                }
                // Placeholders only ($2, $3, ...): every value is bound.
                let list: Vec<String> = (2..conversation_ids.len() + 2).map(|n| format!("${n}")).collect();
                let sql = format!(
                    "SELECT c.id AS conversation_id, r.last_read_at AS last_read_at,
                       (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'INBOUND'
                          AND (r.last_read_at IS NULL OR m.created_at > r.last_read_at)) AS unread_count
                     FROM conversations c
                     LEFT JOIN conversation_reads r ON r.conversation_id = c.id AND r.user_id = $1
                     WHERE c.id IN ({})",
                    list.join(", ")
                );
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user_id);
                for id in conversation_ids {
                    query = query.bind(*id);
                }
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn update_conversation(
                &self,
                tenant_id: Uuid,
                conversation_id: Uuid,
                patch: &ConversationPatch,
            ) -> StoreResult<Option<Conversation>> {
                Ok(sqlx::query_as(
                    "UPDATE conversations SET
                       status = COALESCE($3, status),
                       assignee_id = CASE WHEN $4 THEN $5 ELSE assignee_id END,
                       updated_at = $6,
                       bot_status = COALESCE($7, bot_status),
                       bot_paused_until = CASE WHEN $7 IS NULL THEN bot_paused_until ELSE $8 END
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant_id)
                .bind(conversation_id)
                .bind(patch.status)
                .bind(patch.assignee_id.is_some())
                .bind(patch.assignee_id.flatten())
                .bind(Utc::now())
                .bind(patch.bot.map(|(status, _)| status))
                .bind(patch.bot.and_then(|(_, until)| until))
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_messages(&self, tenant_id: Uuid, conversation_id: Uuid, page: &PageQuery) -> StoreResult<Vec<Message>> {
                let (after_at, after_id) = page.after.unzip();
                Ok(sqlx::query_as(
                    "SELECT * FROM messages
                     WHERE tenant_id = $1 AND conversation_id = $2
                       AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4))
                     ORDER BY created_at DESC, id DESC
                     LIMIT $5",
                )
                .bind(tenant_id)
                .bind(conversation_id)
                .bind(after_at)
                .bind(after_id)
                .bind(page.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn list_customers(&self, tenant_id: Uuid, channel_instance_id: Option<Uuid>, page: &PageQuery) -> StoreResult<Vec<Customer>> {
                let (after_at, after_id) = page.after.unzip();
                Ok(sqlx::query_as(
                    "SELECT * FROM customers
                     WHERE tenant_id = $1
                       AND ($2 IS NULL OR channel_instance_id = $2)
                       AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4))
                     ORDER BY created_at DESC, id DESC
                     LIMIT $5",
                )
                .bind(tenant_id)
                .bind(channel_instance_id)
                .bind(after_at)
                .bind(after_id)
                .bind(page.limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn get_message(&self, tenant_id: Uuid, message_id: Uuid) -> StoreResult<Option<Message>> {
                Ok(sqlx::query_as("SELECT * FROM messages WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(message_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn get_customer(&self, tenant_id: Uuid, customer_id: Uuid) -> StoreResult<Option<Customer>> {
                Ok(sqlx::query_as("SELECT * FROM customers WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(customer_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn open_conversation_for(&self, tenant_id: Uuid, customer: &Customer) -> StoreResult<Conversation> {
                let mut tx = self.pool.begin_with($begin).await?;
                let open: Option<Conversation> = sqlx::query_as(
                    "SELECT * FROM conversations WHERE tenant_id = $1 AND customer_id = $2 AND status <> 'CLOSED'
                     ORDER BY created_at DESC LIMIT 1",
                )
                .bind(tenant_id)
                .bind(customer.id)
                .fetch_optional(&mut *tx)
                .await?;
                let conversation = match open {
                    Some(conversation) => conversation,
                    None => {
                        let now = Utc::now();
                        // The same chat as the customer's last conversation, so their answer to a
                        // conversation the business opened lands in it.
                        sqlx::query_as(
                            "INSERT INTO conversations
                               (id, tenant_id, channel_instance_id, customer_id, external_conversation_id, status, last_message_at, created_at, updated_at)
                             VALUES ($1, $2, $3, $4,
                               (SELECT external_conversation_id FROM conversations WHERE customer_id = $4 ORDER BY created_at DESC LIMIT 1),
                               'OPEN', $5, $5, $5) RETURNING *",
                        )
                        .bind(Uuid::now_v7())
                        .bind(tenant_id)
                        .bind(customer.channel_instance_id)
                        .bind(customer.id)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?
                    }
                };
                tx.commit().await?;
                Ok(conversation)
            }

            async fn upsert_visitor(&self, tenant_id: Uuid, channel_id: Uuid, visitor: &VisitorProfile) -> StoreResult<Customer> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let customer: Customer = sqlx::query_as(
                    "INSERT INTO customers (id, tenant_id, channel_instance_id, external_id, name, metadata, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                     ON CONFLICT (channel_instance_id, external_id) DO UPDATE SET
                       name = COALESCE(excluded.name, customers.name)
                     RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant_id)
                .bind(channel_id)
                .bind(&visitor.external_id)
                .bind(&visitor.name)
                .bind(Json(serde_json::Value::Object(visitor.metadata.clone())))
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let mut metadata = customer.metadata.0.clone();
                let merged = match &mut metadata {
                    serde_json::Value::Object(map) => {
                        let before = map.clone();
                        map.extend(visitor.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
                        *map != before
                    }
                    _ => {
                        metadata = serde_json::Value::Object(visitor.metadata.clone());
                        true
                    }
                };
                let customer = if merged {
                    sqlx::query_as("UPDATE customers SET metadata = $2, updated_at = $3 WHERE id = $1 RETURNING *")
                        .bind(customer.id)
                        .bind(Json(metadata))
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?
                } else {
                    customer
                };
                tx.commit().await?;
                Ok(customer)
            }

            async fn insert_visitor_upload(&self, upload: &NewVisitorUpload) -> StoreResult<VisitorUpload> {
                Ok(sqlx::query_as(
                    "INSERT INTO visitor_uploads
                       (id, tenant_id, channel_instance_id, visitor_id, token, content_type, file_name, size, body, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     RETURNING id, tenant_id, channel_instance_id, visitor_id, token, content_type, file_name, size, created_at",
                )
                .bind(Uuid::now_v7())
                .bind(upload.tenant_id)
                .bind(upload.channel_instance_id)
                .bind(&upload.visitor_id)
                .bind(&upload.token)
                .bind(&upload.content_type)
                .bind(&upload.file_name)
                .bind(i64::try_from(upload.body.len()).unwrap_or(i64::MAX))
                .bind(&upload.body)
                .bind(Utc::now())
                .fetch_one(&self.pool)
                .await?)
            }

            async fn visitor_upload_content(&self, token: &str) -> StoreResult<Option<(VisitorUpload, Vec<u8>)>> {
                let row: Option<VisitorUploadContent> = sqlx::query_as("SELECT * FROM visitor_uploads WHERE token = $1")
                    .bind(token)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|row| (row.upload, row.body)))
            }

            async fn visitor_uploads(&self, tenant_id: Uuid, channel_id: Uuid, visitor_id: &str, ids: &[Uuid]) -> StoreResult<Vec<VisitorUpload>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::new(
                    "SELECT id, tenant_id, channel_instance_id, visitor_id, token, content_type, file_name, size, created_at
                     FROM visitor_uploads WHERE tenant_id = ",
                );
                query.push_bind(tenant_id).push(" AND channel_instance_id = ").push_bind(channel_id).push(" AND visitor_id = ").push_bind(visitor_id).push(" AND id IN (");
                let mut ids_list = query.separated(", ");
                for id in ids {
                    ids_list.push_bind(*id);
                }
                query.push(")");
                Ok(query.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn find_customer_by_external_id(
                &self,
                tenant_id: Uuid,
                channel_id: Uuid,
                external_id: &str,
            ) -> StoreResult<Option<Customer>> {
                Ok(sqlx::query_as("SELECT * FROM customers WHERE tenant_id = $1 AND channel_instance_id = $2 AND external_id = $3")
                    .bind(tenant_id)
                    .bind(channel_id)
                    .bind(external_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn find_message_by_provider_id(
                &self,
                tenant_id: Uuid,
                channel_id: Uuid,
                provider_message_id: &str,
            ) -> StoreResult<Option<Message>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM messages WHERE tenant_id = $1 AND channel_instance_id = $2 AND provider_message_id = $3",
                )
                .bind(tenant_id)
                .bind(channel_id)
                .bind(provider_message_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn enqueue_outbound(&self, new: &NewOutboundMessage) -> StoreResult<Enqueued> {
                if let Some(key) = &new.idempotency_key {
                    if let Some(message) = replayed(&self.pool, new.tenant_id, key).await? {
                        return Ok(Enqueued::Replayed(message));
                    }
                }
                let now = Utc::now();
                let conversation = &new.conversation;
                let mut tx = self.pool.begin_with($begin).await?;
                let message: Message = sqlx::query_as(
                    "INSERT INTO messages
                       (id, tenant_id, channel_instance_id, conversation_id, customer_id, direction, status, text,
                        attachments, sender_user_id, sender_agent_id, sent_at, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'OUTBOUND', 'PENDING', $6, $7, $8, $9, $10, $10, $10)
                     RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(new.tenant_id)
                .bind(conversation.channel_instance_id)
                .bind(conversation.id)
                .bind(conversation.customer_id)
                .bind(&new.text)
                .bind(Json(&new.attachments))
                .bind(new.sender_user_id)
                .bind(new.sender_agent_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let queued = sqlx::query(
                    "INSERT INTO channel_message_queue
                       (id, tenant_id, channel_instance_id, message_id, status, attempts, max_attempts, next_retry_at,
                        idempotency_key, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, 'PENDING', 0, $5, $6, $7, $6, $6)",
                )
                .bind(Uuid::now_v7())
                .bind(new.tenant_id)
                .bind(conversation.channel_instance_id)
                .bind(message.id)
                .bind(new.max_attempts)
                .bind(now)
                .bind(&new.idempotency_key)
                .execute(&mut *tx)
                .await;
                if let Err(err) = queued {
                    // Two requests with one idempotency key at once: the other one won.
                    let conflict = StoreError::from(err);
                    tx.rollback().await?;
                    if let (StoreError::Conflict(_), Some(key)) = (&conflict, &new.idempotency_key) {
                        if let Some(message) = replayed(&self.pool, new.tenant_id, key).await? {
                            return Ok(Enqueued::Replayed(message));
                        }
                    }
                    return Err(conflict);
                }
                let conversation: Conversation = sqlx::query_as(
                    "UPDATE conversations SET last_message_at = $2, updated_at = $2 WHERE id = $1 RETURNING *",
                )
                .bind(conversation.id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Enqueued::Queued { message, conversation })
            }

            async fn apply_receipt(&self, tenant_id: Uuid, channel_id: Uuid, receipt: &ReceiptUpdate<'_>) -> StoreResult<Vec<Message>> {
                // Only forward: SENT -> DELIVERED -> READ. `$3`/`$4` are the statuses it may move from.
                let from = match receipt.status {
                    MessageStatus::Read => ("SENT", "DELIVERED"),
                    _ => ("SENT", "SENT"),
                };
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let mut moved: Vec<Message> = Vec::new();
                for provider_id in receipt.provider_message_ids {
                    let rows: Vec<Message> = sqlx::query_as(
                        "UPDATE messages SET status = $5, updated_at = $6
                         WHERE tenant_id = $1 AND channel_instance_id = $2 AND direction = 'OUTBOUND'
                           AND status IN ($3, $4) AND provider_message_id = $7
                         RETURNING *",
                    )
                    .bind(tenant_id)
                    .bind(channel_id)
                    .bind(from.0)
                    .bind(from.1)
                    .bind(receipt.status)
                    .bind(now)
                    .bind(provider_id.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                    moved.extend(rows);
                }
                if let (Some(customer), Some(up_to)) = (receipt.external_user_id, receipt.up_to) {
                    let rows: Vec<Message> = sqlx::query_as(
                        "UPDATE messages SET status = $5, updated_at = $6
                         WHERE tenant_id = $1 AND channel_instance_id = $2 AND direction = 'OUTBOUND'
                           AND status IN ($3, $4) AND sent_at <= $7
                           AND customer_id = (SELECT id FROM customers WHERE channel_instance_id = $2 AND external_id = $8)
                         RETURNING *",
                    )
                    .bind(tenant_id)
                    .bind(channel_id)
                    .bind(from.0)
                    .bind(from.1)
                    .bind(receipt.status)
                    .bind(now)
                    .bind(up_to)
                    .bind(customer)
                    .fetch_all(&mut *tx)
                    .await?;
                    moved.extend(rows);
                }
                tx.commit().await?;
                Ok(moved)
            }

            async fn claim_due_jobs(&self, worker: &str, lease: chrono::Duration, limit: i64) -> StoreResult<Vec<QueueJob>> {
                let now = Utc::now();
                // Two arms, so each walks the (status, next_retry_at) index: leases that ran out first
                // (a handful at most), then due jobs oldest first. One `OR` would sort every due row
                // on each claim, a cost that grows with the backlog.
                Ok(sqlx::query_as(concat!(
                    "UPDATE channel_message_queue SET status = 'SENDING', locked_by = $1, locked_until = $2, updated_at = $3
                     WHERE id IN (SELECT id FROM (
                       SELECT id FROM (SELECT id FROM channel_message_queue
                         WHERE status = 'SENDING' AND locked_until < $3 LIMIT $4 ",
                    $skip_locked,
                    ") AS expired
                       UNION ALL
                       SELECT id FROM (SELECT id FROM channel_message_queue
                         WHERE status = 'PENDING' AND next_retry_at <= $3 ORDER BY next_retry_at LIMIT $4 ",
                    $skip_locked,
                    ") AS due
                     ) AS claim LIMIT $4) RETURNING *"
                ))
                .bind(worker)
                .bind(now + lease)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn load_dispatches(&self, jobs: &[QueueJob]) -> StoreResult<Vec<Option<Dispatch>>> {
                let mut messages: HashMap<Uuid, Message> =
                    rows_by_id(&self.pool, "messages", jobs.iter().map(|j| j.message_id), |m: &Message| m.id).await?;
                let conversations: HashMap<Uuid, Conversation> =
                    rows_by_id(&self.pool, "conversations", messages.values().map(|m| m.conversation_id), |c: &Conversation| c.id)
                        .await?;
                let customers: HashMap<Uuid, Customer> =
                    rows_by_id(&self.pool, "customers", conversations.values().map(|c| c.customer_id), |c: &Customer| c.id)
                        .await?;
                let channels: HashMap<Uuid, Channel> =
                    rows_by_id(&self.pool, "channel_instances", jobs.iter().map(|j| j.channel_instance_id), |c: &Channel| c.id)
                        .await?;
                // A message has one job; its conversation, customer and channel may serve several.
                Ok(jobs
                    .iter()
                    .map(|job| {
                        let message = messages.remove(&job.message_id)?;
                        let conversation = conversations.get(&message.conversation_id)?;
                        Some(Dispatch {
                            conversation: conversation.clone(),
                            customer: customers.get(&conversation.customer_id)?.clone(),
                            channel: channels.get(&job.channel_instance_id)?.clone(),
                            message,
                        })
                    })
                    .collect())
            }

            async fn complete_jobs(&self, delivered: &[(QueueJob, String)]) -> StoreResult<Vec<Message>> {
                if delivered.is_empty() {
                    return Ok(Vec::new());
                }
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let mut jobs = sqlx::QueryBuilder::new(
                    "UPDATE channel_message_queue SET status = 'SENT', attempts = attempts + 1, locked_until = NULL,
                       last_error = NULL, updated_at = ",
                );
                jobs.push_bind(now).push(" WHERE id IN (");
                let mut ids = jobs.separated(", ");
                for (job, _) in delivered {
                    ids.push_bind(job.id);
                }
                jobs.push(")").build().execute(&mut *tx).await?;
                // One statement for every message, each with its own provider id (a derived table both
                // dialects accept). A provider id already taken on the channel (a re-send after a
                // crash) is kept off the unique key rather than failing the delivery.
                // A re-send (after a lease ran out) of a reply the provider already reported
                // DELIVERED or READ keeps that status: receipts only move forward.
                let mut messages = sqlx::QueryBuilder::new(
                    "UPDATE messages SET status = CASE WHEN status IN ('DELIVERED', 'READ') THEN status ELSE 'SENT' END,
                       error = NULL, updated_at = ",
                );
                messages.push_bind(now).push(
                    ", provider_message_id = CASE WHEN EXISTS (
                         SELECT 1 FROM messages other WHERE other.channel_instance_id = messages.channel_instance_id
                           AND other.provider_message_id = delivered.provider_id AND other.id <> messages.id)
                       THEN NULL ELSE delivered.provider_id END
                     FROM (",
                );
                for (i, (job, provider_message_id)) in delivered.iter().enumerate() {
                    messages.push(if i == 0 { "SELECT " } else { " UNION ALL SELECT " });
                    messages.push_bind(job.message_id).push(" AS id, ").push_bind(provider_message_id.as_str()).push(" AS provider_id");
                }
                messages.push(") AS delivered WHERE messages.id = delivered.id").build().execute(&mut *tx).await?;
                let updated: HashMap<Uuid, Message> =
                    rows_by_id(&mut *tx, "messages", delivered.iter().map(|(j, _)| j.message_id), |m: &Message| m.id).await?;
                tx.commit().await?;
                Ok(delivered.iter().filter_map(|(job, _)| updated.get(&job.message_id).cloned()).collect())
            }

            async fn retry_job(&self, job: &QueueJob, next_retry_at: DateTime<Utc>, error: Option<&str>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE channel_message_queue SET status = 'PENDING', locked_until = NULL, locked_by = NULL,
                       next_retry_at = $2,
                       attempts = attempts + CASE WHEN $3 IS NULL THEN 0 ELSE 1 END,
                       last_error = COALESCE($3, last_error), updated_at = $4
                     WHERE id = $1",
                )
                .bind(job.id)
                .bind(next_retry_at)
                .bind(error)
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn kill_job(&self, job: &QueueJob, error: &str) -> StoreResult<Message> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query(
                    "UPDATE channel_message_queue SET status = 'DEAD', attempts = attempts + 1, locked_until = NULL,
                       last_error = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(job.id)
                .bind(error)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let message: Message =
                    sqlx::query_as("UPDATE messages SET status = 'FAILED', error = $2, updated_at = $3 WHERE id = $1 RETURNING *")
                        .bind(job.message_id)
                        .bind(error)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(message)
            }

            async fn release_jobs(&self, worker: &str) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE channel_message_queue SET status = 'PENDING', locked_until = NULL, locked_by = NULL, updated_at = $2
                     WHERE status = 'SENDING' AND locked_by = $1",
                )
                .bind(worker)
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn list_jobs(&self, tenant_id: Uuid, status: Option<QueueStatus>, limit: i64) -> StoreResult<Vec<QueueJob>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM channel_message_queue WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2)
                     ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(tenant_id)
                .bind(status)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn get_job(&self, tenant_id: Uuid, job_id: Uuid) -> StoreResult<Option<QueueJob>> {
                Ok(sqlx::query_as("SELECT * FROM channel_message_queue WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(job_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn queue_stats(&self) -> StoreResult<QueueStats> {
                let by_status: Vec<(QueueStatus, i64)> =
                    sqlx::query_as("SELECT status, COUNT(*) FROM channel_message_queue GROUP BY status")
                        .fetch_all(&self.pool)
                        .await?;
                let oldest_due: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT next_retry_at FROM channel_message_queue WHERE status = 'PENDING' AND next_retry_at <= $1
                     ORDER BY next_retry_at LIMIT 1",
                )
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await?;
                Ok(QueueStats { by_status, oldest_due })
            }

            async fn requeue_job(&self, tenant_id: Uuid, job_id: Uuid) -> StoreResult<Option<(QueueJob, Message)>> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let job: Option<QueueJob> = sqlx::query_as(
                    "UPDATE channel_message_queue SET status = 'PENDING', attempts = 0, next_retry_at = $3,
                       locked_until = NULL, locked_by = NULL, updated_at = $3
                     WHERE tenant_id = $1 AND id = $2 AND status IN ('DEAD', 'FAILED') RETURNING *",
                )
                .bind(tenant_id)
                .bind(job_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(job) = job else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let message: Message =
                    sqlx::query_as("UPDATE messages SET status = 'PENDING', error = NULL, updated_at = $2 WHERE id = $1 RETURNING *")
                        .bind(job.message_id)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(Some((job, message)))
            }
        }

        /// The rows of `table` with these ids (duplicates asked once), keyed by `key`.
        async fn rows_by_id<'e, E, T>(
            executor: E,
            table: &str,
            ids: impl Iterator<Item = Uuid>,
            key: impl Fn(&T) -> Uuid,
        ) -> StoreResult<HashMap<Uuid, T>>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
            T: for<'r> sqlx::FromRow<'r, <<$store as $crate::store::sql::HasDb>::Db as sqlx::Database>::Row> + Send + Unpin,
        {
            let ids: std::collections::BTreeSet<Uuid> = ids.collect();
            if ids.is_empty() {
                return Ok(HashMap::new());
            }
            let mut query = sqlx::QueryBuilder::new(format!("SELECT * FROM {table} WHERE id IN ("));
            let mut separated = query.separated(", ");
            for id in ids {
                separated.push_bind(id);
            }
            query.push(")");
            let rows: Vec<T> = query.build_query_as().fetch_all(executor).await?;
            Ok(rows.into_iter().map(|row| (key(&row), row)).collect())
        }

        async fn replayed<'e, E>(executor: E, tenant_id: Uuid, key: &str) -> StoreResult<Option<Message>>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
        {
            Ok(sqlx::query_as(
                "SELECT messages.* FROM messages JOIN channel_message_queue q ON q.message_id = messages.id
                 WHERE q.tenant_id = $1 AND q.idempotency_key = $2",
            )
            .bind(tenant_id)
            .bind(key)
            .fetch_optional(executor)
            .await?)
        }

        /// Takes the tenant's row lock for the rest of the transaction: every change that may take
        /// an owner away holds it, so two of them run one after the other and the second counts
        /// what the first left (PostgreSQL; SQLite's write transactions are serial anyway).
        async fn lock_tenant<'e, E>(executor: E, tenant_id: Uuid, now: DateTime<Utc>) -> StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
        {
            sqlx::query("UPDATE tenants SET updated_at = $2 WHERE id = $1").bind(tenant_id).bind(now).execute(executor).await?;
            Ok(())
        }

        async fn owners<'e, E>(executor: E, tenant_id: Uuid) -> StoreResult<i64>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
        {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND role = 'owner'")
                .bind(tenant_id)
                .fetch_one(executor)
                .await?)
        }

        async fn user_of<'e, E>(executor: E, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<User>>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
        {
            Ok(sqlx::query_as("SELECT * FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .fetch_optional(executor)
                .await?)
        }

        /// A spent refresh token came back: every live token of its family is revoked.
        async fn revoke_family_of<'e, E>(executor: E, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Rotation>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
        {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $1), successor_token = NULL
                 WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $2)
                   AND (revoked_at IS NULL OR successor_token IS NOT NULL)",
            )
            .bind(now)
            .bind(token_hash)
            .execute(executor)
            .await?;
            Ok(Rotation::Reused)
        }

        async fn insert_refresh_token<'e, E>(executor: E, token: &NewRefreshToken) -> StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::sql::HasDb>::Db>,
        {
            sqlx::query(
                "INSERT INTO refresh_tokens (id, tenant_id, user_id, family_id, token_hash, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(token.id)
            .bind(token.tenant_id)
            .bind(token.user_id)
            .bind(token.family_id)
            .bind(&token.token_hash)
            .bind(token.expires_at)
            .bind(Utc::now())
            .execute(executor)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use impl_store;

/// Names the sqlx database of a store, for helpers the macro defines.
pub(crate) trait HasDb {
    type Db: sqlx::Database;
}
