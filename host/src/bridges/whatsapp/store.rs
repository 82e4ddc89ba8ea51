//! whatsapp-rust's storage `Backend` over the store: the device (identity, noise and signed
//! pre-keys; sealed with the secret key) in the session row, and every other piece of Signal and
//! app-state data as rows of the `whatsapp_keys` key-value table, Baileys-style, each value sealed
//! with the secret key and bound to its row (session, type, id). Modelled on
//! `wacore::store::InMemoryBackend` method by method, so a restart or another replica resumes the
//! session from the database with no new QR.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::{Result, StoreError};
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry, MsgSecretEntry, MsgSecretStore,
    PendingInboundKey, PendingInboundRow, ProtocolStore, SignalStore, TcTokenEntry, merge_msg_secret_expiry,
    merge_msg_secret_message_ts,
};
use whatsapp_rust::bytes::Bytes;

use crate::crypto::SecretBox;
use crate::store::Store;

/// Separates the parts of a composite key id (JIDs and message ids never contain it).
const SEP: char = '|';

// The key types of `whatsapp_keys`.
const IDENTITY: &str = "identity";
const SESSION: &str = "session";
const PREKEY: &str = "prekey";
const SIGNED_PREKEY: &str = "signed-prekey";
const SENDER_KEY: &str = "sender-key";
const SYNC_KEY: &str = "sync-key";
const SYNC_KEY_LATEST: &str = "sync-key-latest";
const APP_VERSION: &str = "app-state-version";
const MUTATION_MAC: &str = "app-state-mac";
const SENDER_KEY_DEVICE: &str = "sender-key-device";
const LID: &str = "lid";
const PN: &str = "pn";
const BASE_KEY: &str = "base-key";
const DEVICE_LIST: &str = "device-list";
const GROUP_METADATA: &str = "group-metadata";
const TC_TOKEN: &str = "tc-token";
const SENT_MESSAGE: &str = "sent-message";
const MSG_SECRET: &str = "msg-secret";
/// Decrypted inbound messages waiting for the durability hook's commit (stamped with their time).
const PENDING_INBOUND: &str = "pending-inbound";

pub struct DbBackend {
    store: Arc<dyn Store>,
    secrets: SecretBox,
    session_id: Uuid,
}

impl DbBackend {
    pub fn new(store: Arc<dyn Store>, secrets: SecretBox, session_id: Uuid) -> Self {
        Self { store, secrets, session_id }
    }

    /// The `whatsapp_sessions` row this backend stores into.
    pub fn session_id(&self) -> Uuid {
        self.session_id
    }

    /// What a row's value is bound to when sealed: the session, the key type and the key id.
    fn context(&self, kind: &str, id: &str) -> Vec<u8> {
        format!("{}{SEP}{kind}{SEP}{id}", self.session_id).into_bytes()
    }

    fn seal(&self, kind: &str, id: &str, value: &[u8]) -> Vec<u8> {
        self.secrets.seal_bytes(value, &self.context(kind, id))
    }

    /// A stored value opened. Rows written before key material was sealed are read as they are
    /// (and sealed when next written).
    fn open(&self, kind: &str, id: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        if !SecretBox::is_sealed_bytes(&value) {
            return Ok(value);
        }
        self.secrets.open_bytes(&value, &self.context(kind, id)).map_err(|e| StoreError::Serialization(Box::new(e)))
    }

    fn open_all(&self, kind: &str, rows: Vec<(String, Vec<u8>)>) -> Result<Vec<(String, Vec<u8>)>> {
        rows.into_iter().map(|(id, value)| Ok((id.clone(), self.open(kind, &id, value)?))).collect()
    }

    /// The rows of `ids` that exist, opened.
    async fn get_many(&self, kind: &str, ids: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
        let found = self.store.whatsapp_keys_get(self.session_id, kind, ids).await.map_err(db)?;
        self.open_all(kind, found)
    }

    async fn get(&self, kind: &str, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_many(kind, &[id.to_owned()]).await?.into_iter().next().map(|(_, value)| value))
    }

    async fn put(&self, kind: &str, id: &str, value: Vec<u8>) -> Result<()> {
        self.put_many(kind, vec![(id.to_owned(), value)]).await
    }

    /// Every value is sealed with `OMNICHAT_SECRET_KEY`, bound to its row.
    async fn put_many(&self, kind: &str, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let sealed: Vec<(String, Vec<u8>)> = entries
            .into_iter()
            .map(|(id, value)| {
                let value = self.seal(kind, &id, &value);
                (id, value)
            })
            .collect();
        self.store.whatsapp_keys_put(self.session_id, kind, &sealed).await.map_err(db)
    }

    async fn delete(&self, kind: &str, ids: Vec<String>) -> Result<u32> {
        let deleted = self.store.whatsapp_keys_delete(self.session_id, kind, &ids).await.map_err(db)?;
        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
    }

    async fn list(&self, kind: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let found = self.store.whatsapp_keys_list(self.session_id, kind, prefix).await.map_err(db)?;
        self.open_all(kind, found)
    }

    async fn get_json<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<Option<T>> {
        self.get(kind, id).await?.map(|bytes| from_json(&bytes)).transpose()
    }

    async fn put_json<T: Serialize>(&self, kind: &str, id: &str, value: &T) -> Result<()> {
        self.put(kind, id, to_json(value)?).await
    }
}

fn db(err: crate::store::StoreError) -> StoreError {
    StoreError::Database(Box::new(err))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Serialization(Box::new(e)))
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Serialization(Box::new(e)))
}

fn key(parts: &[&str]) -> String {
    parts.join(&SEP.to_string())
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A value with the time it was stored in front (8 bytes, big-endian seconds).
fn stamped(timestamp: i64, payload: &[u8]) -> Vec<u8> {
    let mut value = timestamp.to_be_bytes().to_vec();
    value.extend_from_slice(payload);
    value
}

fn unstamp(value: &[u8]) -> (i64, &[u8]) {
    match value.split_first_chunk::<8>() {
        Some((head, rest)) => (i64::from_be_bytes(*head), rest),
        None => (0, value),
    }
}

fn identity_key(bytes: &[u8]) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Validation(format!("identity key of {} bytes", bytes.len())))
}

#[async_trait]
impl SignalStore for DbBackend {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put(IDENTITY, address, key.to_vec()).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        self.put_many(IDENTITY, identities.iter().map(|(a, k)| (a.to_string(), k.to_vec())).collect()).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        self.get(IDENTITY, address).await?.map(|bytes| identity_key(&bytes)).transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete(IDENTITY, vec![address.to_owned()]).await.map(drop)
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self.get(SESSION, address).await?.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put(SESSION, address, session.to_vec()).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_many(SESSION, sessions.iter().map(|(a, s)| (a.to_string(), s.to_vec())).collect()).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete(SESSION, vec![address.to_owned()]).await.map(drop)
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        for kind in [SESSION, IDENTITY] {
            let rows = self.list(kind, user).await?;
            if rows.iter().any(|(address, _)| matches!(address.as_bytes().get(user.len()), Some(b'@' | b':'))) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], _uploaded: bool) -> Result<()> {
        self.put(PREKEY, &prekey_id(id), record.to_vec()).await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], _uploaded: bool) -> Result<()> {
        self.put_many(PREKEY, keys.iter().map(|(id, record)| (prekey_id(*id), record.to_vec())).collect()).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        Ok(self.get(PREKEY, &prekey_id(id)).await?.map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let keys: Vec<String> = ids.iter().map(|id| prekey_id(*id)).collect();
        let found = self.get_many(PREKEY, &keys).await?;
        Ok(found.into_iter().filter_map(|(id, record)| Some((id.parse().ok()?, Bytes::from(record)))).collect())
    }

    async fn mark_prekeys_uploaded(&self, _ids: &[u32]) -> Result<()> {
        // As the reference backend: the upload flag is not kept (the device tracks the watermark).
        Ok(())
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.delete(PREKEY, vec![prekey_id(id)]).await.map(drop)
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        // Ids are zero-padded, so the last in key order is the largest.
        Ok(self.list(PREKEY, "").await?.last().and_then(|(id, _)| id.parse().ok()).unwrap_or(0))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.put(SIGNED_PREKEY, &prekey_id(id), record.to_vec()).await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.get(SIGNED_PREKEY, &prekey_id(id)).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let all = self.list(SIGNED_PREKEY, "").await?;
        Ok(all.into_iter().filter_map(|(id, record)| Some((id.parse().ok()?, record))).collect())
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.delete(SIGNED_PREKEY, vec![prekey_id(id)]).await.map(drop)
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put(SENDER_KEY, address, record.to_vec()).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.put_many(SENDER_KEY, sender_keys.iter().map(|(a, r)| (a.to_string(), r.to_vec())).collect()).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.get(SENDER_KEY, address).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete(SENDER_KEY, vec![address.to_owned()]).await.map(drop)
    }
}

/// Pre-key ids zero-padded so that key order is numeric order.
fn prekey_id(id: u32) -> String {
    format!("{id:010}")
}

#[async_trait]
impl AppSyncStore for DbBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        self.get_json(SYNC_KEY, &hex::encode(key_id)).await
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.put_json(SYNC_KEY, &hex::encode(key_id), &key).await?;
        self.put(SYNC_KEY_LATEST, "", key_id.to_vec()).await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        Ok(self.get_json(APP_VERSION, name).await?.unwrap_or_default())
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.put_json(APP_VERSION, name, &state).await
    }

    async fn put_mutation_macs(&self, name: &str, _version: u64, mutations: &[AppStateMutationMAC]) -> Result<()> {
        let entries = mutations.iter().map(|m| (key(&[name, &hex::encode(&m.index_mac)]), m.value_mac.clone())).collect();
        self.put_many(MUTATION_MAC, entries).await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(MUTATION_MAC, &key(&[name, &hex::encode(index_mac)])).await
    }

    async fn get_mutation_macs(&self, name: &str, index_macs: &[[u8; 32]]) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        let ids: Vec<String> = index_macs.iter().map(|mac| key(&[name, &hex::encode(mac)])).collect();
        let found = self.get_many(MUTATION_MAC, &ids).await?;
        Ok(found
            .into_iter()
            .filter_map(|(id, value)| {
                let mac = hex::decode(id.rsplit(SEP).next()?).ok()?;
                Some((<[u8; 32]>::try_from(mac).ok()?, value))
            })
            .collect())
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let ids = index_macs.iter().map(|mac| key(&[name, &hex::encode(mac)])).collect();
        self.delete(MUTATION_MAC, ids).await.map(drop)
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        let ids = self.list(MUTATION_MAC, &format!("{name}{SEP}")).await?.into_iter().map(|(id, _)| id).collect();
        self.delete(MUTATION_MAC, ids).await.map(drop)
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.get(SYNC_KEY_LATEST, "").await
    }
}

#[async_trait]
impl ProtocolStore for DbBackend {
    // The pending-inbound buffer behind the inbound durability hook: a message is kept here until
    // the host has stored it, so a crash in between replays it on redelivery.
    async fn store_pending_inbound(&self, chat: &str, sender: &str, id: &str, message: &[u8]) -> Result<()> {
        self.put(PENDING_INBOUND, &key(&[chat, sender, id]), stamped(now_secs(), message)).await
    }

    async fn get_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(PENDING_INBOUND, &key(&[chat, sender, id])).await?.map(|value| unstamp(&value).1.to_vec()))
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete(PENDING_INBOUND, vec![key(&[chat, sender, id])]).await.map(drop)
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        let expired: Vec<String> = self
            .list(PENDING_INBOUND, "")
            .await?
            .into_iter()
            .filter(|(_, value)| unstamp(value).0 < cutoff_timestamp)
            .map(|(id, _)| id)
            .collect();
        if expired.is_empty() { Ok(0) } else { self.delete(PENDING_INBOUND, expired).await }
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let now = now_secs();
        let entries = rows.iter().map(|r| (key(&[r.chat, r.sender, r.id]), stamped(now, r.message))).collect();
        self.put_many(PENDING_INBOUND, entries).await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        let ids = keys.iter().map(|k| key(&[k.chat, k.sender, k.id])).collect();
        self.delete(PENDING_INBOUND, ids).await.map(drop)
    }

    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let prefix = format!("{group_jid}{SEP}");
        let rows = self.list(SENDER_KEY_DEVICE, &prefix).await?;
        Ok(rows.into_iter().map(|(id, value)| (id[prefix.len()..].to_owned(), value.first() == Some(&1))).collect())
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let rows = entries.iter().map(|(device, has)| (key(&[group_jid, device]), vec![u8::from(*has)])).collect();
        self.put_many(SENDER_KEY_DEVICE, rows).await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        let ids = self.list(SENDER_KEY_DEVICE, &format!("{group_jid}{SEP}")).await?.into_iter().map(|(id, _)| id).collect();
        self.delete(SENDER_KEY_DEVICE, ids).await.map(drop)
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        let ids = self
            .list(SENDER_KEY_DEVICE, "")
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| id.split_once(SEP).is_some_and(|(_, device)| device_jids.contains(&device)))
            .collect();
        self.delete(SENDER_KEY_DEVICE, ids).await.map(drop)
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        let ids = self.list(SENDER_KEY_DEVICE, "").await?.into_iter().map(|(id, _)| id).collect();
        self.delete(SENDER_KEY_DEVICE, ids).await.map(drop)
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.get_json(LID, lid).await
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        match self.get(PN, phone).await? {
            Some(lid) => self.get_lid_mapping(&String::from_utf8_lossy(&lid)).await,
            None => Ok(None),
        }
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        // A LID that moves to another phone number drops the old reverse entry.
        if let Some(previous) = self.get_lid_mapping(&entry.lid).await?
            && previous.phone_number != entry.phone_number
        {
            self.delete(PN, vec![previous.phone_number]).await?;
        }
        self.put(PN, &entry.phone_number, entry.lid.as_bytes().to_vec()).await?;
        self.put_json(LID, &entry.lid, entry).await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.list(LID, "").await?.iter().map(|(_, value)| from_json(value)).collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.put(BASE_KEY, &key(&[address, message_id]), base_key.to_vec()).await
    }

    async fn has_same_base_key(&self, address: &str, message_id: &str, current_base_key: &[u8]) -> Result<bool> {
        Ok(self.get(BASE_KEY, &key(&[address, message_id])).await?.is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.delete(BASE_KEY, vec![key(&[address, message_id])]).await.map(drop)
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.put_json(DEVICE_LIST, &record.user.clone(), &record).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.get_json(DEVICE_LIST, user).await
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.delete(DEVICE_LIST, vec![user.to_owned()]).await.map(drop)
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.get(GROUP_METADATA, group_jid).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.put(GROUP_METADATA, group_jid, blob.to_vec()).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete(GROUP_METADATA, vec![group_jid.to_owned()]).await.map(drop)
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.get_json(TC_TOKEN, jid).await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.put_json(TC_TOKEN, jid, entry).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.delete(TC_TOKEN, vec![jid.to_owned()]).await.map(drop)
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        Ok(self.list(TC_TOKEN, "").await?.into_iter().map(|(jid, _)| jid).collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let mut expired = Vec::new();
        for (jid, value) in self.list(TC_TOKEN, "").await? {
            let entry: TcTokenEntry = from_json(&value)?;
            let keep = (!entry.token.is_empty() && entry.token_timestamp >= token_cutoff)
                || entry.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
            if !keep {
                expired.push(jid);
            }
        }
        self.delete(TC_TOKEN, expired).await
    }

    async fn store_sent_message(&self, chat_jid: &str, message_id: &str, payload: &[u8]) -> Result<()> {
        self.put(SENT_MESSAGE, &key(&[chat_jid, message_id]), stamped(now_secs(), payload)).await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let id = key(&[chat_jid, message_id]);
        let Some(value) = self.get(SENT_MESSAGE, &id).await? else { return Ok(None) };
        self.delete(SENT_MESSAGE, vec![id]).await?;
        Ok(Some(unstamp(&value).1.to_vec()))
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        let expired = self
            .list(SENT_MESSAGE, "")
            .await?
            .into_iter()
            .filter(|(_, value)| unstamp(value).0 < cutoff_timestamp)
            .map(|(id, _)| id);
        self.delete(SENT_MESSAGE, expired.collect()).await
    }
}

#[async_trait]
impl MsgSecretStore for DbBackend {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let count = entries.len();
        let mut rows = Vec::with_capacity(count);
        for entry in entries {
            let id = key(&[&entry.chat, &entry.sender, &entry.msg_id]);
            let (mut expires_at, mut message_ts) = (entry.expires_at, entry.message_ts);
            if let Some(existing) = self.get(MSG_SECRET, &id).await?.as_deref().and_then(decode_secret) {
                expires_at = merge_msg_secret_expiry(existing.1, expires_at);
                message_ts = merge_msg_secret_message_ts(existing.2, message_ts);
            }
            let mut value = entry.secret.to_vec();
            value.extend_from_slice(&expires_at.to_be_bytes());
            value.extend_from_slice(&message_ts.to_be_bytes());
            rows.push((id, value));
        }
        self.put_many(MSG_SECRET, rows).await?;
        Ok(count)
    }

    async fn get_msg_secret(&self, chat: &str, sender: &str, msg_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_msg_secret_with_ts(chat, sender, msg_id).await?.map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(&self, chat: &str, sender: &str, msg_id: &str) -> Result<Option<(Vec<u8>, i64)>> {
        let value = self.get(MSG_SECRET, &key(&[chat, sender, msg_id])).await?;
        Ok(value.as_deref().and_then(decode_secret).map(|(secret, _, message_ts)| (secret.to_vec(), message_ts)))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        let expired = self
            .list(MSG_SECRET, "")
            .await?
            .into_iter()
            .filter(|(_, value)| {
                decode_secret(value).is_some_and(|(_, expires_at, _)| expires_at != 0 && expires_at <= cutoff_timestamp)
            })
            .map(|(id, _)| id);
        self.delete(MSG_SECRET, expired.collect()).await
    }
}

/// A stored message secret: 32 bytes of secret, then expiry and message time (big-endian).
fn decode_secret(value: &[u8]) -> Option<([u8; 32], i64, i64)> {
    let (secret, rest) = value.split_first_chunk::<32>()?;
    let (expires_at, rest) = rest.split_first_chunk::<8>()?;
    let (message_ts, _) = rest.split_first_chunk::<8>()?;
    Some((*secret, i64::from_be_bytes(*expires_at), i64::from_be_bytes(*message_ts)))
}

#[async_trait]
impl DeviceStore for DbBackend {
    async fn save(&self, device: &Device) -> Result<()> {
        let json = serde_json::to_string(device).map_err(|e| StoreError::Serialization(Box::new(e)))?;
        let sealed = self.secrets.seal(&json);
        self.store.save_whatsapp_device(self.session_id, Some(sealed.as_bytes())).await.map_err(db)
    }

    async fn load(&self) -> Result<Option<Device>> {
        let row = self.store.get_whatsapp_session(self.session_id).await.map_err(db)?;
        let Some(sealed) = row.and_then(|row| row.device) else { return Ok(None) };
        let sealed = String::from_utf8(sealed).map_err(|e| StoreError::Serialization(Box::new(e)))?;
        let json = self.secrets.open(&sealed).map_err(|e| StoreError::Serialization(Box::new(e)))?;
        serde_json::from_str(&json).map(Some).map_err(|e| StoreError::Serialization(Box::new(e)))
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.store.get_whatsapp_session(self.session_id).await.map_err(db)?.is_some_and(|row| row.device.is_some()))
    }

    async fn create(&self) -> Result<i32> {
        // One device per session row: a fresh one is generated and kept until it is paired.
        if !self.exists().await? {
            self.save(&Device::new()).await?;
        }
        Ok(1)
    }
}
