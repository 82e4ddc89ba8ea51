//! The WhatsApp bridge through its seam: the database-backed key store, the lifecycle (QR, open,
//! logout, transient drops, restart, one owner across replicas), inbound mapping into the inbox,
//! outbound sends with media and pacing, and the media download endpoint.

use std::sync::Arc;
use std::time::Duration;

use omnichat::Connectors;
use omnichat::bridges::whatsapp::client::{WaEvent, WaMediaKind};
use omnichat::bridges::whatsapp::store::DbBackend;
use omnichat_tests::fake::FakeProvider;
use omnichat_tests::socket::SocketClient;
use omnichat_tests::whatsapp::{OWN_NUMBER, WhatsAppScript};
use omnichat_tests::{Db, Session, TestApp, TestDb, eventually, id_of, spawn_app_with_connectors, spawn_replica_with_connectors};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wacore::types::message::{MessageInfo, MessageSource};
use waproto::buffa::MessageField;
use waproto::whatsapp as wa;

use super::on_both_databases;

on_both_databases!(
    the_key_store_round_trips_every_kind_of_state,
    a_new_channel_shows_a_qr_code_and_pairing_connects_it,
    a_logout_clears_the_keys_and_does_not_reconnect,
    a_transient_drop_is_not_a_logout,
    a_terminal_failure_ends_the_session_instead_of_leaving_it_connected,
    expired_qr_codes_disconnect_until_the_next_connect,
    a_restart_resumes_the_paired_session_without_a_qr,
    one_replica_runs_a_session_and_another_takes_over,
    messages_reach_the_inbox_and_lid_senders_are_the_same_customer,
    inbound_messages_are_acknowledged_only_after_they_are_stored,
    replies_are_sent_with_media_and_paced,
    media_of_inbound_messages_is_downloaded_through_the_client,
    pair_codes_disconnect_and_deletion,
    the_replica_without_the_session_serves_pair_codes_media_and_disconnects,
    the_qr_code_is_served_as_svg_and_png_images_that_decode_to_it,
);

const WAIT: Duration = Duration::from_secs(15);
const CUSTOMER: &str = "4915112345678@s.whatsapp.net";

fn connectors(script: &Arc<WhatsAppScript>) -> Connectors {
    Connectors { whatsapp: script.connector(), ..Default::default() }
}

async fn app(db: Db, script: &Arc<WhatsAppScript>) -> TestApp {
    spawn_app_with_connectors(db, |_| {}, connectors(script)).await
}

async fn status(app: &TestApp, owner: &Session, channel_id: &str) -> Value {
    app.get(&format!("/api/channels/{channel_id}"), &owner.access_token).await.body
}

async fn wait_status(app: &TestApp, owner: &Session, channel_id: &str, wanted: &str) -> Value {
    eventually(WAIT, &format!("the channel to be {wanted}"), || async {
        let channel = status(app, owner, channel_id).await;
        (channel["status"] == wanted).then_some(channel)
    })
    .await
}

/// A tenant with a new WHATSAPP channel whose client has started: (owner, channel id).
async fn new_channel(app: &TestApp, script: &WhatsAppScript, email: &str) -> (Session, String) {
    let owner = app.register(email).await;
    let channel = app.create_channel(&owner, json!({"name": "WhatsApp", "type": "WHATSAPP"})).await;
    assert_eq!(channel["status"], "CONNECTING", "{channel}");
    let channel_id = id_of(&channel).to_string();
    eventually(WAIT, "the client to start", || async { (!script.state().starts.is_empty()).then_some(()) }).await;
    (owner, channel_id)
}

/// A tenant with a paired, CONNECTED channel.
async fn paired(app: &TestApp, script: &WhatsAppScript, email: &str) -> (Session, String) {
    let (owner, channel_id) = new_channel(app, script, email).await;
    script.pair().await;
    wait_status(app, &owner, &channel_id, "CONNECTED").await;
    (owner, channel_id)
}

fn live_here(app: &TestApp, channel_id: &str) -> bool {
    app.state.whatsapp.is_live_here(channel_id.parse().expect("channel id"))
}

async fn session_of(app: &TestApp, owner: &Session, channel_id: &str) -> Uuid {
    let tenant = owner.tenant_id.parse().expect("tenant");
    app.state
        .store
        .whatsapp_session_of_channel(tenant, channel_id.parse().expect("id"))
        .await
        .expect("store")
        .expect("session")
        .id
}

fn incoming(id: &str, chat: &str, sender: &str, message: wa::Message) -> (Arc<wa::Message>, Arc<MessageInfo>) {
    let info = MessageInfo {
        id: id.into(),
        push_name: "Ada".into(),
        timestamp: chrono::Utc::now(),
        source: MessageSource { chat: chat.parse().expect("jid"), sender: sender.parse().expect("jid"), ..Default::default() },
        ..Default::default()
    };
    (Arc::new(message), Arc::new(info))
}

fn text(t: &str) -> wa::Message {
    wa::Message { conversation: Some(t.into()), ..Default::default() }
}

async fn inbox(app: &TestApp, owner: &Session, channel_id: &str) -> Vec<Value> {
    let list = app.get(&format!("/api/conversations?channelInstanceId={channel_id}&limit=100"), &owner.access_token).await;
    let mut all = Vec::new();
    for conversation in list.body["data"].as_array().cloned().unwrap_or_default() {
        let id = conversation["id"].as_str().unwrap_or_default();
        let page = app.get(&format!("/api/conversations/{id}/messages?limit=100"), &owner.access_token).await;
        all.extend(page.body["data"].as_array().cloned().unwrap_or_default());
    }
    all
}

async fn wait_inbox(app: &TestApp, owner: &Session, channel_id: &str, count: usize) -> Vec<Value> {
    eventually(WAIT, &format!("{count} messages in the inbox"), || async {
        let all = inbox(app, owner, channel_id).await;
        (all.len() >= count).then_some(all)
    })
    .await
}

async fn the_key_store_round_trips_every_kind_of_state(db: Db) {
    use wacore::appstate::hash::HashState;
    use wacore::appstate::processor::AppStateMutationMAC;
    use wacore::store::traits::*;
    use whatsapp_rust::bytes::Bytes;

    let test_db = TestDb::new(db);
    let store = test_db.store().await;
    let owner = omnichat::store::NewUser {
        email: "keys@wa.test".into(),
        name: None,
        role: omnichat::store::Role::Owner,
        password_hash: "x".into(),
    };
    let (tenant, _) = store.create_tenant_with_owner("T", owner).await.expect("tenant");
    let channel = omnichat::store::NewChannel {
        channel_type: omnichat::store::ChannelType::WHATSAPP,
        name: "wa".into(),
        external_id: None,
        config: json!({}),
        metadata: json!({}),
    };
    let channel = store.create_channel(tenant.id, channel).await.expect("channel");
    let session = store.whatsapp_session_for_channel(tenant.id, channel.id).await.expect("session");
    let secrets = omnichat::crypto::SecretBox::new(&omnichat::crypto::SecretKey::parse(&"07".repeat(32)).expect("key"));
    let b = DbBackend::new(store.clone(), secrets, session.id);

    // The device: absent, created, saved and loaded again (sealed at rest).
    assert!(!b.exists().await.expect("exists"));
    assert!(b.load().await.expect("load").is_none());
    b.create().await.expect("create");
    assert!(b.exists().await.expect("exists"));
    let mut device = b.load().await.expect("load").expect("a device");
    device.pn = Some(format!("{OWN_NUMBER}@s.whatsapp.net").parse().expect("jid"));
    device.push_name = "Acme".into();
    b.save(&device).await.expect("save");
    let loaded = b.load().await.expect("load").expect("device");
    assert_eq!(loaded.pn, device.pn);
    assert_eq!(loaded.registration_id, device.registration_id);
    assert_eq!(
        serde_json::to_string(&loaded).expect("json"),
        serde_json::to_string(&device).expect("json"),
        "the whole device round-trips"
    );
    let raw = store.get_whatsapp_session(session.id).await.expect("row").expect("row").device.expect("device bytes");
    assert!(raw.starts_with(b"enc:v1:"), "the device is sealed at rest");

    // Signal: identities, sessions (also in batches), pre-keys, signed pre-keys, sender keys.
    b.put_identity("1555@s.whatsapp.net", [1; 32]).await.expect("identity");
    assert_eq!(b.load_identity("1555@s.whatsapp.net").await.expect("load"), Some([1; 32]));
    b.put_identities_batch(&[(Arc::from("1666:2@s.whatsapp.net"), [2; 32])]).await.expect("batch");
    assert_eq!(b.load_identity("1666:2@s.whatsapp.net").await.expect("load"), Some([2; 32]));
    b.delete_identity("1555@s.whatsapp.net").await.expect("delete");
    assert_eq!(b.load_identity("1555@s.whatsapp.net").await.expect("load"), None);
    b.put_session("1777@s.whatsapp.net", b"s1").await.expect("session");
    b.put_sessions_batch(&[(Arc::from("1888:1@s.whatsapp.net"), Bytes::from_static(b"s2"))]).await.expect("batch");
    assert_eq!(b.get_session("1888:1@s.whatsapp.net").await.expect("get").as_deref(), Some(&b"s2"[..]));
    assert!(b.has_session("1777@s.whatsapp.net").await.expect("has"));
    assert!(b.has_signal_state_for_user("1888").await.expect("state"));
    assert!(b.has_signal_state_for_user("1666").await.expect("state"));
    assert!(!b.has_signal_state_for_user("188").await.expect("no prefix match"));
    b.delete_session("1777@s.whatsapp.net").await.expect("delete");
    assert!(!b.has_session("1777@s.whatsapp.net").await.expect("has"));
    assert_eq!(b.get_max_prekey_id().await.expect("max"), 0);
    b.store_prekeys_batch(&[(9, Bytes::from_static(b"p9")), (10, Bytes::from_static(b"p10"))], false).await.expect("prekeys");
    b.store_prekey(2, b"p2", true).await.expect("prekey");
    assert_eq!(b.get_max_prekey_id().await.expect("max"), 10);
    let mut batch = b.load_prekeys_batch(&[2, 10, 99]).await.expect("batch");
    batch.sort_by_key(|(id, _)| *id);
    assert_eq!(batch, vec![(2, Bytes::from_static(b"p2")), (10, Bytes::from_static(b"p10"))]);
    b.mark_prekeys_uploaded(&[2]).await.expect("mark");
    b.remove_prekey(10).await.expect("remove");
    assert_eq!(b.load_prekey(10).await.expect("load"), None);
    b.store_signed_prekey(1, b"sp1").await.expect("signed");
    b.store_signed_prekey(2, b"sp2").await.expect("signed");
    assert_eq!(b.load_all_signed_prekeys().await.expect("all").len(), 2);
    b.remove_signed_prekey(1).await.expect("remove");
    assert_eq!(b.load_signed_prekey(1).await.expect("load"), None);
    assert_eq!(b.load_signed_prekey(2).await.expect("load"), Some(b"sp2".to_vec()));
    b.put_sender_key("group|1555", b"sk").await.expect("sender key");
    assert_eq!(b.get_sender_key("group|1555").await.expect("get"), Some(b"sk".to_vec()));
    b.delete_sender_key("group|1555").await.expect("delete");
    assert_eq!(b.get_sender_key("group|1555").await.expect("get"), None);

    // Key material is sealed at rest, each value bound to its row; rows written before sealing
    // (plain) are still read.
    let raw = store.whatsapp_keys_get(session.id, "session", &["1888:1@s.whatsapp.net".into()]).await.expect("raw");
    assert!(raw[0].1.starts_with(b"enc:b1:") && !raw[0].1.ends_with(b"s2"), "a Signal session is sealed at rest");
    let raw = store.whatsapp_keys_list(session.id, "prekey", "").await.expect("raw prekeys");
    assert!(!raw.is_empty() && raw.iter().all(|(_, v)| v.starts_with(b"enc:b1:")), "pre-keys are sealed at rest");
    store
        .whatsapp_keys_put(session.id, "session", &[("1999@s.whatsapp.net".into(), b"legacy".to_vec())])
        .await
        .expect("plain row");
    assert_eq!(b.get_session("1999@s.whatsapp.net").await.expect("get").as_deref(), Some(&b"legacy"[..]));
    let moved = raw[0].1.clone();
    store.whatsapp_keys_put(session.id, "session", &[("1000@s.whatsapp.net".into(), moved)]).await.expect("moved row");
    assert!(b.get_session("1000@s.whatsapp.net").await.is_err(), "a sealed value moved to another row does not open");
    b.delete_session("1000@s.whatsapp.net").await.expect("delete");

    // App state: sync keys (with the latest), versions, mutation MACs per collection.
    let key = AppStateSyncKey { key_data: vec![1, 2], fingerprint: vec![3], timestamp: 4 };
    b.set_sync_key(b"key-a", key.clone()).await.expect("sync key");
    assert_eq!(b.get_sync_key(b"key-a").await.expect("get").map(|k| k.key_data), Some(vec![1, 2]));
    assert_eq!(b.get_latest_sync_key_id().await.expect("latest"), Some(b"key-a".to_vec()));
    assert_eq!(b.get_version("regular").await.expect("version").version, 0);
    let state = HashState { version: 7, ..Default::default() };
    b.set_version("regular", state).await.expect("set version");
    assert_eq!(b.get_version("regular").await.expect("version").version, 7);
    let macs = [
        AppStateMutationMAC { index_mac: vec![1; 32], value_mac: vec![9] },
        AppStateMutationMAC { index_mac: vec![2; 32], value_mac: vec![8] },
    ];
    b.put_mutation_macs("regular", 7, &macs).await.expect("macs");
    b.put_mutation_macs("critical", 1, &macs[..1]).await.expect("macs");
    assert_eq!(b.get_mutation_mac("regular", &[1; 32]).await.expect("mac"), Some(vec![9]));
    let found = b.get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]]).await.expect("macs");
    assert_eq!(found.len(), 2);
    b.delete_mutation_macs("regular", &[vec![1; 32]]).await.expect("delete");
    assert_eq!(b.get_mutation_mac("regular", &[1; 32]).await.expect("mac"), None);
    b.clear_mutation_macs("regular").await.expect("clear");
    assert_eq!(b.get_mutation_mac("regular", &[2; 32]).await.expect("mac"), None);
    assert_eq!(b.get_mutation_mac("critical", &[1; 32]).await.expect("other collection kept"), Some(vec![9]));

    // Protocol: sender-key devices, LID mappings, base keys, device lists, groups, tokens, sent messages.
    b.set_sender_key_status("g1@g.us", &[("1555:1@s.whatsapp.net", true), ("1666@s.whatsapp.net", false)]).await.expect("status");
    b.set_sender_key_status("g2@g.us", &[("1555:1@s.whatsapp.net", true)]).await.expect("status");
    let mut devices = b.get_sender_key_devices("g1@g.us").await.expect("devices");
    devices.sort();
    assert_eq!(devices, vec![("1555:1@s.whatsapp.net".to_owned(), true), ("1666@s.whatsapp.net".to_owned(), false)]);
    b.delete_sender_key_device_rows(&["1555:1@s.whatsapp.net"]).await.expect("rows");
    assert_eq!(b.get_sender_key_devices("g1@g.us").await.expect("devices").len(), 1);
    assert!(b.get_sender_key_devices("g2@g.us").await.expect("devices").is_empty());
    b.clear_sender_key_devices("g1@g.us").await.expect("clear");
    assert!(b.get_sender_key_devices("g1@g.us").await.expect("devices").is_empty());
    let mapping = |phone: &str| LidPnMappingEntry {
        lid: "100000012345678".into(),
        phone_number: phone.into(),
        created_at: 1,
        updated_at: 2,
        learning_source: "usync".into(),
    };
    b.put_lid_mapping(&mapping("4915112345678")).await.expect("lid");
    assert_eq!(b.get_pn_mapping("4915112345678").await.expect("pn").map(|e| e.lid), Some("100000012345678".into()));
    b.put_lid_mapping(&mapping("4915199999999")).await.expect("remap");
    assert!(b.get_pn_mapping("4915112345678").await.expect("pn").is_none(), "the old phone no longer maps");
    assert_eq!(b.get_lid_mapping("100000012345678").await.expect("lid").map(|e| e.phone_number), Some("4915199999999".into()));
    assert_eq!(b.get_all_lid_mappings().await.expect("all").len(), 1);
    b.save_base_key("1555@s.whatsapp.net", "m1", b"base").await.expect("base");
    assert!(b.has_same_base_key("1555@s.whatsapp.net", "m1", b"base").await.expect("same"));
    assert!(!b.has_same_base_key("1555@s.whatsapp.net", "m1", b"other").await.expect("same"));
    b.delete_base_key("1555@s.whatsapp.net", "m1").await.expect("delete");
    assert!(!b.has_same_base_key("1555@s.whatsapp.net", "m1", b"base").await.expect("gone"));
    let list = DeviceListRecord {
        user: "1555".into(),
        devices: vec![DeviceInfo { device_id: 0, key_index: None, is_hosted: false }],
        timestamp: 5,
        phash: None,
        raw_id: None,
    };
    b.update_device_list(list).await.expect("devices");
    assert_eq!(b.get_devices("1555").await.expect("devices").map(|d| d.timestamp), Some(5));
    b.delete_devices("1555").await.expect("delete");
    assert!(b.get_devices("1555").await.expect("devices").is_none());
    b.put_group_metadata("g1@g.us", b"meta").await.expect("meta");
    assert_eq!(b.get_group_metadata("g1@g.us").await.expect("meta"), Some(b"meta".to_vec()));
    b.put_tc_token("1555@s.whatsapp.net", &TcTokenEntry { token: vec![1], token_timestamp: 100, sender_timestamp: None })
        .await
        .expect("token");
    b.put_tc_token("1666@s.whatsapp.net", &TcTokenEntry { token: vec![1], token_timestamp: 10, sender_timestamp: None })
        .await
        .expect("token");
    assert_eq!(b.get_all_tc_token_jids().await.expect("jids").len(), 2);
    assert_eq!(b.delete_expired_tc_tokens(50, 50).await.expect("expire"), 1);
    assert!(b.get_tc_token("1555@s.whatsapp.net").await.expect("kept").is_some());
    b.store_sent_message("1555@s.whatsapp.net", "m2", b"payload").await.expect("sent");
    assert_eq!(b.take_sent_message("1555@s.whatsapp.net", "m2").await.expect("take"), Some(b"payload".to_vec()));
    assert_eq!(b.take_sent_message("1555@s.whatsapp.net", "m2").await.expect("taken once"), None);
    b.store_sent_message("1555@s.whatsapp.net", "m3", b"old").await.expect("sent");
    assert_eq!(b.delete_expired_sent_messages(chrono::Utc::now().timestamp() + 10).await.expect("expire"), 1);

    // Message secrets merge their expiry and message time.
    let entry = |expires_at, message_ts| MsgSecretEntry {
        chat: Arc::from("1555@s.whatsapp.net"),
        sender: Arc::from("1666@s.whatsapp.net"),
        msg_id: Arc::from("m4"),
        secret: [5; 32],
        expires_at,
        message_ts,
    };
    assert_eq!(b.put_msg_secrets(vec![entry(100, 7)]).await.expect("secrets"), 1);
    b.put_msg_secrets(vec![entry(200, 3)]).await.expect("merge");
    assert_eq!(
        b.get_msg_secret_with_ts("1555@s.whatsapp.net", "1666@s.whatsapp.net", "m4").await.expect("get"),
        Some((vec![5; 32], 7))
    );
    assert_eq!(b.delete_expired_msg_secrets(150).await.expect("expire"), 0, "the merged expiry is 200");
    assert_eq!(b.delete_expired_msg_secrets(250).await.expect("expire"), 1);
    assert_eq!(b.get_msg_secret("1555@s.whatsapp.net", "1666@s.whatsapp.net", "m4").await.expect("get"), None);

    // A restart reads the same state; a logout clears it all.
    let again = DbBackend::new(
        store.clone(),
        omnichat::crypto::SecretBox::new(&omnichat::crypto::SecretKey::parse(&"07".repeat(32)).expect("key")),
        session.id,
    );
    assert_eq!(again.load_identity("1666:2@s.whatsapp.net").await.expect("load"), Some([2; 32]));
    assert!(again.load().await.expect("load").is_some_and(|d| d.pn.is_some()));
    store.clear_whatsapp_session(session.id).await.expect("clear");
    assert!(!again.exists().await.expect("exists"));
    assert_eq!(again.load_identity("1666:2@s.whatsapp.net").await.expect("load"), None);
    assert_eq!(again.get_max_prekey_id().await.expect("max"), 0);
}

async fn a_new_channel_shows_a_qr_code_and_pairing_connects_it(db: Db) {
    let script = WhatsAppScript::new();
    let app = app(db, &script).await;
    let owner = app.register("owner@qr.test").await;
    let channel = app.create_channel(&owner, json!({"name": "WhatsApp", "type": "WHATSAPP"})).await;
    let channel_id = id_of(&channel).to_string();
    let mut socket = SocketClient::connect(&app.base_url(), Some(&owner.access_token), &[&channel_id]).await;
    socket.ready().await;
    // The first QR may have been emitted before the socket joined: the UI asks for it.
    let current = eventually(WAIT, "a stored QR code", || async {
        let reply = app.get(&format!("/api/channels/{channel_id}/whatsapp/qr"), &owner.access_token).await;
        (reply.status == StatusCode::OK).then_some(reply.body)
    })
    .await;
    assert!(current["qr"].as_str().is_some_and(|qr| qr.starts_with("2@")), "{current}");
    assert!(current["expiresAt"].is_string());

    script.emit(WaEvent::Qr { code: "2@next-qr".into(), ttl: Duration::from_secs(20) });
    let event = socket.event("whatsapp-qr", WAIT).await.expect("whatsapp-qr");
    assert_eq!(event["qr"], "2@next-qr");
    assert_eq!(event["channelInstanceId"], channel_id.as_str());
    assert!(event["expiresAt"].is_string());
    let stored = app.get(&format!("/api/channels/{channel_id}/whatsapp/qr"), &owner.access_token).await;
    assert_eq!(stored.body["qr"], "2@next-qr");

    script.pair().await;
    // Status first (as stored), then the WhatsApp-specific event.
    let status_event = socket.event("channel-status", WAIT).await.expect("channel-status");
    assert_eq!(status_event["status"], "CONNECTED");
    let connected = socket.event("whatsapp-connected", WAIT).await.expect("whatsapp-connected");
    assert_eq!(connected["channelInstanceId"], channel_id.as_str());
    wait_status(&app, &owner, &channel_id, "CONNECTED").await;
    let no_qr = app.get(&format!("/api/channels/{channel_id}/whatsapp/qr"), &owner.access_token).await;
    assert_eq!(no_qr.status, StatusCode::NOT_FOUND);
    assert_eq!(no_qr.error_code(), "no_qr_code");

    // Another tenant sees none of it.
    let stranger = app.register("stranger@qr.test").await;
    let theirs = app.get(&format!("/api/channels/{channel_id}/whatsapp/qr"), &stranger.access_token).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

async fn a_logout_clears_the_keys_and_does_not_reconnect(db: Db) {
    let script = WhatsAppScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = paired(&app, &script, "owner@logout.test").await;
    let session = session_of(&app, &owner, &channel_id).await;
    app.state.store.whatsapp_keys_put(session, "identity", &[("1555@s.whatsapp.net".into(), vec![1; 32])]).await.expect("key");
    script.emit(WaEvent::LoggedOut { reason: "device removed".into() });
    let channel = wait_status(&app, &owner, &channel_id, "DISCONNECTED").await;
    assert!(channel["statusReason"].as_str().unwrap_or_default().contains("logged out"), "{channel}");
    let row = app.state.store.get_whatsapp_session(session).await.expect("store").expect("row");
    assert!(row.device.is_none(), "the device is forgotten");
    assert!(app.state.store.whatsapp_keys_list(session, "identity", "").await.expect("keys").is_empty(), "the keys are cleared");
    let starts = script.state().starts.len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(script.state().starts.len(), starts, "no reconnect after a logout");
    assert!(!live_here(&app, &channel_id));

    // Connecting again pairs anew, with a QR code.
    let reply = app.post(&format!("/api/channels/{channel_id}/connect"), Some(&owner.access_token), json!({})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["status"], "CONNECTING");
    eventually(WAIT, "a new QR code", || async { (script.state().qr_codes.len() >= 2).then_some(()) }).await;
}

async fn a_transient_drop_is_not_a_logout(db: Db) {
    let script = WhatsAppScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = paired(&app, &script, "owner@drop.test").await;
    let starts = script.state().starts.len();
    script.emit(WaEvent::Disconnected { reason: "stream error 515".into() });
    script.emit(WaEvent::Connected);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(status(&app, &owner, &channel_id).await["status"], "CONNECTED");
    assert_eq!(script.state().starts.len(), starts, "the client reconnects by itself; no restart");
    assert!(script.state().logged_out.is_empty());
    assert!(live_here(&app, &channel_id));
}

async fn a_terminal_failure_ends_the_session_instead_of_leaving_it_connected(db: Db) {
    let script = WhatsAppScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = paired(&app, &script, "owner@failed.test").await;
    script.emit(WaEvent::Failed { reason: "WhatsApp refused the connection (ClientUnknown)".into() });
    let channel = wait_status(&app, &owner, &channel_id, "ERROR").await;
    assert_eq!(channel["statusReason"], "WhatsApp refused the connection (ClientUnknown)");
    eventually(WAIT, "the local session ended", || async { (!live_here(&app, &channel_id)).then_some(()) }).await;
    // Stopped by the session's end, and again (a no-op) when the supervisor sees the channel left CONNECTED.
    assert!(!script.state().stopped.is_empty(), "the client was stopped");
    assert!(script.state().logged_out.is_empty(), "the pairing is kept: connecting again resumes it");
    let row =
        app.state.store.get_whatsapp_session(session_of(&app, &owner, &channel_id).await).await.expect("store").expect("row");
    assert!(row.device.is_some());

    // A pairing failure on a new channel: DISCONNECTED with the reason, until the next connect.
    let (owner, channel_id) = new_channel(&app, &script, "owner@pairfail.test").await;
    script.emit(WaEvent::PairingFailed { reason: "pairing failed: bad signature".into() });
    let channel = wait_status(&app, &owner, &channel_id, "DISCONNECTED").await;
    assert_eq!(channel["statusReason"], "pairing failed: bad signature");
    eventually(WAIT, "the pairing session ended", || async { (!live_here(&app, &channel_id)).then_some(()) }).await;
}

async fn expired_qr_codes_disconnect_until_the_next_connect(db: Db) {
    let script = WhatsAppScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = new_channel(&app, &script, "owner@exhausted.test").await;
    script.emit(WaEvent::QrExhausted);
    let channel = wait_status(&app, &owner, &channel_id, "DISCONNECTED").await;
    assert!(channel["statusReason"].as_str().unwrap_or_default().contains("QR"), "{channel}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(script.state().starts.len(), 1, "no new QR codes until the next connect");
    let reply = app.post(&format!("/api/channels/{channel_id}/connect"), Some(&owner.access_token), json!({})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    eventually(WAIT, "the client to start again", || async { (script.state().starts.len() == 2).then_some(()) }).await;
}

async fn a_restart_resumes_the_paired_session_without_a_qr(db: Db) {
    let script = WhatsAppScript::new();
    let mut first = app(db, &script).await;
    let (owner, channel_id) = paired(&first, &script, "owner@restart.test").await;
    assert_eq!(script.state().qr_codes.len(), 1);
    let second = spawn_replica_with_connectors(&first, |_| {}, connectors(&script)).await;
    first.shut_down();
    eventually(WAIT, "the second host to resume the session", || async { live_here(&second, &channel_id).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(script.state().starts.len(), 2);
    assert_eq!(script.state().qr_codes.len(), 1, "the stored device resumed without a new QR code");
    assert_eq!(status(&second, &owner, &channel_id).await["status"], "CONNECTED");
}

async fn one_replica_runs_a_session_and_another_takes_over(db: Db) {
    let script = WhatsAppScript::new();
    let first = app(db, &script).await;
    let (_owner, channel_id) = paired(&first, &script, "owner@lease.test").await;
    let second = spawn_replica_with_connectors(&first, |_| {}, connectors(&script)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(live_here(&first, &channel_id) && !live_here(&second, &channel_id), "exactly one owner");
    assert_eq!(script.state().starts.len(), 1);

    first.state.whatsapp.halt();
    let halted = std::time::Instant::now();
    eventually(WAIT, "the second replica to take over", || async { live_here(&second, &channel_id).then_some(()) }).await;
    // The lease (2 s in tests) was renewed at most one round (200 ms) before the halt.
    assert!(halted.elapsed() >= Duration::from_millis(1500), "taken over before the lease expired");
}

/// The inbound durability hook: a message is acknowledged to WhatsApp only once it is stored; a
/// redelivery (the ack lost in a crash) is stored once; a batch the host cannot store is not
/// acknowledged at all, and the buffer of pending messages round-trips through the key store.
async fn inbound_messages_are_acknowledged_only_after_they_are_stored(db: Db) {
    use wacore::store::traits::ProtocolStore;
    let script = WhatsAppScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = paired(&app, &script, "owner@durable.test").await;

    script.deliver(vec![incoming("3EB0DUR1", CUSTOMER, CUSTOMER, text("stored before the ack"))]).await.expect("stored");
    assert_eq!(script.state().acked, ["3EB0DUR1"]);
    let conversations = app.get(&format!("/api/conversations?channelInstanceId={channel_id}"), &owner.access_token).await;
    let conversation = conversations.body["data"][0]["id"].as_str().expect("a conversation").to_owned();
    let texts = |body: &Value| -> Vec<String> {
        body["data"].as_array().expect("data").iter().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect()
    };
    let messages = app.get(&format!("/api/conversations/{conversation}/messages"), &owner.access_token).await;
    assert_eq!(texts(&messages.body), ["stored before the ack"], "stored when the hook returned, before any event");

    // A redelivery after a crash between the commit and the ack: stored once.
    script.deliver(vec![incoming("3EB0DUR1", CUSTOMER, CUSTOMER, text("stored before the ack"))]).await.expect("replayed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = app.get(&format!("/api/conversations/{conversation}/messages"), &owner.access_token).await;
    assert_eq!(texts(&messages.body).len(), 1, "a redelivery is a duplicate");

    // The pending buffer the SDK keeps messages in until the hook committed them.
    let session = session_of(&app, &owner, &channel_id).await;
    let backend = omnichat::bridges::whatsapp::store::DbBackend::new(app.state.store.clone(), app.state.secrets.clone(), session);
    backend.store_pending_inbound(CUSTOMER, CUSTOMER, "3EB0PEND", b"buffered").await.expect("buffer");
    assert_eq!(
        backend.get_pending_inbound(CUSTOMER, CUSTOMER, "3EB0PEND").await.expect("get").as_deref(),
        Some(&b"buffered"[..])
    );
    assert_eq!(backend.delete_expired_pending_inbound(0).await.expect("sweep"), 0, "not expired yet");
    backend.delete_pending_inbound(CUSTOMER, CUSTOMER, "3EB0PEND").await.expect("delete");
    assert_eq!(backend.get_pending_inbound(CUSTOMER, CUSTOMER, "3EB0PEND").await.expect("get"), None);

    // A batch the host cannot store (its channel is gone) fails the hook, so whatsapp-rust
    // acknowledges none of it.
    let sink = script.sink();
    app.state.store.delete_channel(owner_tenant(&owner), channel_id.parse().expect("id")).await.expect("delete");
    let refused = sink.store(&[incoming("3EB0DUR2", CUSTOMER, CUSTOMER, text("lost?"))]).await;
    assert!(refused.is_err(), "the hook reports the failure");
}

fn owner_tenant(owner: &omnichat_tests::Session) -> uuid::Uuid {
    owner.tenant_id.parse().expect("tenant id")
}

async fn messages_reach_the_inbox_and_lid_senders_are_the_same_customer(db: Db) {
    let script = WhatsAppScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = paired(&app, &script, "owner@inbound.test").await;

    let mut lid = incoming("3EB0LID", "100000012345678@lid", "100000012345678@lid", text("via lid"));
    Arc::make_mut(&mut lid.1).source.sender_alt = Some(CUSTOMER.parse().expect("jid"));
    let mut own = incoming("3EB0OWN", CUSTOMER, &format!("{OWN_NUMBER}:1@s.whatsapp.net"), text("from my phone"));
    Arc::make_mut(&mut own.1).source.is_from_me = true;
    let image = wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            caption: Some("photo".into()),
            mimetype: Some("image/jpeg".into()),
            direct_path: Some("/v/t62/x".into()),
            media_key: Some(vec![1; 32]),
            file_sha256: Some(vec![2; 32]),
            file_enc_sha256: Some(vec![3; 32]),
            file_length: Some(4),
            ..Default::default()
        }),
        ..Default::default()
    };
    script.emit(WaEvent::Messages(vec![
        incoming("3EB0PN", CUSTOMER, CUSTOMER, text("hello")),
        lid,
        own,
        incoming("3EB0IMG", CUSTOMER, CUSTOMER, image),
        incoming("3EB0PN", CUSTOMER, CUSTOMER, text("hello")),
    ]));
    let all = wait_inbox(&app, &owner, &channel_id, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all_now = inbox(&app, &owner, &channel_id).await;
    assert_eq!(all_now.len(), 4, "the redelivered message is stored once: {all:?}");
    let customers = app.get(&format!("/api/customers?channelInstanceId={channel_id}"), &owner.access_token).await;
    let customers = customers.body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(customers.len(), 1, "the @lid sender is the phone's customer: {customers:?}");
    assert_eq!(customers[0]["externalId"], CUSTOMER);
    assert_eq!(customers[0]["name"], "Ada");
    let conversations: std::collections::HashSet<_> = all_now.iter().map(|m| m["conversationId"].clone()).collect();
    assert_eq!(conversations.len(), 1, "one thread");
    let own = all_now.iter().find(|m| m["text"] == "from my phone").expect("own message");
    assert_eq!((own["direction"].as_str(), own["status"].as_str()), (Some("OUTBOUND"), Some("SENT")));
    let image = all_now.iter().find(|m| m["text"] == "photo").expect("image");
    assert_eq!(image["attachments"][0]["kind"], "image");
    assert_eq!(image["attachments"][0]["extra"]["download"]["directPath"], "/v/t62/x");
}

async fn replies_are_sent_with_media_and_paced(db: Db) {
    let script = WhatsAppScript::new();
    let files = FakeProvider::start().await;
    let app = app(db, &script).await;
    let (owner, channel_id) = paired(&app, &script, "owner@send.test").await;
    script.emit(WaEvent::Messages(vec![incoming("3EB0Q", CUSTOMER, CUSTOMER, text("price?"))]));
    let conversation_id = wait_inbox(&app, &owner, &channel_id, 1).await[0]["conversationId"].as_str().expect("id").to_owned();
    let token = Some(owner.access_token.as_str());
    let send = |body: Value| app.post("/api/messages/send", token, body);

    let texts: Vec<Value> =
        futures::future::join_all((0..3).map(|i| send(json!({"conversationId": conversation_id, "text": format!("reply {i}")}))))
            .await
            .into_iter()
            .map(|reply| reply.body)
            .collect();
    let image_url = format!("{}/files/catalog.jpg", files.base_url());
    let image = send(json!({"conversationId": conversation_id, "text": "our catalog", "attachments": [{"url": image_url, "type": "image", "mimeType": "image/jpeg"}]})).await;
    let sticker = send(
        json!({"conversationId": conversation_id, "attachments": [{"url": "https://files.example/s.webp", "type": "sticker"}]}),
    )
    .await;
    for message in texts.iter().chain([&image.body, &sticker.body]) {
        app.message_with_status(&owner, &conversation_id, &id_of(message).to_string(), "SENT").await;
    }

    let sent = script.state().sent.clone();
    assert_eq!(sent.len(), 5);
    assert!(sent.iter().all(|s| s.to == CUSTOMER), "{sent:?}");
    let media = sent.iter().find_map(|s| s.media.clone()).expect("the image");
    assert_eq!(media.kind, WaMediaKind::Image);
    assert_eq!(media.caption.as_deref(), Some("our catalog"));
    assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
    assert!(!media.bytes.is_empty());
    assert!(files.requests().iter().any(|r| r.path == "/files/catalog.jpg"), "fetched from the URL");
    let fallback = sent.iter().find(|s| s.text.as_deref().is_some_and(|t| t.contains("s.webp"))).expect("the sticker as a link");
    assert!(fallback.media.is_none());
    let mut times: Vec<_> = sent.iter().map(|s| s.at).collect();
    times.sort();
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(350), "sends of one number are paced");
    }
    let provider_id =
        app.message(&owner, &conversation_id, &id_of(&texts[0]).to_string()).await.expect("message")["providerMessageId"].clone();
    assert!(provider_id.as_str().is_some_and(|id| id.starts_with("3EB0SENT")), "{provider_id}");
}

/// An inbound PNG with everything a download needs.
fn image() -> wa::Message {
    wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            mimetype: Some("image/png".into()),
            direct_path: Some("/v/t62/y".into()),
            media_key: Some(vec![1; 32]),
            file_sha256: Some(vec![2; 32]),
            file_enc_sha256: Some(vec![3; 32]),
            file_length: Some(10),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn media_of_inbound_messages_is_downloaded_through_the_client(db: Db) {
    let script = WhatsAppScript::new();
    script.state().media = b"\x89PNG-bytes".to_vec();
    let app = app(db, &script).await;
    let (owner, channel_id) = paired(&app, &script, "owner@media.test").await;
    script.emit(WaEvent::Messages(vec![
        incoming("3EB0M", CUSTOMER, CUSTOMER, image()),
        incoming("3EB0T", CUSTOMER, CUSTOMER, text("no media")),
    ]));
    let all = wait_inbox(&app, &owner, &channel_id, 2).await;
    let with_media = all.iter().find(|m| m["providerMessageId"] == format!("{CUSTOMER}:3EB0M")).expect("image message");
    let without = all.iter().find(|m| m["providerMessageId"] == format!("{CUSTOMER}:3EB0T")).expect("text message");

    let response = app
        .client
        .get(app.url(&format!("/api/messages/{}/media", with_media["id"].as_str().expect("id"))))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.expect("body").as_ref(), b"\x89PNG-bytes");

    let none = app.get(&format!("/api/messages/{}/media", without["id"].as_str().expect("id")), &owner.access_token).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(none.error_code(), "no_media");
    let stranger = app.register("stranger@media.test").await;
    let theirs =
        app.get(&format!("/api/messages/{}/media", with_media["id"].as_str().expect("id")), &stranger.access_token).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let unknown = app.get(&format!("/api/messages/{}/media", Uuid::new_v4()), &owner.access_token).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

async fn pair_codes_disconnect_and_deletion(db: Db) {
    let script = WhatsAppScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = new_channel(&app, &script, "owner@pair.test").await;
    let token = Some(owner.access_token.as_str());
    let path = format!("/api/channels/{channel_id}/whatsapp/pair-code");
    let code = app.post(&path, token, json!({"phoneNumber": "+49 176 0000-0000"})).await;
    assert_eq!(code.status, StatusCode::OK, "{}", code.body);
    assert_eq!(code.body["code"], "ABCD-EFGH");
    assert_eq!(script.state().pair_codes, vec!["4917600000000".to_owned()]);
    let bad = app.post(&path, token, json!({"phoneNumber": "call me"})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let stranger = app.register("stranger@pair.test").await;
    let theirs = app.post(&path, Some(&stranger.access_token), json!({"phoneNumber": "+4917600000000"})).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let bot = app.create_channel(&owner, json!({"name": "Bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:x"}})).await;
    let wrong = app.get(&format!("/api/channels/{}/whatsapp/qr", id_of(&bot)), &owner.access_token).await;
    assert_eq!(wrong.status, StatusCode::CONFLICT);

    script.pair().await;
    wait_status(&app, &owner, &channel_id, "CONNECTED").await;
    let session = session_of(&app, &owner, &channel_id).await;
    let out = app.post(&format!("/api/channels/{channel_id}/disconnect"), token, json!({})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.body["status"], "DISCONNECTED");
    assert_eq!(script.state().logged_out, vec![session]);
    assert!(app.state.store.get_whatsapp_session(session).await.expect("store").expect("row").device.is_none());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!live_here(&app, &channel_id), "a disconnected channel stays down");

    // Connected again, then deleted: logged out first.
    let again = app.post(&format!("/api/channels/{channel_id}/connect"), token, json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    eventually(WAIT, "the client to start again", || async { live_here(&app, &channel_id).then_some(()) }).await;
    script.pair().await;
    wait_status(&app, &owner, &channel_id, "CONNECTED").await;
    let deleted = app.delete(&format!("/api/channels/{channel_id}"), &owner.access_token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(script.state().logged_out.len(), 2);
    assert!(!live_here(&app, &channel_id));
}

/// Every route works on a replica that does not run the session: the one that does is asked
/// through the database and answers.
async fn the_replica_without_the_session_serves_pair_codes_media_and_disconnects(db: Db) {
    let script = WhatsAppScript::new();
    script.state().media = b"\x89PNG-remote".to_vec();
    let first = app(db, &script).await;
    let (owner, channel_id) = new_channel(&first, &script, "owner@remote.test").await;
    let second = spawn_replica_with_connectors(&first, |_| {}, connectors(&script)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(live_here(&first, &channel_id) && !live_here(&second, &channel_id), "the first replica runs the session");
    let token = Some(owner.access_token.as_str());

    let path = format!("/api/channels/{channel_id}/whatsapp/pair-code");
    let code = second.post(&path, token, json!({"phoneNumber": "+49 176 0000-0001"})).await;
    assert_eq!(code.status, StatusCode::OK, "{}", code.body);
    assert_eq!(code.body["code"], "ABCD-EFGH");
    assert_eq!(script.state().pair_codes, vec!["4917600000001".to_owned()], "asked of the running client");
    let qr_path = format!("/api/channels/{channel_id}/whatsapp/qr");
    let (qr_here, qr_there) = (first.get(&qr_path, &owner.access_token).await, second.get(&qr_path, &owner.access_token).await);
    assert_eq!((qr_there.status, &qr_there.body), (qr_here.status, &qr_here.body));
    let stranger = second.register("stranger@remote.test").await;
    let theirs = second.post(&path, Some(&stranger.access_token), json!({"phoneNumber": "+4917600000001"})).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);

    script.pair().await;
    wait_status(&second, &owner, &channel_id, "CONNECTED").await;
    script.emit(WaEvent::Messages(vec![incoming("3EB0R", CUSTOMER, CUSTOMER, image())]));
    let stored = wait_inbox(&second, &owner, &channel_id, 1).await;
    let media = second
        .client
        .get(second.url(&format!("/api/messages/{}/media", stored[0]["id"].as_str().expect("id"))))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .expect("request");
    assert_eq!(media.status(), StatusCode::OK);
    assert_eq!(media.headers()["content-type"], "image/png");
    assert_eq!(media.bytes().await.expect("body").as_ref(), b"\x89PNG-remote");

    // A disconnect asked of the second replica: the first logs the device out before it answers.
    let session = session_of(&second, &owner, &channel_id).await;
    let out = second.post(&format!("/api/channels/{channel_id}/disconnect"), token, json!({})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.body["status"], "DISCONNECTED");
    assert_eq!(script.state().logged_out, vec![session], "logged out by the time the disconnect answered");
    assert!(!live_here(&first, &channel_id));
    assert!(second.state.store.get_whatsapp_session(session).await.expect("store").expect("row").device.is_none());

    // Nobody runs it now: asked anywhere, the answer says so and when to try.
    let none = second.post(&path, token, json!({"phoneNumber": "+4917600000001"})).await;
    assert_eq!(none.status, StatusCode::SERVICE_UNAVAILABLE, "{}", none.body);
    assert_eq!(none.error_code(), "session_not_running");
}

/// `GET /api/channels/:id/whatsapp/qr.svg` (and `?format=png`): images a browser renders and a
/// QR reader (jsQR, in Chromium) decodes to the stored code; tenant-scoped.
async fn the_qr_code_is_served_as_svg_and_png_images_that_decode_to_it(db: Db) {
    let script = WhatsAppScript::new();
    let app = app(db, &script).await;
    let (owner, channel_id) = new_channel(&app, &script, "owner@qr-image.test").await;
    let qr = eventually(WAIT, "a QR code", || async {
        let reply = app.get(&format!("/api/channels/{channel_id}/whatsapp/qr"), &owner.access_token).await;
        (reply.status == StatusCode::OK).then(|| reply.body["qr"].as_str().expect("qr").to_owned())
    })
    .await;
    let image = |query: &'static str, token: String| {
        let request = app.client.get(app.url(&format!("/api/channels/{channel_id}/whatsapp/qr.svg{query}"))).bearer_auth(token);
        async move { request.send().await.expect("request") }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for (query, content_type, name) in [("", "image/svg+xml", "qr.svg"), ("?format=png", "image/png", "qr.png")] {
        let reply = image(query, owner.access_token.clone()).await;
        assert_eq!(reply.status(), StatusCode::OK, "{query}");
        assert_eq!(reply.headers()["content-type"], content_type);
        assert_eq!(reply.headers()["cache-control"], "no-store");
        let path = dir.path().join(name);
        std::fs::write(&path, reply.bytes().await.expect("body")).expect("write");
        files.push(path);
    }
    let decoded = std::process::Command::new("node")
        .arg(omnichat_tests::js_script("qr-decode.mjs", "jsqr"))
        .args(&files)
        .output()
        .expect("node runs");
    assert!(decoded.status.success(), "qr-decode: {}", String::from_utf8_lossy(&decoded.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&decoded.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["text"], qr.as_str(), "{line}");
        assert!(line["width"].as_u64().is_some_and(|w| w >= 256), "{line}");
    }

    let stranger = app.register("stranger@qr-image.test").await;
    assert_eq!(image("", stranger.access_token.clone()).await.status(), StatusCode::NOT_FOUND);
    let gif = app.get(&format!("/api/channels/{channel_id}/whatsapp/qr.svg?format=gif"), &owner.access_token).await;
    assert_eq!(gif.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", gif.body);
    script.pair().await;
    wait_status(&app, &owner, &channel_id, "CONNECTED").await;
    let paired = app.get(&format!("/api/channels/{channel_id}/whatsapp/qr.svg"), &owner.access_token).await;
    assert_eq!((paired.status, paired.error_code()), (StatusCode::NOT_FOUND, "no_qr_code"));
}
