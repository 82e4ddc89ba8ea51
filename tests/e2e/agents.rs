//! AI agents: Telegram webhooks answered by agents through a fake OpenAI-compatible server, with
//! debounce, cooldown, triggers, tools, hand-off, teams, failures and the echo fallback.

use std::time::Duration;

use omnichat_tests::fake::FakeProvider;
use omnichat_tests::openai::{self, FakeModel, call, text};
use omnichat_tests::socket::SocketClient;
use omnichat_tests::{Db, PASSWORD, Session, TestApp, eventually, id_of, spawn_app_with, telegram_text};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::on_both_databases;

on_both_databases!(
    a_telegram_message_is_answered_by_the_agent_and_the_run_is_logged,
    a_burst_is_one_turn_and_the_cooldown_holds_the_next_reply_back,
    turns_of_one_conversation_never_overlap,
    keyword_triggers_and_ignored_groups_decide_who_answers,
    handoff_and_human_replies_pause_the_bot_and_a_human_started_conversation_is_left_alone,
    a_team_router_hands_the_turn_to_a_member,
    http_tools_are_called_with_the_models_arguments_and_their_secret,
    a_failing_model_is_retried_then_the_conversation_goes_to_a_human,
    without_any_model_the_echo_fallback_answers,
    the_daily_token_budget_hands_off_when_spent,
    agents_are_managed_by_owners_and_admins_of_their_tenant_only,
);

struct Setup {
    app: TestApp,
    telegram: FakeProvider,
    model: FakeModel,
    owner: Session,
    channel_id: String,
}

/// A host whose agents call `model` (as the operator's `OPENAI_BASE_URL`), a tenant with a
/// Telegram bot channel, and `agent` created as its first agent.
async fn setup(db: Db, agent: Value, configure: impl FnOnce(&mut omnichat::Config) + Send) -> Setup {
    let (telegram, model) = (FakeProvider::start().await, FakeModel::start().await);
    let (telegram_url, model_url) = (telegram.base_url(), model.base_url());
    let app = spawn_app_with(db, move |config| {
        config.providers.telegram_api_base_url = telegram_url;
        config.agents.openai_base_url = Some(model_url);
        config.agents.openai_api_key = Some("sk-operator-key".to_owned().into());
        configure(config);
    })
    .await;
    let owner = app.register(&format!("owner-{}@shop.io", uuid::Uuid::new_v4().simple())).await;
    let channel =
        app.create_channel(&owner, json!({"name": "Shop bot", "type": "TELEGRAM_BOT", "config": {"botToken": "77:TOKEN"}})).await;
    let channel_id = id_of(&channel).to_string();
    if !agent.is_null() {
        create_agent(&app, &owner, agent).await;
    }
    Setup { app, telegram, model, owner, channel_id }
}

async fn create_agent(app: &TestApp, owner: &Session, body: Value) -> Value {
    let reply = app.post("/api/agents", Some(&owner.access_token), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "create agent: {}", reply.body);
    reply.body
}

impl Setup {
    /// A customer's Telegram message (update and message id `n`) from `user` in their private chat.
    async fn say(&self, n: i64, user: i64, words: &str) {
        let reply = self.app.telegram_update(&self.channel_id, &telegram_text(n, n, user, words), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    async fn conversation_of(&self, user: i64) -> Value {
        let list =
            self.app.get(&format!("/api/conversations?channelInstanceId={}", self.channel_id), &self.owner.access_token).await;
        list.body["data"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["externalConversationId"].as_str() == Some(user.to_string().as_str())).cloned())
            .expect("the conversation")
    }

    async fn messages(&self, conversation_id: &str) -> Vec<Value> {
        let page =
            self.app.get(&format!("/api/conversations/{conversation_id}/messages?limit=100"), &self.owner.access_token).await;
        let mut all = page.body["data"].as_array().cloned().unwrap_or_default();
        all.reverse();
        all
    }

    async fn runs(&self, conversation_id: &str) -> Vec<Value> {
        let reply = self.app.get(&format!("/api/conversations/{conversation_id}/agent-runs"), &self.owner.access_token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body.as_array().cloned().unwrap_or_default()
    }

    /// Texts the fake Bot API was asked to send.
    fn sent_texts(&self) -> Vec<String> {
        self.telegram
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/sendMessage"))
            .filter_map(|r| r.body["text"].as_str().map(str::to_owned))
            .collect()
    }

    async fn wait_sent(&self, n: usize) -> Vec<String> {
        eventually(Duration::from_secs(20), &format!("{n} replies at the Bot API"), || async {
            let sent = self.sent_texts();
            (sent.len() >= n).then_some(sent)
        })
        .await
    }
}

async fn a_telegram_message_is_answered_by_the_agent_and_the_run_is_logged(db: Db) {
    let s =
        setup(db, json!({"name": "Shopbot", "systemPrompt": "You are Shopbot of Acme Shoes.", "temperature": 0.2}), |_| {}).await;
    s.model.script([text("Hello Bob, how can I help?")]);
    s.say(1, 501, "hi there").await;

    let sent = s.wait_sent(1).await;
    assert_eq!(sent, vec!["Hello Bob, how can I help?".to_owned()]);
    let request = &s.model.requests()[0];
    assert!(request.system_prompt().starts_with("You are Shopbot of Acme Shoes."), "{}", request.system_prompt());
    assert!(request.system_prompt().contains("Bob"), "the customer's name is in the context");
    assert!(request.system_prompt().contains("TELEGRAM_BOT"), "the channel is in the context");
    assert_eq!(request.contents("user"), vec!["hi there".to_owned()]);
    assert_eq!(request.body["temperature"], 0.2);
    assert_eq!(request.authorization.as_deref(), Some("Bearer sk-operator-key"));

    let conversation = s.conversation_of(501).await;
    let conversation_id = conversation["id"].as_str().expect("id");
    let reply = eventually(Duration::from_secs(20), "the reply SENT", || async {
        s.messages(conversation_id).await.into_iter().find(|m| m["direction"] == "OUTBOUND" && m["status"] == "SENT")
    })
    .await;
    assert!(reply["senderAgentId"].is_string(), "{reply}");
    assert_eq!(conversation["botStatus"], "ACTIVE");

    let runs = s.runs(conversation_id).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run["outcome"], "REPLIED");
    assert_eq!(run["mode"], "MODEL");
    assert_eq!(run["messageId"], reply["id"]);
    assert_eq!(run["promptTokens"], openai::PROMPT_TOKENS);
    assert_eq!(run["completionTokens"], openai::COMPLETION_TOKENS);
    assert_eq!(run["totalTokens"], openai::PROMPT_TOKENS + openai::COMPLETION_TOKENS);
    assert!(run["latencyMs"].as_i64().is_some_and(|ms| ms >= 0));
    assert_eq!(run["agents"][0]["name"], "Shopbot");

    // The next message sees the history as chat turns.
    s.app
        .patch(
            &format!("/api/agents/{}", run["agentId"].as_str().expect("agent")),
            &s.owner.access_token,
            json!({"cooldownSeconds": 0}),
        )
        .await;
    s.model.script([text("Size 42 is in stock.")]);
    s.say(2, 501, "do you have size 42?").await;
    s.wait_sent(2).await;
    let second = &s.model.requests()[1];
    assert_eq!(second.contents("user"), vec!["hi there".to_owned(), "do you have size 42?".to_owned()]);
    assert_eq!(second.contents("assistant"), vec!["Hello Bob, how can I help?".to_owned()]);
    // Another tenant sees none of it.
    let stranger = s.app.register("stranger@other.io").await;
    let foreign = s.app.get(&format!("/api/conversations/{conversation_id}/agent-runs"), &stranger.access_token).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}

async fn a_burst_is_one_turn_and_the_cooldown_holds_the_next_reply_back(db: Db) {
    let s = setup(db, json!({"name": "Bot", "debounceMs": 1500, "cooldownSeconds": 4}), |_| {}).await;
    s.model.script([text("One answer for all three"), text("After the cooldown")]);
    for (n, words) in [(1, "hello"), (2, "I ordered shoes"), (3, "where are they?")] {
        s.say(n, 601, words).await;
    }
    s.wait_sent(1).await;
    let requests = s.model.requests();
    assert_eq!(requests.len(), 1, "one model call for the burst");
    assert_eq!(requests[0].contents("user"), vec!["hello", "I ordered shoes", "where are they?"]);

    s.say(4, 601, "hello?").await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(s.model.requests().len(), 1, "the cooldown holds the second reply back");
    // Held back, not dropped: it answers once the cooldown is over.
    let sent = s.wait_sent(2).await;
    assert_eq!(sent[1], "After the cooldown");
    assert_eq!(s.model.requests()[1].contents("user").last().map(String::as_str), Some("hello?"));
    assert_eq!(s.model.requests().len(), 2);
}

async fn turns_of_one_conversation_never_overlap(db: Db) {
    let s = setup(db, json!({"name": "Bot", "cooldownSeconds": 0}), |_| {}).await;
    s.model.set_delay(Duration::from_millis(1000));
    s.model.script([text("First answer"), text("Second answer")]);
    s.say(1, 651, "first question").await;
    s.model.wait_for(1, Duration::from_secs(20)).await;
    // The second turn arrives while the model is still on the first one.
    s.say(2, 651, "second question").await;
    assert_eq!(s.wait_sent(2).await, vec!["First answer".to_owned(), "Second answer".to_owned()]);
    let second = &s.model.requests()[1];
    assert_eq!(second.contents("assistant"), vec!["First answer".to_owned()], "the second turn saw the first reply");
    assert_eq!(second.contents("user"), vec!["first question".to_owned(), "second question".to_owned()]);
}

async fn keyword_triggers_and_ignored_groups_decide_who_answers(db: Db) {
    let s = setup(
        db,
        json!({"name": "Prices", "cooldownSeconds": 0, "ignoreGroups": true,
               "trigger": {"type": "KEYWORD", "keywords": ["price", "cost"], "matchMode": "CONTAINS"}}),
        |_| {},
    )
    .await;
    s.say(1, 701, "hello").await;
    s.say(2, 702, "what does it COST?").await;
    s.wait_sent(1).await;
    let requests = s.model.requests();
    assert_eq!(requests.len(), 1, "only the keyword turn reaches the model");
    assert_eq!(requests[0].contents("user"), vec!["what does it COST?"]);

    // A group chat (the chat is not the sender's own) is ignored by this agent.
    let group = json!({"update_id": 3, "message": {"message_id": 3, "date": 1_700_000_000,
        "chat": {"id": -100777, "type": "supergroup", "title": "Fans"},
        "from": {"id": 703, "is_bot": false, "first_name": "Gina"}, "text": "price please"}});
    let reply = s.app.telegram_update(&s.channel_id, &group, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    s.say(4, 704, "price of boots?").await;
    s.wait_sent(2).await;
    let users: Vec<Vec<String>> = s.model.requests().iter().map(|r| r.contents("user")).collect();
    assert_eq!(users.len(), 2, "{users:?}");
    assert_eq!(users[1], vec!["price of boots?"], "the group turn never reached the model");
}

async fn handoff_and_human_replies_pause_the_bot_and_a_human_started_conversation_is_left_alone(db: Db) {
    let s = setup(db, json!({"name": "Bot", "cooldownSeconds": 0, "humanPauseMinutes": 10}), |_| {}).await;
    let mut socket = SocketClient::connect(&s.app.base_url(), Some(&s.owner.access_token), &[&s.channel_id]).await;
    socket.ready().await;
    s.model.script([call("handoff_to_human", json!({"reason": "wants a refund"})), text("A colleague will take over.")]);
    s.say(1, 801, "I want a refund now").await;
    s.wait_sent(1).await;
    let conversation = s.conversation_of(801).await;
    let conversation_id = conversation["id"].as_str().expect("id").to_owned();
    assert_eq!(conversation["botStatus"], "PAUSED");
    assert_eq!(conversation["botPausedUntil"], Value::Null, "a hand-off holds until resumed");
    assert_eq!(conversation["status"], "OPEN");
    assert_eq!(conversation["assigneeId"], Value::Null);
    let messages = s.messages(&conversation_id).await;
    let note = messages.iter().find(|m| m["direction"] == "SYSTEM").expect("a SYSTEM note");
    assert!(note["text"].as_str().is_some_and(|t| t.contains("wants a refund")), "{note}");
    let mut updated = Value::Null;
    while let Some(event) = socket.event("conversation-updated", Duration::from_secs(10)).await {
        if event["conversation"]["botStatus"] == "PAUSED" {
            updated = event;
            break;
        }
    }
    assert_eq!(updated["conversation"]["id"], conversation_id.as_str());
    let runs = s.runs(&conversation_id).await;
    assert_eq!(runs[0]["outcome"], "HANDED_OFF");
    assert_eq!(runs[0]["steps"][1]["name"], "handoff_to_human");
    assert_eq!(runs[0]["steps"][1]["arguments"]["reason"], "wants a refund");

    // Paused: the next message gets no model call.
    s.say(2, 801, "hello??").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.model.requests().len(), 2);

    // An agent (any user) resumes it; a human reply pauses it for humanPauseMinutes.
    let member = s
        .app
        .post("/api/users", Some(&s.owner.access_token), json!({"email": "agent@shop.io", "role": "agent", "password": PASSWORD}))
        .await;
    assert_eq!(member.status, StatusCode::CREATED);
    let member = omnichat_tests::Session::from_auth(&s.app.login("agent@shop.io", PASSWORD).await.body);
    let resumed =
        s.app.patch(&format!("/api/conversations/{conversation_id}"), &member.access_token, json!({"botStatus": "ACTIVE"})).await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    assert_eq!(resumed.body["botStatus"], "ACTIVE");
    let sent = s
        .app
        .post(
            "/api/messages/send",
            Some(&member.access_token),
            json!({"conversationId": conversation_id, "text": "Refund done."}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let paused = s.app.get(&format!("/api/conversations/{conversation_id}"), &s.owner.access_token).await.body;
    assert_eq!(paused["botStatus"], "PAUSED");
    let until: chrono::DateTime<chrono::Utc> = paused["botPausedUntil"].as_str().expect("until").parse().expect("time");
    let minutes = (until - chrono::Utc::now()).num_seconds() as f64 / 60.0;
    assert!((9.0..=10.1).contains(&minutes), "paused for the agent's humanPauseMinutes ({minutes})");
    s.say(3, 801, "thanks").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.model.requests().len(), 2, "no auto-reply while a human's pause runs");
    // Once the pause is over (moved into the past here), the bot answers by itself again.
    expire_pauses(&s.app).await;
    s.model.script([text("Anything else?")]);
    s.say(4, 801, "one more thing").await;
    let texts = s.wait_sent(3).await;
    assert_eq!(texts.last().map(String::as_str), Some("Anything else?"));

    // A conversation the business started (first message outbound) is never auto-replied.
    let closed =
        s.app.patch(&format!("/api/conversations/{conversation_id}"), &s.owner.access_token, json!({"status": "CLOSED"})).await;
    assert_eq!(closed.status, StatusCode::OK);
    let customer = paused["customerId"].as_str().expect("customer").to_owned();
    let agents = s.app.get("/api/agents", &s.owner.access_token).await.body;
    let agent_id = agents[0]["id"].as_str().expect("agent").to_owned();
    s.app.patch(&format!("/api/agents/{agent_id}"), &s.owner.access_token, json!({"humanPauseMinutes": 0})).await;
    let outreach = s
        .app
        .post(
            "/api/messages/send",
            Some(&s.owner.access_token),
            json!({"customerId": customer, "text": "Your new shoes are here!"}),
        )
        .await;
    assert_eq!(outreach.status, StatusCode::ACCEPTED, "{}", outreach.body);
    s.say(5, 801, "great, thanks").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(s.model.requests().len(), 3, "a human-started conversation gets no auto-reply");
}

/// Time passes: every timed bot pause ends now.
async fn expire_pauses(app: &TestApp) {
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    match app.db.db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.expect("sqlite");
            sqlx::query("UPDATE conversations SET bot_paused_until = $1 WHERE bot_paused_until IS NOT NULL")
                .bind(past)
                .execute(&pool)
                .await
                .expect("expire");
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.expect("postgres");
            sqlx::query("UPDATE conversations SET bot_paused_until = $1 WHERE bot_paused_until IS NOT NULL")
                .bind(past)
                .execute(&pool)
                .await
                .expect("expire");
        }
    }
}

async fn a_team_router_hands_the_turn_to_a_member(db: Db) {
    let s = setup(db, Value::Null, |_| {}).await;
    let router = create_agent(&s.app, &s.owner, json!({"name": "Front desk", "systemPrompt": "You route customers."})).await;
    let billing =
        create_agent(&s.app, &s.owner, json!({"name": "Billing", "systemPrompt": "You are the billing specialist."})).await;
    let team = s
        .app
        .post(
            "/api/agent-teams",
            Some(&s.owner.access_token),
            json!({"name": "Support", "routerAgentId": router["id"], "members": [{"agentId": billing["id"], "description": "invoices and refunds"}]}),
        )
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", team.body);
    assert_eq!(team.body["members"][0]["description"], "invoices and refunds");
    s.model.script([
        call("route_to", json!({"agent": "Billing", "reason": "an invoice question"})),
        text("Your invoice is attached to your account."),
    ]);
    s.say(1, 901, "where is my invoice?").await;
    let sent = s.wait_sent(1).await;
    assert_eq!(sent, vec!["Your invoice is attached to your account.".to_owned()]);
    let requests = s.model.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].system_prompt().contains("Billing: invoices and refunds"), "the router sees the roster");
    assert!(requests[0].tool_names().contains(&"route_to".to_owned()));
    assert!(requests[1].system_prompt().starts_with("You are the billing specialist."));
    assert!(!requests[1].tool_names().contains(&"route_to".to_owned()), "a member does not route again");

    let conversation_id = s.conversation_of(901).await["id"].as_str().expect("id").to_owned();
    let runs = s.runs(&conversation_id).await;
    let run = &runs[0];
    assert_eq!(run["teamId"], team.body["id"]);
    assert_eq!(run["agentId"], billing["id"], "the member answered");
    let names: Vec<&str> = run["agents"].as_array().expect("agents").iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, vec!["Front desk", "Billing"]);
    let route = run["steps"].as_array().expect("steps").iter().find(|s| s["type"] == "route").expect("a route step");
    assert_eq!(route["to"], "Billing");
    assert_eq!(route["reason"], "an invoice question");
    let reply = eventually(Duration::from_secs(10), "the reply", || async {
        s.messages(&conversation_id).await.into_iter().find(|m| m["direction"] == "OUTBOUND")
    })
    .await;
    assert_eq!(reply["senderAgentId"], billing["id"]);
}

async fn http_tools_are_called_with_the_models_arguments_and_their_secret(db: Db) {
    let tool_server = FakeProvider::start().await;
    tool_server.script([(200, json!({"order": "A1", "status": "shipped"}))]);
    let s = setup(db, Value::Null, |_| {}).await;
    let agent = create_agent(
        &s.app,
        &s.owner,
        json!({"name": "Orders", "tools": ["get_customer"], "httpTools": [{
            "name": "order_status", "description": "Look an order up", "method": "GET",
            "url": format!("{}/orders/{{orderId}}", tool_server.base_url()),
            "parameters": {"type": "object", "properties": {"orderId": {"type": "string"}}, "required": ["orderId"]},
            "secretHeader": {"name": "X-Api-Key", "value": "tool-secret-123"}
        }]}),
    )
    .await;
    assert_eq!(agent["httpTools"][0]["secretHeader"], json!({"name": "X-Api-Key", "hasValue": true}));
    assert!(!agent.to_string().contains("tool-secret-123"));
    s.model.script([call("order_status", json!({"orderId": "A1"})), text("Order A1 has shipped.")]);
    s.say(1, 1001, "status of order A1?").await;
    assert_eq!(s.wait_sent(1).await, vec!["Order A1 has shipped.".to_owned()]);
    let hit = &tool_server.requests()[0];
    assert_eq!(hit.method, "GET");
    assert_eq!(hit.path, "/orders/A1");
    assert_eq!(hit.header("x-api-key"), Some("tool-secret-123"));
    let second = &s.model.requests()[1];
    let tool_answer = second.contents("tool").join("");
    assert!(tool_answer.contains("shipped"), "the tool's result goes back to the model: {tool_answer}");
    assert!(!second.body.to_string().contains("tool-secret-123"), "the model never sees the secret");
    assert!(s.model.requests()[0].tool_names().contains(&"get_customer".to_owned()));
    let conversation_id = s.conversation_of(1001).await["id"].as_str().expect("id").to_owned();
    let runs = s.runs(&conversation_id).await;
    assert!(!serde_json::to_string(&runs).expect("json").contains("tool-secret-123"));
    let dump = s
        .app
        .db
        .raw_texts(match db {
            Db::Sqlite => "SELECT config FROM agents",
            Db::Postgres => "SELECT config::text FROM agents",
        })
        .await
        .join("\n");
    assert!(!dump.contains("tool-secret-123"), "the secret header is sealed at rest");

    // A host that does not allow private fetches refuses tools and model URLs at private addresses.
    let strict = spawn_app_with(db, |config| config.providers.allow_private_fetch = false).await;
    let owner = strict.register("strict@shop.io").await;
    for body in [
        json!({"name": "A", "httpTools": [{"name": "t", "description": "d", "url": "http://10.1.2.3/x"}]}),
        json!({"name": "B", "httpTools": [{"name": "t", "description": "d", "url": "http://169.254.169.254/latest"}]}),
        json!({"name": "C", "baseUrl": "http://127.0.0.1:11434/v1"}),
    ] {
        let reply = strict.post("/api/agents", Some(&owner.access_token), body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.body);
        assert!(reply.body["error"]["message"].as_str().is_some_and(|m| m.contains("private")), "{}", reply.body);
    }
}

async fn a_failing_model_is_retried_then_the_conversation_goes_to_a_human(db: Db) {
    let s = setup(db, json!({"name": "Bot", "cooldownSeconds": 0}), |config| config.agents.max_attempts = 3).await;
    s.model.script([openai::Turn::Status(500), text("Recovered answer")]);
    s.say(1, 1101, "hello").await;
    assert_eq!(s.wait_sent(1).await, vec!["Recovered answer".to_owned()]);
    assert_eq!(s.model.requests().len(), 2, "retried once after the 500");

    s.model.fail_always(Some(503));
    s.say(2, 1101, "are you there?").await;
    let conversation_id = s.conversation_of(1101).await["id"].as_str().expect("id").to_owned();
    let conversation = eventually(Duration::from_secs(20), "the hand-off", || async {
        let c = s.app.get(&format!("/api/conversations/{conversation_id}"), &s.owner.access_token).await.body;
        (c["botStatus"] == "PAUSED").then_some(c)
    })
    .await;
    assert_eq!(conversation["status"], "OPEN");
    assert_eq!(s.model.requests().len(), 2 + 3, "three attempts, then a human");
    // The pause is written before the note and the run's log: a reader may see it first.
    let note = eventually(Duration::from_secs(20), "the SYSTEM note", || async {
        s.messages(&conversation_id).await.into_iter().find(|m| m["direction"] == "SYSTEM")
    })
    .await;
    assert!(note["text"].as_str().is_some_and(|t| t.contains("503")), "{note}");
    let runs = eventually(Duration::from_secs(20), "the failed run", || async {
        let runs = s.runs(&conversation_id).await;
        (runs.first().is_some_and(|r| r["outcome"] != "REPLIED")).then_some(runs)
    })
    .await;
    assert_eq!(runs[0]["outcome"], "FAILED");
    assert!(runs[0]["error"].as_str().is_some_and(|e| e.contains("gave up after 3 attempts")), "{}", runs[0]);
    assert_eq!(s.sent_texts().len(), 1, "nothing more was sent to the customer");
}

async fn without_any_model_the_echo_fallback_answers(db: Db) {
    let s = setup(db, json!({"name": "Echo"}), |config| {
        config.agents.openai_base_url = None;
        config.agents.openai_api_key = None;
    })
    .await;
    s.say(1, 1201, "is anyone there").await;
    assert_eq!(s.wait_sent(1).await, vec!["Echo: is anyone there".to_owned()]);
    assert!(s.model.requests().is_empty());
    let conversation_id = s.conversation_of(1201).await["id"].as_str().expect("id").to_owned();
    let runs = s.runs(&conversation_id).await;
    assert_eq!(runs[0]["mode"], "ECHO");
    assert_eq!(runs[0]["outcome"], "REPLIED");
    assert_eq!(runs[0]["totalTokens"], 0);
}

async fn the_daily_token_budget_hands_off_when_spent(db: Db) {
    let s = setup(db, json!({"name": "Bot", "cooldownSeconds": 0}), |config| config.agents.daily_tokens = Some(10)).await;
    s.say(1, 1301, "first").await;
    s.wait_sent(1).await;
    s.say(2, 1301, "second").await;
    let conversation_id = s.conversation_of(1301).await["id"].as_str().expect("id").to_owned();
    eventually(Duration::from_secs(20), "the budget hand-off", || async {
        let runs = s.runs(&conversation_id).await;
        runs.first().filter(|r| r["outcome"] == "HANDED_OFF").cloned()
    })
    .await;
    assert_eq!(s.model.requests().len(), 1, "the spent budget makes no model call");
    let c = s.app.get(&format!("/api/conversations/{conversation_id}"), &s.owner.access_token).await.body;
    assert_eq!(c["botStatus"], "PAUSED");
}

async fn agents_are_managed_by_owners_and_admins_of_their_tenant_only(db: Db) {
    let s = setup(db, Value::Null, |_| {}).await;
    let token = &s.owner.access_token;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "x", "temperature": 3}), "temperature"),
        (json!({"name": "x", "trigger": {"type": "KEYWORD"}}), "trigger.keywords"),
        (json!({"name": "x", "trigger": {"type": "KEYWORD", "keywords": ["("], "matchMode": "REGEX"}}), "trigger.keywords[0]"),
        (json!({"name": "x", "historyMessages": 0}), "historyMessages"),
        (json!({"name": "x", "channelInstanceIds": [uuid::Uuid::new_v4()]}), "channelInstanceIds[0]"),
        (json!({"name": "x", "baseUrl": "ftp://models"}), "baseUrl"),
        (json!({"name": "x", "apiKey": "sk with space"}), "apiKey"),
        (
            json!({"name": "x", "httpTools": [{"name": "handoff_to_human", "description": "d", "url": "https://x.example/t"}]}),
            "httpTools[0].name",
        ),
    ] {
        let reply = s.app.post("/api/agents", Some(token), body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.body);
        assert!(reply.body["error"]["message"].as_str().is_some_and(|m| m.starts_with(field)), "{field}: {}", reply.body);
    }
    let unknown = s.app.post("/api/agents", Some(token), json!({"name": "x", "colour": "red"})).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);

    let agent = create_agent(
        &s.app,
        &s.owner,
        json!({"name": "Sales", "apiKey": "sk-tenant-secret-1", "baseUrl": "https://llm.example.com/v1", "channelInstanceIds": [s.channel_id]}),
    )
    .await;
    assert_eq!(agent["hasApiKey"], true);
    assert_eq!(agent["cooldownSeconds"], 30);
    assert_eq!(agent["humanPauseMinutes"], 30);
    assert_eq!(agent["historyMessages"], 20);
    assert_eq!(agent["trigger"]["type"], "ALL");
    let id = agent["id"].as_str().expect("id");
    let listed = s.app.get("/api/agents", token).await;
    assert!(!listed.body.to_string().contains("sk-tenant-secret-1"), "the key is never shown");
    let raw = s
        .app
        .db
        .raw_texts(match db {
            Db::Sqlite => "SELECT config FROM agents",
            Db::Postgres => "SELECT config::text FROM agents",
        })
        .await
        .join("");
    assert!(!raw.contains("sk-tenant-secret-1"), "the key is sealed at rest");
    let patched = s.app.patch(&format!("/api/agents/{id}"), token, json!({"active": false, "model": "llama3.1"})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["hasApiKey"], true, "an omitted key is kept");
    assert_eq!(patched.body["active"], false);
    let cleared = s.app.patch(&format!("/api/agents/{id}"), token, json!({"apiKey": null})).await;
    assert_eq!(cleared.body["hasApiKey"], false);

    let member =
        s.app.post("/api/users", Some(token), json!({"email": "m@shop.io", "role": "agent", "password": PASSWORD})).await;
    assert_eq!(member.status, StatusCode::CREATED);
    let member = Session::from_auth(&s.app.login("m@shop.io", PASSWORD).await.body);
    assert_eq!(
        s.app.post("/api/agents", Some(&member.access_token), json!({"name": "Mine"})).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.app.patch(&format!("/api/agents/{id}"), &member.access_token, json!({"active": true})).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.app.get(&format!("/api/agents/{id}"), &member.access_token).await.status, StatusCode::OK);

    let stranger = s.app.register("stranger@else.io").await;
    assert_eq!(s.app.get(&format!("/api/agents/{id}"), &stranger.access_token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(s.app.delete(&format!("/api/agents/{id}"), &stranger.access_token).await.status, StatusCode::NOT_FOUND);
    let foreign_router =
        s.app.post("/api/agent-teams", Some(&stranger.access_token), json!({"name": "T", "routerAgentId": id})).await;
    assert_eq!(foreign_router.status, StatusCode::UNPROCESSABLE_ENTITY, "another tenant's agent is not a router");

    let other = create_agent(&s.app, &s.owner, json!({"name": "Other"})).await;
    let team = s
        .app
        .post("/api/agent-teams", Some(token), json!({"name": "T", "routerAgentId": id, "members": [{"agentId": other["id"]}]}))
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", team.body);
    let team_id = team.body["id"].as_str().expect("team");
    let renamed = s.app.patch(&format!("/api/agent-teams/{team_id}"), token, json!({"name": "Team B", "members": []})).await;
    assert_eq!(renamed.body["name"], "Team B");
    assert_eq!(renamed.body["members"], json!([]));
    assert_eq!(s.app.get("/api/agent-teams", &stranger.access_token).await.body, json!([]));
    assert_eq!(s.app.delete(&format!("/api/agent-teams/{team_id}"), token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.app.delete(&format!("/api/agents/{id}"), token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.app.get(&format!("/api/agents/{id}"), token).await.status, StatusCode::NOT_FOUND);

    let bad_pause = s
        .app
        .patch(
            &format!("/api/conversations/{}", uuid::Uuid::new_v4()),
            token,
            json!({"botStatus": "ACTIVE", "botPausedUntil": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(bad_pause.status, StatusCode::UNPROCESSABLE_ENTITY);
}
