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
    /// The kind of provider account a channel instance connects.
    ChannelType {
        Whatsapp = "WHATSAPP",
        TelegramUser = "TELEGRAM_USER",
        TelegramBot = "TELEGRAM_BOT",
        Facebook = "FACEBOOK",
        Widget = "WIDGET",
    }
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

impl Role {
    /// Owners and admins manage the tenant: users, channels and agents.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}
