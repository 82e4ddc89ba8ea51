//! WhatsApp messages (whatsapp-rust's protobuf `wa::Message` and its `MessageInfo`) to the seed's
//! inbound payload. Customers are keyed by phone JID: a sender that WhatsApp addresses by `@lid`
//! maps to the same customer as its phone JID when the phone is known (`sender_alt`), so the
//! switch to LIDs does not split a contact in two.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use uuid::Uuid;
use wacore::proto_helpers::MessageExt;
use wacore::types::message::MessageInfo;
use waproto::whatsapp as wa;
use whatsapp_rust::wacore_binary::{Jid, JidExt};

use crate::store::{MessageDirection, NewInboundMessage};

/// A new message of the account, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatsAppMessage {
    pub id: String,
    /// The chat: the group JID, or the other person's JID (phone form when known).
    pub chat: String,
    /// The customer: the author (phone form when known), or the other person for own messages.
    pub customer: String,
    pub push_name: Option<String>,
    /// Sent by the business from its own phone (or another linked device).
    pub from_me: bool,
    pub is_group: bool,
    pub text: Option<String>,
    pub attachments: Vec<Value>,
    pub sent_at: chrono::DateTime<chrono::Utc>,
}

impl WhatsAppMessage {
    /// Message ids are unique per chat (not across chats), so the chat is part of the key.
    pub fn provider_message_id(&self) -> String {
        format!("{}:{}", self.chat, self.id)
    }

    pub fn to_payload(&self, tenant_id: Uuid, channel_id: Uuid) -> NewInboundMessage {
        NewInboundMessage {
            tenant_id,
            channel_instance_id: channel_id,
            external_user_id: self.customer.clone(),
            external_conversation_id: Some(self.chat.clone()),
            provider_message_id: Some(self.provider_message_id()),
            sender_name: if self.from_me { None } else { self.push_name.clone() },
            sender_username: None,
            text: self.text.clone(),
            attachments: Value::Array(self.attachments.clone()),
            raw: json!({
                "channelType": "whatsapp",
                "id": self.id,
                "chat": self.chat,
                "fromMe": self.from_me,
                "isGroup": self.is_group,
                "pushName": self.push_name,
            }),
            sent_at: Some(self.sent_at),
            direction: if self.from_me { MessageDirection::Outbound } else { MessageDirection::Inbound },
        }
    }
}

/// The phone form of a JID when `alt` carries it; without the device part either way.
fn phone_form(jid: &Jid, alt: Option<&Jid>) -> String {
    match alt {
        Some(alt) if jid.is_lid() && alt.is_pn() => alt.to_non_ad_string(),
        _ => jid.to_non_ad_string(),
    }
}

/// Maps one message; protocol messages, reactions, status updates and empty messages are not
/// customer messages.
pub fn map_message(message: &wa::Message, info: &MessageInfo) -> Option<WhatsAppMessage> {
    let source = &info.source;
    if source.chat.is_status_broadcast() || source.chat.is_newsletter() {
        return None;
    }
    let base = message.get_base_message();
    let text = base.text_content().or_else(|| base.get_caption()).map(str::to_owned).filter(|t| !t.is_empty());
    let attachments: Vec<Value> = attachment(base).into_iter().collect();
    if text.is_none() && attachments.is_empty() {
        return None;
    }
    let is_group = source.chat.is_group();
    let (chat, customer) = if is_group {
        let author = if source.is_from_me {
            source.chat.to_non_ad_string()
        } else {
            phone_form(&source.sender, source.sender_alt.as_ref())
        };
        (source.chat.to_non_ad_string(), author)
    } else {
        // The other person: for own messages the alt is the recipient's, else the sender's.
        let alt = if source.is_from_me { source.recipient_alt.as_ref() } else { source.sender_alt.as_ref() };
        let peer = phone_form(&source.chat, alt);
        (peer.clone(), peer)
    };
    Some(WhatsAppMessage {
        id: info.id.clone(),
        chat,
        customer,
        push_name: Some(info.push_name.clone()).filter(|n| !n.is_empty()),
        from_me: source.is_from_me,
        is_group,
        text,
        attachments,
        sent_at: info.timestamp,
    })
}

fn b64(bytes: &Option<Vec<u8>>) -> Value {
    bytes.as_ref().map(|b| Value::String(STANDARD.encode(b))).unwrap_or(Value::Null)
}

/// What `GET /api/messages/:id/media` needs to download the media later.
fn media(
    kind: &str,
    media_type: &str,
    mime: &Option<String>,
    file_name: Option<&String>,
    size: Option<u64>,
    extra: Value,
) -> Value {
    json!({ "kind": kind, "url": null, "mimeType": mime, "fileName": file_name, "size": size,
            "extra": { "mediaType": media_type, "download": extra } })
}

/// What a download needs; every media message type has these fields by the same names.
macro_rules! download_keys {
    ($m:expr) => {
        json!({ "directPath": $m.direct_path, "mediaKey": b64(&$m.media_key), "fileSha256": b64(&$m.file_sha256),
                "fileEncSha256": b64(&$m.file_enc_sha256), "fileLength": $m.file_length })
    };
}

fn attachment(m: &wa::Message) -> Option<Value> {
    if let Some(image) = m.image_message.as_option() {
        return Some(media("image", "image", &image.mimetype, None, image.file_length, download_keys!(image)));
    }
    if let Some(video) = m.video_message.as_option().or(m.ptv_message.as_option()) {
        return Some(media("video", "video", &video.mimetype, None, video.file_length, download_keys!(video)));
    }
    if let Some(audio) = m.audio_message.as_option() {
        let kind = if audio.ptt == Some(true) { "voice" } else { "audio" };
        return Some(media(kind, "audio", &audio.mimetype, None, audio.file_length, download_keys!(audio)));
    }
    if let Some(doc) = m.document_message.as_option() {
        return Some(media(
            "document",
            "document",
            &doc.mimetype,
            doc.file_name.as_ref().or(doc.title.as_ref()),
            doc.file_length,
            download_keys!(doc),
        ));
    }
    if let Some(sticker) = m.sticker_message.as_option() {
        return Some(media("sticker", "sticker", &sticker.mimetype, None, sticker.file_length, download_keys!(sticker)));
    }
    if let Some(location) = m.location_message.as_option() {
        return Some(json!({ "kind": "location", "url": location.url, "mimeType": null, "fileName": null, "size": null,
            "extra": { "latitude": location.degrees_latitude, "longitude": location.degrees_longitude,
                       "name": location.name, "address": location.address } }));
    }
    if let Some(location) = m.live_location_message.as_option() {
        return Some(json!({ "kind": "location", "url": null, "mimeType": null, "fileName": null, "size": null,
            "extra": { "latitude": location.degrees_latitude, "longitude": location.degrees_longitude, "live": true } }));
    }
    if let Some(contact) = m.contact_message.as_option() {
        return Some(json!({ "kind": "contact", "url": null, "mimeType": "text/vcard", "fileName": null, "size": null,
            "extra": { "displayName": contact.display_name, "vcard": contact.vcard } }));
    }
    None
}

#[cfg(test)]
mod tests {
    use wacore::types::message::MessageSource;
    use waproto::buffa::MessageField;

    use super::*;

    fn jid(s: &str) -> Jid {
        s.parse().expect("jid")
    }

    fn info(chat: &str, sender: &str) -> MessageInfo {
        MessageInfo {
            id: "3EB0ABCDEF".into(),
            push_name: "Ada".into(),
            source: MessageSource { chat: jid(chat), sender: jid(sender), ..Default::default() },
            ..Default::default()
        }
    }

    fn text(t: &str) -> wa::Message {
        wa::Message { conversation: Some(t.into()), ..Default::default() }
    }

    #[test]
    fn a_text_message_maps_customer_chat_name_and_id() {
        let m =
            map_message(&text("hello"), &info("4915112345678@s.whatsapp.net", "4915112345678@s.whatsapp.net")).expect("mapped");
        assert_eq!((m.chat.as_str(), m.customer.as_str()), ("4915112345678@s.whatsapp.net", "4915112345678@s.whatsapp.net"));
        assert_eq!(m.text.as_deref(), Some("hello"));
        assert_eq!(m.push_name.as_deref(), Some("Ada"));
        assert_eq!(m.id, "3EB0ABCDEF");
        let payload = m.to_payload(Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(payload.direction, MessageDirection::Inbound);
        assert_eq!(payload.provider_message_id.as_deref(), Some("4915112345678@s.whatsapp.net:3EB0ABCDEF"));
        assert_eq!(payload.sender_name.as_deref(), Some("Ada"));
    }

    #[test]
    fn extended_text_is_text() {
        let message = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("see https://example.com".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = map_message(&message, &info("1555@s.whatsapp.net", "1555@s.whatsapp.net")).expect("mapped");
        assert_eq!(m.text.as_deref(), Some("see https://example.com"));
    }

    #[test]
    fn an_image_with_caption_keeps_what_a_download_needs() {
        let message = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: Some("the receipt".into()),
                mimetype: Some("image/jpeg".into()),
                direct_path: Some("/v/t62/abc".into()),
                media_key: Some(vec![1; 32]),
                file_sha256: Some(vec![2; 32]),
                file_enc_sha256: Some(vec![3; 32]),
                file_length: Some(1234),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = map_message(&message, &info("1555@s.whatsapp.net", "1555@s.whatsapp.net")).expect("mapped");
        assert_eq!(m.text.as_deref(), Some("the receipt"));
        let image = &m.attachments[0];
        assert_eq!(
            (image["kind"].as_str(), image["mimeType"].as_str(), image["size"].as_u64()),
            (Some("image"), Some("image/jpeg"), Some(1234))
        );
        let download = &image["extra"]["download"];
        assert_eq!(download["directPath"], "/v/t62/abc");
        assert_eq!(download["mediaKey"], STANDARD.encode([1u8; 32]));
        assert_eq!(download["fileEncSha256"], STANDARD.encode([3u8; 32]));
        assert_eq!(image["extra"]["mediaType"], "image");
    }

    #[test]
    fn a_document_keeps_its_file_name_and_a_voice_note_is_voice() {
        let message = wa::Message {
            document_message: MessageField::some(wa::message::DocumentMessage {
                file_name: Some("invoice.pdf".into()),
                mimetype: Some("application/pdf".into()),
                file_length: Some(99),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = map_message(&message, &info("1555@s.whatsapp.net", "1555@s.whatsapp.net")).expect("mapped");
        assert_eq!(m.attachments[0]["kind"], "document");
        assert_eq!(m.attachments[0]["fileName"], "invoice.pdf");
        let voice = wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage { ptt: Some(true), ..Default::default() }),
            ..Default::default()
        };
        let m = map_message(&voice, &info("1555@s.whatsapp.net", "1555@s.whatsapp.net")).expect("mapped");
        assert_eq!(m.attachments[0]["kind"], "voice");
    }

    #[test]
    fn a_location_maps_coordinates() {
        let message = wa::Message {
            location_message: MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(52.52),
                degrees_longitude: Some(13.405),
                name: Some("Office".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = map_message(&message, &info("1555@s.whatsapp.net", "1555@s.whatsapp.net")).expect("mapped");
        assert_eq!(m.attachments[0]["kind"], "location");
        assert_eq!(m.attachments[0]["extra"]["latitude"], 52.52);
        assert_eq!(m.attachments[0]["extra"]["name"], "Office");
    }

    #[test]
    fn a_lid_sender_with_its_phone_in_sender_alt_is_the_phone_customer() {
        let mut lid = info("123456789012345@lid", "123456789012345@lid");
        lid.source.sender_alt = Some(jid("4915112345678@s.whatsapp.net"));
        let by_lid = map_message(&text("hi"), &lid).expect("mapped");
        let by_phone =
            map_message(&text("hi"), &info("4915112345678@s.whatsapp.net", "4915112345678@s.whatsapp.net")).expect("mapped");
        assert_eq!(by_lid.customer, by_phone.customer);
        assert_eq!(by_lid.chat, by_phone.chat);
        assert_eq!(by_lid.customer, "4915112345678@s.whatsapp.net");
        // Without the phone, the LID is all there is.
        let bare = map_message(&text("hi"), &info("123456789012345@lid", "123456789012345@lid")).expect("mapped");
        assert_eq!(bare.customer, "123456789012345@lid");
    }

    #[test]
    fn a_group_message_has_the_group_as_conversation_and_the_participant_as_customer() {
        let mut group = info("120363025246125486@g.us", "4915100000001:3@s.whatsapp.net");
        group.source.is_group = true;
        let m = map_message(&text("hi all"), &group).expect("mapped");
        assert!(m.is_group);
        assert_eq!(m.chat, "120363025246125486@g.us");
        assert_eq!(m.customer, "4915100000001@s.whatsapp.net");
    }

    #[test]
    fn what_the_business_sent_from_its_phone_is_outbound_in_the_customers_thread() {
        let mut own = info("4915112345678@s.whatsapp.net", "4917600000000:1@s.whatsapp.net");
        own.source.is_from_me = true;
        let m = map_message(&text("on my way"), &own).expect("mapped");
        assert!(m.from_me);
        assert_eq!(m.customer, "4915112345678@s.whatsapp.net");
        let payload = m.to_payload(Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(payload.direction, MessageDirection::Outbound);
        assert_eq!(payload.sender_name, None, "the business's own name is not the customer's");
    }

    #[test]
    fn reactions_status_updates_and_empty_messages_are_skipped() {
        let reaction = wa::Message {
            reaction_message: MessageField::some(wa::message::ReactionMessage {
                text: Some("👍".into()), ..Default::default()
            }),
            ..Default::default()
        };
        assert!(map_message(&reaction, &info("1555@s.whatsapp.net", "1555@s.whatsapp.net")).is_none());
        assert!(map_message(&text("story"), &info("status@broadcast", "1555@s.whatsapp.net")).is_none());
        assert!(map_message(&wa::Message::default(), &info("1555@s.whatsapp.net", "1555@s.whatsapp.net")).is_none());
    }
}
