//! The SQL behind [`Store`](super::Store), written once for both databases. SQLite and PostgreSQL
//! accept the same `$n` placeholders, `RETURNING` and `ON CONFLICT`, so one body serves both;
//! the macro instantiates it per pool type. Where the dialects differ the caller passes the piece
//! (how a write transaction begins). Times are bound from Rust, never `now()`, for the same reason.

macro_rules! impl_store {
    ($store:ty, $begin:literal) => {
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
                Ok(sqlx::query_as(
                    "UPDATE users SET name = COALESCE($3, name), role = COALESCE($4, role), updated_at = $5
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(patch.name)
                .bind(patch.role)
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_user(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn count_owners(&self, tenant_id: Uuid) -> StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND role = 'owner'")
                    .bind(tenant_id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<()> {
                insert_refresh_token(&self.pool, &token).await
            }

            async fn rotate_refresh_token(&self, old_hash: &str, new: NewRefreshToken) -> StoreResult<Rotation> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                // Spending the token is the first statement: on PostgreSQL a concurrent rotation
                // waits on the row lock and then finds the token spent; SQLite serialises writers.
                let spent: Option<(Uuid, Uuid, DateTime<Utc>)> = sqlx::query_as(
                    "UPDATE refresh_tokens SET revoked_at = $1, replaced_by = $2
                     WHERE token_hash = $3 AND revoked_at IS NULL
                     RETURNING tenant_id, user_id, expires_at",
                )
                .bind(now)
                .bind(new.id)
                .bind(old_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let outcome = match spent {
                    Some((tenant_id, user_id, expires_at)) if expires_at > now => {
                        let user: Option<User> = sqlx::query_as("SELECT * FROM users WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant_id)
                            .bind(user_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                        match user {
                            Some(user) => {
                                insert_refresh_token(&mut *tx, &new).await?;
                                Rotation::Rotated(user)
                            }
                            None => Rotation::Invalid,
                        }
                    }
                    Some(_) => Rotation::Invalid,
                    None => {
                        let family: Option<Uuid> =
                            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                                .bind(old_hash)
                                .fetch_optional(&mut *tx)
                                .await?;
                        match family {
                            Some(family_id) => {
                                sqlx::query(
                                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
                                )
                                .bind(now)
                                .bind(family_id)
                                .execute(&mut *tx)
                                .await?;
                                Rotation::Reused
                            }
                            None => Rotation::Invalid,
                        }
                    }
                };
                tx.commit().await?;
                Ok(outcome)
            }

            async fn revoke_refresh_family(&self, tenant_id: Uuid, family_id: Uuid) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1
                     WHERE tenant_id = $2 AND family_id = $3 AND revoked_at IS NULL",
                )
                .bind(Utc::now())
                .bind(tenant_id)
                .bind(family_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn revoke_user_refresh_tokens(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1
                     WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL",
                )
                .bind(Utc::now())
                .bind(tenant_id)
                .bind(user_id)
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
                Ok(sqlx::query_as(
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
                .await?)
            }

            async fn set_channel_status(
                &self,
                tenant_id: Uuid,
                channel_id: Uuid,
                status: ChannelStatus,
                reason: Option<&str>,
            ) -> StoreResult<Option<Channel>> {
                Ok(sqlx::query_as(
                    "UPDATE channel_instances SET status = $3, status_reason = $4, updated_at = $5
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant_id)
                .bind(channel_id)
                .bind(status)
                .bind(reason)
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_channel(&self, tenant_id: Uuid, channel_id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM channel_instances WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(channel_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
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
