//! Enumerations stored as upper-case TEXT (with CHECK constraints) and spoken by the API as the
//! same names, so a value reads the same in SQL, JSON and Rust.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

/// An unknown value of a stored enumeration.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} value {value:?}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! db_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        impl<DB: Database> Type<DB> for $name where String: Type<DB> {
            fn type_info() -> DB::TypeInfo { <String as Type<DB>>::type_info() }
            fn compatible(ty: &DB::TypeInfo) -> bool { <String as Type<DB>>::compatible(ty) }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $name where &'static str: Encode<'q, DB> {
            fn encode_by_ref(&self, buf: &mut DB::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&'static str as Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $name where &'r str: Decode<'r, DB> {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<&'r str as Decode<'r, DB>>::decode(value)?.parse()?)
            }
        }
    };
}

db_enum!(
    /// A user's role inside its tenant.
    Role { Owner = "owner", Admin = "admin", Agent = "agent" }
);

db_enum!(
    /// Connection state of a channel instance.
    ChannelStatus { Disconnected = "DISCONNECTED", Connecting = "CONNECTING", Connected = "CONNECTED", Error = "ERROR" }
);

db_enum!(
    ConversationStatus { Open = "OPEN", Closed = "CLOSED", Snoozed = "SNOOZED" }
);

db_enum!(
    MessageDirection { Inbound = "INBOUND", Outbound = "OUTBOUND", System = "SYSTEM" }
);

db_enum!(
    /// Delivery state of a message: inbound ones are RECEIVED; outbound ones go PENDING -> SENT
    /// (-> DELIVERED -> READ where the provider reports it) or FAILED.
    MessageStatus {
        Received = "RECEIVED",
        Pending = "PENDING",
        Sent = "SENT",
        Delivered = "DELIVERED",
        Read = "READ",
        Failed = "FAILED",
    }
);

db_enum!(
    QueueStatus { Pending = "PENDING", Sending = "SENDING", Sent = "SENT", Failed = "FAILED", Dead = "DEAD" }
);

db_enum!(
    /// Whether the AI agent may answer on a conversation. PAUSED holds until `botPausedUntil`
    /// (a human replied) or, without one, until resumed (an explicit pause, a hand-off).
    BotStatus { Active = "ACTIVE", Paused = "PAUSED" }
);

db_enum!(
    /// An auto-reply decision: PENDING (due at `run_at`), RUNNING (leased), then DONE (the agent
    /// acted), SKIPPED (nothing to do: paused, assigned, superseded) or FAILED (handed to a human).
    AgentJobStatus { Pending = "PENDING", Running = "RUNNING", Done = "DONE", Skipped = "SKIPPED", Failed = "FAILED" }
);

db_enum!(
    /// An outgoing webhook delivery: PENDING (due at `nextAttemptAt`), SENDING (leased), then
    /// DELIVERED (a 2xx answer) or DEAD (refused, or out of attempts; it can be redelivered).
    WebhookDeliveryStatus { Pending = "PENDING", Sending = "SENDING", Delivered = "DELIVERED", Dead = "DEAD" }
);

impl Role {
    /// Owners and admins manage the tenant: users, channels and agents.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// The kind of provider account a channel instance connects: an upper-case name matching
/// `[A-Z][A-Z0-9_]{1,31}`. The seed's five are constants; a loaded plugin may declare any other
/// (`VIBER`), so this is an open, validated string rather than an enum: which types exist is the
/// channel registry's business.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelType(std::borrow::Cow<'static, str>);

/// A channel type name that breaks the naming rule.
#[derive(Debug, thiserror::Error)]
#[error("invalid channel type {0:?}: expected upper-case letters, digits and _ ([A-Z][A-Z0-9_]{{1,31}})")]
pub struct InvalidChannelType(pub String);

impl ChannelType {
    pub const WHATSAPP: Self = Self::from_static("WHATSAPP");
    pub const TELEGRAM_USER: Self = Self::from_static("TELEGRAM_USER");
    pub const TELEGRAM_BOT: Self = Self::from_static("TELEGRAM_BOT");
    pub const FACEBOOK: Self = Self::from_static("FACEBOOK");
    pub const WIDGET: Self = Self::from_static("WIDGET");

    const fn from_static(name: &'static str) -> Self {
        Self(std::borrow::Cow::Borrowed(name))
    }

    pub fn parse(name: &str) -> Result<Self, InvalidChannelType> {
        let bytes = name.as_bytes();
        let valid = (2..=32).contains(&bytes.len())
            && bytes[0].is_ascii_uppercase()
            && bytes[1..].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
        if valid { Ok(Self(std::borrow::Cow::Owned(name.to_owned()))) } else { Err(InvalidChannelType(name.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ChannelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::fmt::Debug for ChannelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ChannelType {
    type Err = InvalidChannelType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for ChannelType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ChannelType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl<DB: Database> Type<DB> for ChannelType
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for ChannelType
where
    String: Encode<'q, DB>,
{
    fn encode_by_ref(&self, buf: &mut DB::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, DB>>::encode(self.as_str().to_owned(), buf)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for ChannelType
where
    &'r str: Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self::parse(<&'r str as Decode<'r, DB>>::decode(value)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::ChannelType;

    #[test]
    fn channel_type_names_are_upper_case_words() {
        for good in ["VIBER", "TELEGRAM_BOT", "X2", "A_B_C_1"] {
            assert_eq!(ChannelType::parse(good).map(|t| t.to_string()).ok().as_deref(), Some(good));
        }
        for bad in ["", "V", "viber", "1VIBER", "_VIBER", "VI-BER", "VIBER ", &"A".repeat(33)] {
            assert!(ChannelType::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ChannelType::parse("WHATSAPP").ok(), Some(ChannelType::WHATSAPP));
    }
}
