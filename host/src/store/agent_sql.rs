//! The SQL behind [`AgentStore`](super::AgentStore), written once for both databases like `sql.rs`.

macro_rules! impl_agent_store {
    ($store:ty, $begin:literal, $skip_locked:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::AgentStore for $store {
            async fn create_agent(&self, tenant_id: Uuid, agent: &AgentValues) -> StoreResult<AgentRow> {
                let now = Utc::now();
                Ok(sqlx::query_as(
                    "INSERT INTO agents (id, tenant_id, name, description, is_active, config, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant_id)
                .bind(&agent.name)
                .bind(&agent.description)
                .bind(agent.is_active)
                .bind(Json(&agent.config))
                .bind(now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn list_agents(&self, tenant_id: Uuid) -> StoreResult<Vec<AgentRow>> {
                Ok(sqlx::query_as("SELECT * FROM agents WHERE tenant_id = $1 ORDER BY created_at, id")
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn get_agent(&self, tenant_id: Uuid, agent_id: Uuid) -> StoreResult<Option<AgentRow>> {
                Ok(sqlx::query_as("SELECT * FROM agents WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(agent_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn update_agent(&self, tenant_id: Uuid, agent_id: Uuid, agent: &AgentValues) -> StoreResult<Option<AgentRow>> {
                Ok(sqlx::query_as(
                    "UPDATE agents SET name = $3, description = $4, is_active = $5, config = $6, updated_at = $7
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant_id)
                .bind(agent_id)
                .bind(&agent.name)
                .bind(&agent.description)
                .bind(agent.is_active)
                .bind(Json(&agent.config))
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_agent(&self, tenant_id: Uuid, agent_id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM agents WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(agent_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_team(&self, tenant_id: Uuid, team: &TeamValues) -> StoreResult<TeamWithMembers> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let row: AgentTeamRow = sqlx::query_as(
                    "INSERT INTO agent_teams (id, tenant_id, name, description, router_agent_id, is_active, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(tenant_id)
                .bind(&team.name)
                .bind(&team.description)
                .bind(team.router_agent_id)
                .bind(team.is_active)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let members = insert_members(&mut tx, &row, &team.members, now).await?;
                tx.commit().await?;
                Ok(TeamWithMembers { team: row, members })
            }

            async fn list_teams(&self, tenant_id: Uuid) -> StoreResult<Vec<TeamWithMembers>> {
                let teams: Vec<AgentTeamRow> =
                    sqlx::query_as("SELECT * FROM agent_teams WHERE tenant_id = $1 ORDER BY created_at, id")
                        .bind(tenant_id)
                        .fetch_all(&self.pool)
                        .await?;
                let members: Vec<AgentTeamMemberRow> =
                    sqlx::query_as("SELECT * FROM agent_team_members WHERE tenant_id = $1 ORDER BY position, created_at")
                        .bind(tenant_id)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(teams
                    .into_iter()
                    .map(|team| {
                        let members = members.iter().filter(|m| m.team_id == team.id).cloned().collect();
                        TeamWithMembers { team, members }
                    })
                    .collect())
            }

            async fn get_team(&self, tenant_id: Uuid, team_id: Uuid) -> StoreResult<Option<TeamWithMembers>> {
                let team: Option<AgentTeamRow> = sqlx::query_as("SELECT * FROM agent_teams WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(team_id)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(team) = team else { return Ok(None) };
                let members = sqlx::query_as("SELECT * FROM agent_team_members WHERE team_id = $1 ORDER BY position, created_at")
                    .bind(team.id)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(Some(TeamWithMembers { team, members }))
            }

            async fn update_team(&self, tenant_id: Uuid, team_id: Uuid, team: &TeamValues) -> StoreResult<Option<TeamWithMembers>> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let row: Option<AgentTeamRow> = sqlx::query_as(
                    "UPDATE agent_teams SET name = $3, description = $4, router_agent_id = $5, is_active = $6, updated_at = $7
                     WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant_id)
                .bind(team_id)
                .bind(&team.name)
                .bind(&team.description)
                .bind(team.router_agent_id)
                .bind(team.is_active)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                sqlx::query("DELETE FROM agent_team_members WHERE team_id = $1").bind(row.id).execute(&mut *tx).await?;
                let members = insert_members(&mut tx, &row, &team.members, now).await?;
                tx.commit().await?;
                Ok(Some(TeamWithMembers { team: row, members }))
            }

            async fn delete_team(&self, tenant_id: Uuid, team_id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM agent_teams WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(team_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn claim_agent_jobs(&self, worker: &str, lease: chrono::Duration, limit: i64) -> StoreResult<Vec<AgentJob>> {
                let now = Utc::now();
                // As the outbound queue claims: expired leases first, then due jobs oldest first,
                // each arm walking the (status, run_at) index. A conversation whose turn is
                // running (leased) waits for it, so two turns of one conversation never overlap.
                Ok(sqlx::query_as(concat!(
                    "UPDATE agent_jobs SET status = 'RUNNING', locked_by = $1, locked_until = $2, updated_at = $3
                     WHERE id IN (SELECT id FROM (
                       SELECT id FROM (SELECT id FROM agent_jobs
                         WHERE status = 'RUNNING' AND locked_until < $3 LIMIT $4 ",
                    $skip_locked,
                    ") AS expired
                       UNION ALL
                       SELECT id FROM (SELECT id FROM agent_jobs
                         WHERE status = 'PENDING' AND run_at <= $3
                           AND NOT EXISTS (SELECT 1 FROM agent_jobs AS running WHERE running.status = 'RUNNING'
                             AND running.conversation_id = agent_jobs.conversation_id AND running.locked_until >= $3)
                         ORDER BY run_at LIMIT $4 ",
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

            async fn reschedule_agent_job(&self, job: &AgentJob, run_at: DateTime<Utc>, error: Option<&str>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE agent_jobs SET status = 'PENDING', locked_until = NULL, locked_by = NULL, run_at = $2,
                       attempts = attempts + CASE WHEN $3 IS NULL THEN 0 ELSE 1 END,
                       last_error = COALESCE($3, last_error), updated_at = $4
                     WHERE id = $1",
                )
                .bind(job.id)
                .bind(run_at)
                .bind(error)
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn finish_agent_job(
                &self,
                job: &AgentJob,
                status: AgentJobStatus,
                outcome: &str,
                error: Option<&str>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE agent_jobs SET status = $2, outcome = $3, last_error = COALESCE($4, last_error),
                       locked_until = NULL, updated_at = $5
                     WHERE id = $1",
                )
                .bind(job.id)
                .bind(status)
                .bind(outcome)
                .bind(error)
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn release_agent_jobs(&self, worker: &str) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE agent_jobs SET status = 'PENDING', locked_until = NULL, locked_by = NULL, updated_at = $2
                     WHERE status = 'RUNNING' AND locked_by = $1",
                )
                .bind(worker)
                .bind(Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn get_agent_job(&self, job_id: Uuid) -> StoreResult<Option<AgentJob>> {
                Ok(sqlx::query_as("SELECT * FROM agent_jobs WHERE id = $1").bind(job_id).fetch_optional(&self.pool).await?)
            }

            async fn conversation_facts(&self, tenant_id: Uuid, conversation_id: Uuid) -> StoreResult<ConversationFacts> {
                let first: Option<(MessageDirection, Option<Uuid>)> = sqlx::query_as(
                    "SELECT direction, sender_user_id FROM messages
                     WHERE tenant_id = $1 AND conversation_id = $2 AND direction <> 'SYSTEM'
                     ORDER BY created_at, id LIMIT 1",
                )
                .bind(tenant_id)
                .bind(conversation_id)
                .fetch_optional(&self.pool)
                .await?;
                let last_agent_reply_at: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT created_at FROM messages
                     WHERE tenant_id = $1 AND conversation_id = $2 AND sender_agent_id IS NOT NULL
                     ORDER BY created_at DESC LIMIT 1",
                )
                .bind(tenant_id)
                .bind(conversation_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(ConversationFacts {
                    first_message: first.map(|(direction, user)| (direction, user.is_some())),
                    last_agent_reply_at,
                })
            }

            async fn insert_system_message(&self, conversation: &Conversation, text: &str) -> StoreResult<Message> {
                let now = Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let message: Message = sqlx::query_as(
                    "INSERT INTO messages
                       (id, tenant_id, channel_instance_id, conversation_id, customer_id, direction, status, text,
                        attachments, sent_at, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'SYSTEM', 'SENT', $6, $7, $8, $8, $8) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(conversation.tenant_id)
                .bind(conversation.channel_instance_id)
                .bind(conversation.id)
                .bind(conversation.customer_id)
                .bind(text)
                .bind(Json(serde_json::json!([])))
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("UPDATE conversations SET last_message_at = $2, updated_at = $2 WHERE id = $1")
                    .bind(conversation.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(message)
            }

            async fn pause_bot_until(
                &self,
                tenant_id: Uuid,
                conversation_id: Uuid,
                until: DateTime<Utc>,
            ) -> StoreResult<Option<Conversation>> {
                Ok(sqlx::query_as(
                    "UPDATE conversations SET bot_status = 'PAUSED', bot_paused_until = $3, updated_at = $4
                     WHERE tenant_id = $1 AND id = $2
                       AND NOT (bot_status = 'PAUSED' AND (bot_paused_until IS NULL OR bot_paused_until >= $3))
                     RETURNING *",
                )
                .bind(tenant_id)
                .bind(conversation_id)
                .bind(until)
                .bind(Utc::now())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn insert_agent_run(&self, run: &NewAgentRun) -> StoreResult<AgentRunRow> {
                Ok(sqlx::query_as(
                    "INSERT INTO agent_collaborations
                       (id, tenant_id, team_id, agent_id, conversation_id, message_id, kind, content, created_at,
                        job_id, outcome, prompt_tokens, completion_tokens, latency_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, 'run', $7, $8, $9, $10, $11, $12, $13) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(run.tenant_id)
                .bind(run.team_id)
                .bind(run.agent_id)
                .bind(run.conversation_id)
                .bind(run.message_id)
                .bind(Json(&run.content))
                .bind(Utc::now())
                .bind(run.job_id)
                .bind(&run.outcome)
                .bind(run.prompt_tokens)
                .bind(run.completion_tokens)
                .bind(run.latency_ms)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn list_agent_runs(&self, tenant_id: Uuid, conversation_id: Uuid, limit: i64) -> StoreResult<Vec<AgentRunRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM agent_collaborations WHERE tenant_id = $1 AND conversation_id = $2 AND kind = 'run'
                     ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(tenant_id)
                .bind(conversation_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn get_agent_run(&self, tenant_id: Uuid, run_id: Uuid) -> StoreResult<Option<AgentRunRow>> {
                Ok(sqlx::query_as("SELECT * FROM agent_collaborations WHERE tenant_id = $1 AND id = $2 AND kind = 'run'")
                    .bind(tenant_id)
                    .bind(run_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn agent_tokens_since(&self, tenant_id: Uuid, since: DateTime<Utc>) -> StoreResult<i64> {
                let used: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT) FROM agent_collaborations
                     WHERE tenant_id = $1 AND created_at >= $2",
                )
                .bind(tenant_id)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
                Ok(used.unwrap_or(0))
            }
        }

        async fn insert_members(
            tx: &mut sqlx::Transaction<'_, <$store as $crate::store::sql::HasDb>::Db>,
            team: &AgentTeamRow,
            members: &[(Uuid, Option<String>)],
            now: DateTime<Utc>,
        ) -> StoreResult<Vec<AgentTeamMemberRow>> {
            let mut rows = Vec::with_capacity(members.len());
            for (position, (agent_id, description)) in members.iter().enumerate() {
                let row: AgentTeamMemberRow = sqlx::query_as(
                    "INSERT INTO agent_team_members (id, tenant_id, team_id, agent_id, position, description, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                )
                .bind(Uuid::now_v7())
                .bind(team.tenant_id)
                .bind(team.id)
                .bind(agent_id)
                .bind(i32::try_from(position).unwrap_or(i32::MAX))
                .bind(description)
                .bind(now)
                .fetch_one(&mut **tx)
                .await?;
                rows.push(row);
            }
            Ok(rows)
        }
    };
}

pub(crate) use impl_agent_store;
