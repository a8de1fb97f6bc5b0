//! The hook types events are routed to (docs/kazoo.md#hook-types): the values of a hook's `hook`
//! field that some event reaches.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A hook type some event reaches: the nine event kinds and `all`. Other values a definition may
/// register (through configuration) name hooks no event reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookType {
    /// `channel_create`.
    ChannelCreate,
    /// `channel_answer`.
    ChannelAnswer,
    /// `channel_bridge`.
    ChannelBridge,
    /// `channel_destroy`.
    ChannelDestroy,
    /// `object`.
    Object,
    /// `notifications`.
    Notifications,
    /// `parking`.
    Parking,
    /// `sms`.
    Sms,
    /// `mms`.
    Mms,
    /// `all`: every event kind.
    All,
}

impl HookType {
    /// Every hook type, in declaration order.
    pub const ALL_TYPES: [HookType; 10] = [
        Self::ChannelCreate,
        Self::ChannelAnswer,
        Self::ChannelBridge,
        Self::ChannelDestroy,
        Self::Object,
        Self::Notifications,
        Self::Parking,
        Self::Sms,
        Self::Mms,
        Self::All,
    ];

    /// The type named `text`, compared ASCII case-insensitively as Kazoo lower-cases stored values
    /// (docs/kazoo.md#runtime-reading); `None` for a type no event reaches.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL_TYPES.into_iter().find(|kind| kind.as_str().eq_ignore_ascii_case(text))
    }

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ChannelCreate => "channel_create",
            Self::ChannelAnswer => "channel_answer",
            Self::ChannelBridge => "channel_bridge",
            Self::ChannelDestroy => "channel_destroy",
            Self::Object => "object",
            Self::Notifications => "notifications",
            Self::Parking => "parking",
            Self::Sms => "sms",
            Self::Mms => "mms",
            Self::All => "all",
        }
    }
}

impl fmt::Display for HookType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Serialize for HookType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Reads the stored name as [`HookType::parse`] does.
impl<'de> Deserialize<'de> for HookType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format_args!("'{text}' is not a hook type any event reaches")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_types_parse_case_insensitively_and_unknown_types_are_refused() {
        assert_eq!(HookType::parse("CHANNEL_create"), Some(HookType::ChannelCreate));
        assert_eq!(HookType::parse("all"), Some(HookType::All));
        assert_eq!(HookType::parse("callflow"), None);
        for kind in HookType::ALL_TYPES {
            assert_eq!(HookType::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn hook_types_travel_as_their_stored_names() {
        for kind in HookType::ALL_TYPES {
            let written = serde_json::to_value(kind).expect("JSON");
            assert_eq!(written, kind.as_str());
            assert_eq!(serde_json::from_value::<HookType>(written).expect("a hook type"), kind);
        }
        assert_eq!(serde_json::from_str::<HookType>(r#""Object""#).expect("a hook type"), HookType::Object);
        assert!(serde_json::from_str::<HookType>(r#""callflow""#).is_err());
    }
}
