//! MTProto messages (grammers' `tl` values) to the seed's inbound payload. Pure functions: the
//! listener passes the sender's and chat's names it found in the update's peer map.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use grammers_session::types::PeerId;
use grammers_tl_types as tl;
use serde_json::{Value, json};

use uuid::Uuid;

use crate::store::{MessageDirection, NewInboundMessage};

/// Names the update's peer map gave for the sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderInfo {
    pub name: Option<String>,
    pub username: Option<String>,
}

/// A new message of the account, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramMessage {
    pub message_id: i32,
    /// The chat (Bot API style dialog id: users positive, groups and channels negative).
    pub chat_id: i64,
    /// Who wrote it: a user id, or the chat itself for channel posts.
    pub sender_id: i64,
    pub sender: SenderInfo,
    /// The chat's title (the other person's name in a private chat).
    pub chat_title: Option<String>,
    /// Written by the account itself, from one of its own apps.
    pub outgoing: bool,
    pub text: Option<String>,
    pub attachments: Vec<Value>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl TelegramMessage {
    /// Message ids are only unique within a chat for channels, so the chat is part of the key.
    pub fn provider_message_id(&self) -> String {
        provider_message_id(self.chat_id, self.message_id)
    }

    pub fn is_private(&self) -> bool {
        self.chat_id > 0
    }

    /// The seed's payload (`channelType: telegram-user`). What the account wrote from its own
    /// apps is OUTBOUND, filed under the chat so the inbox shows the whole thread.
    pub fn to_payload(&self, tenant_id: Uuid, channel_id: Uuid) -> NewInboundMessage {
        let (external_user_id, sender_name, sender_username, direction) = if self.outgoing {
            let partner_name = self.chat_title.clone().filter(|_| self.is_private());
            (self.chat_id.to_string(), partner_name, None, MessageDirection::Outbound)
        } else {
            (self.sender_id.to_string(), self.sender.name.clone(), self.sender.username.clone(), MessageDirection::Inbound)
        };
        NewInboundMessage {
            tenant_id,
            channel_instance_id: channel_id,
            external_user_id,
            external_conversation_id: Some(self.chat_id.to_string()),
            provider_message_id: Some(self.provider_message_id()),
            sender_name,
            sender_username,
            text: self.text.clone(),
            attachments: Value::Array(self.attachments.clone()),
            raw: json!({
                "channelType": "telegram-user",
                "messageId": self.message_id,
                "chatId": self.chat_id,
                "senderId": self.sender_id,
                "chatTitle": self.chat_title,
                "outgoing": self.outgoing,
            }),
            sent_at: self.sent_at,
            direction,
        }
    }
}

pub fn provider_message_id(chat_id: i64, message_id: i32) -> String {
    format!("{chat_id}:{message_id}")
}

/// Maps a new message; service messages (joins, pins) and empty ones are not customer messages.
pub fn map_message(raw: &tl::enums::Message, sender: Option<SenderInfo>, chat_title: Option<String>) -> Option<TelegramMessage> {
    let tl::enums::Message::Message(message) = raw else { return None };
    let chat = PeerId::from(&message.peer_id);
    let chat_id = chat.bot_api_dialog_id()?;
    let sender_id = match &message.from_id {
        Some(from) => PeerId::from(from).bot_api_dialog_id()?,
        // Private chats carry no from_id: the sender is the chat (or the account, when outgoing).
        None => chat_id,
    };
    let text = Some(message.message.clone()).filter(|t| !t.is_empty());
    let attachments: Vec<Value> = message.media.as_ref().and_then(attachment).into_iter().collect();
    if text.is_none() && attachments.is_empty() {
        return None;
    }
    Some(TelegramMessage {
        message_id: message.id,
        chat_id,
        sender_id,
        sender: sender.unwrap_or_default(),
        chat_title,
        outgoing: message.out,
        text,
        attachments,
        sent_at: DateTime::from_timestamp(i64::from(message.date), 0),
    })
}

/// The names an update carries for its users and chats, by dialog id.
pub fn peer_names(users: &[tl::enums::User], chats: &[tl::enums::Chat]) -> HashMap<i64, SenderInfo> {
    let users = users.iter().filter_map(|user| match user {
        tl::enums::User::User(u) => {
            let name = [u.first_name.as_deref(), u.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
            Some((u.id, SenderInfo { name: Some(name).filter(|n| !n.is_empty()), username: u.username.clone() }))
        }
        tl::enums::User::Empty(_) => None,
    });
    let chats = chats.iter().filter_map(|chat| match chat {
        tl::enums::Chat::Chat(c) => {
            Some((PeerId::chat_unchecked(c.id), SenderInfo { name: Some(c.title.clone()), username: None }))
        }
        tl::enums::Chat::Channel(c) => {
            Some((PeerId::channel_unchecked(c.id), SenderInfo { name: Some(c.title.clone()), username: c.username.clone() }))
        }
        _ => None,
    });
    users
        .map(|(id, info)| (PeerId::user_unchecked(id), info))
        .chain(chats)
        .filter_map(|(peer, info)| Some((peer.bot_api_dialog_id()?, info)))
        .collect()
}

/// [`map_message`] with the sender's and chat's names looked up in an update's peers.
pub fn map_with_names(raw: &tl::enums::Message, names: &HashMap<i64, SenderInfo>) -> Option<TelegramMessage> {
    let mut mapped = map_message(raw, None, None)?;
    mapped.sender = names.get(&mapped.sender_id).cloned().unwrap_or_default();
    mapped.chat_title = names.get(&mapped.chat_id).and_then(|info| info.name.clone());
    Some(mapped)
}

/// The media of a message as one attachment, with the identifiers needed to download it later
/// (id, access hash, file reference, DC).
fn attachment(media: &tl::enums::MessageMedia) -> Option<Value> {
    use tl::enums::MessageMedia as M;
    match media {
        M::Photo(photo) => match &photo.photo {
            Some(tl::enums::Photo::Photo(p)) => Some(json!({
                "kind": "image",
                "url": null,
                "mimeType": "image/jpeg",
                "fileName": null,
                "size": largest_photo_size(p),
                "extra": { "photoId": p.id.to_string(), "accessHash": p.access_hash.to_string(),
                           "fileReference": STANDARD.encode(&p.file_reference), "dcId": p.dc_id,
                           "thumbSize": largest_photo_type(p) },
            })),
            _ => None,
        },
        M::Document(doc) => match &doc.document {
            Some(tl::enums::Document::Document(d)) => Some(document(d, doc.voice, doc.round)),
            _ => None,
        },
        M::Geo(geo) => point(&geo.geo).map(|(lat, long)| location(lat, long, json!({}))),
        M::GeoLive(geo) => point(&geo.geo).map(|(lat, long)| location(lat, long, json!({ "live": true }))),
        M::Venue(venue) => {
            point(&venue.geo).map(|(lat, long)| location(lat, long, json!({ "title": venue.title, "address": venue.address })))
        }
        M::Contact(contact) => Some(json!({
            "kind": "contact", "url": null, "mimeType": null, "fileName": null, "size": null,
            "extra": { "phoneNumber": contact.phone_number, "firstName": contact.first_name,
                       "lastName": contact.last_name, "userId": contact.user_id, "vcard": contact.vcard },
        })),
        // Web page previews belong to the text; anything else is kept as "other".
        M::WebPage(_) | M::Empty => None,
        other => Some(json!({
            "kind": "other", "url": null, "mimeType": null, "fileName": null, "size": null,
            "extra": { "type": media_type_name(other) },
        })),
    }
}

fn document(d: &tl::types::Document, voice: bool, round: bool) -> Value {
    use tl::enums::DocumentAttribute as A;
    let mut kind = "document";
    let mut file_name = None;
    let mut extra = json!({ "documentId": d.id.to_string(), "accessHash": d.access_hash.to_string(),
        "fileReference": STANDARD.encode(&d.file_reference), "dcId": d.dc_id });
    for attribute in &d.attributes {
        match attribute {
            A::Filename(f) => file_name = Some(f.file_name.clone()),
            A::Audio(a) => {
                kind = if a.voice || voice { "voice" } else { "audio" };
                extra["duration"] = json!(a.duration);
                if let Some(title) = &a.title {
                    extra["title"] = json!(title);
                }
            }
            A::Video(v) if kind == "document" => {
                kind = "video";
                extra["duration"] = json!(v.duration);
                extra["width"] = json!(v.w);
                extra["height"] = json!(v.h);
                if v.round_message || round {
                    extra["round"] = json!(true);
                }
            }
            A::Sticker(s) => {
                kind = "sticker";
                extra["emoji"] = json!(s.alt);
            }
            A::Animated => extra["animated"] = json!(true),
            _ => {}
        }
    }
    json!({ "kind": kind, "url": null, "mimeType": d.mime_type, "fileName": file_name, "size": d.size, "extra": extra })
}

fn location(latitude: f64, longitude: f64, mut extra: Value) -> Value {
    extra["latitude"] = json!(latitude);
    extra["longitude"] = json!(longitude);
    json!({ "kind": "location", "url": null, "mimeType": null, "fileName": null, "size": null, "extra": extra })
}

fn point(geo: &tl::enums::GeoPoint) -> Option<(f64, f64)> {
    match geo {
        tl::enums::GeoPoint::Point(p) => Some((p.lat, p.long)),
        tl::enums::GeoPoint::Empty => None,
    }
}

/// The type letter of the photo's largest size (what a download of it asks for).
fn largest_photo_type(photo: &tl::types::Photo) -> Option<String> {
    photo
        .sizes
        .iter()
        .filter_map(|size| match size {
            tl::enums::PhotoSize::Size(s) => Some((i64::from(s.size), s.r#type.clone())),
            tl::enums::PhotoSize::Progressive(s) => s.sizes.iter().max().map(|n| (i64::from(*n), s.r#type.clone())),
            _ => None,
        })
        .max_by_key(|(size, _)| *size)
        .map(|(_, kind)| kind)
}

fn largest_photo_size(photo: &tl::types::Photo) -> Option<i64> {
    photo
        .sizes
        .iter()
        .filter_map(|size| match size {
            tl::enums::PhotoSize::Size(s) => Some(i64::from(s.size)),
            tl::enums::PhotoSize::Progressive(s) => s.sizes.iter().max().map(|n| i64::from(*n)),
            _ => None,
        })
        .max()
}

fn media_type_name(media: &tl::enums::MessageMedia) -> String {
    let debug = format!("{media:?}");
    debug.split(['(', ' ', '{']).next().unwrap_or("unknown").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_user(id: i64) -> tl::enums::Peer {
        tl::types::PeerUser { user_id: id }.into()
    }

    fn message(id: i32, peer: tl::enums::Peer, from: Option<tl::enums::Peer>, text: &str) -> tl::types::Message {
        tl::types::Message {
            out: false,
            mentioned: false,
            media_unread: false,
            silent: false,
            post: false,
            from_scheduled: false,
            legacy: false,
            edit_hide: false,
            pinned: false,
            noforwards: false,
            invert_media: false,
            offline: false,
            video_processing_pending: false,
            paid_suggested_post_stars: false,
            paid_suggested_post_ton: false,
            id,
            from_id: from,
            from_boosts_applied: None,
            from_rank: None,
            peer_id: peer,
            saved_peer_id: None,
            fwd_from: None,
            via_bot_id: None,
            via_business_bot_id: None,
            guestchat_via_from: None,
            reply_to: None,
            date: 1_767_225_600,
            message: text.into(),
            media: None,
            reply_markup: None,
            entities: None,
            views: None,
            forwards: None,
            replies: None,
            edit_date: None,
            post_author: None,
            grouped_id: None,
            reactions: None,
            restriction_reason: None,
            ttl_period: None,
            quick_reply_shortcut_id: None,
            effect: None,
            factcheck: None,
            report_delivery_until_date: None,
            paid_message_stars: None,
            suggested_post: None,
            schedule_repeat_period: None,
            summary_from_language: None,
            rich_message: None,
        }
    }

    fn map(m: tl::types::Message) -> Option<TelegramMessage> {
        let sender = SenderInfo { name: Some("Ada Lovelace".into()), username: Some("ada".into()) };
        map_message(&tl::enums::Message::Message(m), Some(sender), Some("Chat".into()))
    }

    fn document(attributes: Vec<tl::enums::DocumentAttribute>, mime: &str) -> tl::enums::MessageMedia {
        tl::types::MessageMediaDocument {
            nopremium: false,
            spoiler: false,
            video: false,
            round: false,
            voice: false,
            document: Some(
                tl::types::Document {
                    id: 77,
                    access_hash: -5,
                    file_reference: vec![1, 2, 3],
                    date: 0,
                    mime_type: mime.into(),
                    size: 2048,
                    thumbs: None,
                    video_thumbs: None,
                    dc_id: 4,
                    attributes,
                }
                .into(),
            ),
            alt_documents: None,
            video_cover: None,
            video_timestamp: None,
            ttl_seconds: None,
        }
        .into()
    }

    #[test]
    fn a_private_text_message_maps_sender_chat_and_dedupe_key() {
        let mapped = map(message(42, peer_user(1001), None, "hello")).expect("mapped");
        assert_eq!((mapped.chat_id, mapped.sender_id, mapped.message_id), (1001, 1001, 42));
        assert_eq!(mapped.text.as_deref(), Some("hello"));
        assert_eq!(mapped.provider_message_id(), "1001:42");
        assert!(!mapped.outgoing);
        assert_eq!(mapped.sender.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(mapped.sent_at.map(|t| t.timestamp()), Some(1_767_225_600));
    }

    #[test]
    fn a_photo_with_caption_keeps_caption_and_photo_identifiers() {
        let mut m = message(7, peer_user(5), None, "look");
        m.media = Some(
            tl::types::MessageMediaPhoto {
                spoiler: false,
                live_photo: false,
                photo: Some(
                    tl::types::Photo {
                        has_stickers: false,
                        id: 123,
                        access_hash: 456,
                        file_reference: vec![9],
                        date: 0,
                        sizes: vec![
                            tl::types::PhotoSize { r#type: "m".into(), w: 320, h: 320, size: 1000 }.into(),
                            tl::types::PhotoSize { r#type: "y".into(), w: 1280, h: 1280, size: 9000 }.into(),
                        ],
                        video_sizes: None,
                        dc_id: 2,
                    }
                    .into(),
                ),
                ttl_seconds: None,
                video: None,
            }
            .into(),
        );
        let mapped = map(m).expect("mapped");
        assert_eq!(mapped.text.as_deref(), Some("look"));
        let photo = &mapped.attachments[0];
        assert_eq!(photo["kind"], "image");
        assert_eq!(photo["size"], 9000);
        assert_eq!(photo["extra"]["photoId"], "123");
        assert_eq!(photo["extra"]["accessHash"], "456");
        assert_eq!(photo["extra"]["dcId"], 2);
    }

    #[test]
    fn documents_keep_mime_and_file_name_and_voice_video_sticker_are_told_apart() {
        let mut m = message(8, peer_user(5), None, "");
        m.media = Some(document(
            vec![tl::types::DocumentAttributeFilename { file_name: "invoice.pdf".into() }.into()],
            "application/pdf",
        ));
        let doc = &map(m).expect("mapped").attachments[0];
        assert_eq!(
            (doc["kind"].as_str(), doc["mimeType"].as_str(), doc["fileName"].as_str()),
            (Some("document"), Some("application/pdf"), Some("invoice.pdf"))
        );
        assert_eq!(doc["size"], 2048);
        assert_eq!(doc["extra"]["documentId"], "77");

        let voice = tl::types::DocumentAttributeAudio { voice: true, duration: 3, title: None, performer: None, waveform: None };
        let mut m = message(9, peer_user(5), None, "");
        m.media = Some(document(vec![voice.into()], "audio/ogg"));
        assert_eq!(map(m).expect("mapped").attachments[0]["kind"], "voice");

        let video = tl::types::DocumentAttributeVideo {
            round_message: false,
            supports_streaming: true,
            nosound: false,
            duration: 4.5,
            w: 640,
            h: 480,
            preload_prefix_size: None,
            video_start_ts: None,
            video_codec: None,
        };
        let mut m = message(10, peer_user(5), None, "");
        m.media = Some(document(vec![video.into()], "video/mp4"));
        let video = &map(m).expect("mapped").attachments[0];
        assert_eq!((video["kind"].as_str(), video["extra"]["width"].as_i64()), (Some("video"), Some(640)));
    }

    #[test]
    fn a_location_maps_coordinates() {
        let mut m = message(11, peer_user(5), None, "");
        m.media = Some(
            tl::types::MessageMediaGeo {
                geo: tl::types::GeoPoint { long: 13.405, lat: 52.52, access_hash: 0, accuracy_radius: None }.into(),
            }
            .into(),
        );
        let location = &map(m).expect("mapped").attachments[0];
        assert_eq!(location["kind"], "location");
        assert_eq!(location["extra"]["latitude"], 52.52);
        assert_eq!(location["extra"]["longitude"], 13.405);
    }

    #[test]
    fn a_group_message_files_the_group_as_conversation_and_the_member_as_customer() {
        let group: tl::enums::Peer = tl::types::PeerChannel { channel_id: 555 }.into();
        let mapped = map(message(3, group, Some(peer_user(1001)), "hi all")).expect("mapped");
        assert_eq!(mapped.chat_id, -1_000_000_000_555);
        assert_eq!(mapped.sender_id, 1001);
        assert_eq!(mapped.provider_message_id(), "-1000000000555:3");
        let basic: tl::enums::Peer = tl::types::PeerChat { chat_id: 77 }.into();
        assert_eq!(map(message(4, basic, Some(peer_user(2)), "x")).expect("mapped").chat_id, -77);
    }

    #[test]
    fn what_the_account_wrote_itself_is_outbound_in_the_partners_thread() {
        let mut m = message(12, peer_user(1001), None, "sent from my phone");
        m.out = true;
        let mapped = map(m).expect("mapped");
        assert!(mapped.outgoing);
        let payload = mapped.to_payload(Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(payload.direction, MessageDirection::Outbound);
        assert_eq!(payload.external_user_id, "1001");
        assert_eq!(payload.external_conversation_id.as_deref(), Some("1001"));
        assert_eq!(payload.sender_name.as_deref(), Some("Chat"));
    }

    #[test]
    fn service_and_empty_messages_are_not_customer_messages() {
        assert!(map(message(1, peer_user(5), None, "")).is_none());
        let empty = tl::enums::Message::Empty(tl::types::MessageEmpty { id: 1, peer_id: None });
        assert!(map_message(&empty, None, None).is_none());
    }

    #[test]
    fn an_inbound_payload_carries_the_seed_fields() {
        let mapped = map(message(42, peer_user(1001), None, "hello")).expect("mapped");
        let payload = mapped.to_payload(Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(payload.direction, MessageDirection::Inbound);
        assert_eq!(payload.external_user_id, "1001");
        assert_eq!(payload.provider_message_id.as_deref(), Some("1001:42"));
        assert_eq!(payload.sender_username.as_deref(), Some("ada"));
        assert_eq!(payload.raw["channelType"], "telegram-user");
    }
}
