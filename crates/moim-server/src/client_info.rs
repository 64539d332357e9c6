//! What a client says about itself when it connects, and what moim keeps.
//!
//! `/rtc` carries it as query parameters (`protocol`, `client_protocol`,
//! `sdk`, `version`, `os`, …, `capabilities`); `/rtc/v1` as the
//! `ClientInfo` inside the join request. LiveKit's server gates nothing on
//! `client_protocol` or `capabilities`: it mirrors both into the
//! participant's `ParticipantInfo`, and other clients decide from there
//! whether to send RPC and data streams the newer way (client protocol ≥ 1
//! and ≥ 2) or to compress them (`CAP_COMPRESSION_DEFLATE_RAW`). Only
//! `CAP_PACKET_TRAILER` matters to the media plane: a subscriber without it
//! gets frames with their packet trailer cut off.

use std::collections::HashMap;

use moim_proto::lk;
use moim_proto::lk::client_info::{Capability, Sdk};

/// The parts of a client's self-description that moim acts on or mirrors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientProfile {
    pub sdk: i32,
    pub protocol: i32,
    pub client_protocol: i32,
    /// `ClientInfo.Capability` values, as the client listed them.
    pub capabilities: Vec<i32>,
}

impl ClientProfile {
    /// From the `/rtc` query. Unknown names and unparsable numbers are
    /// ignored, as LiveKit's server does: a newer client must still join.
    pub fn from_query(q: &HashMap<String, String>) -> Self {
        let int = |key: &str| q.get(key).and_then(|v| v.trim().parse::<i32>().ok());
        let sdk = q
            .get("sdk")
            .map(|s| sdk_from_query(s) as i32)
            .unwrap_or_default();
        let capabilities = q
            .get("capabilities")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter_map(Capability::from_str_name)
                    .filter(|c| *c != Capability::CapUnused)
                    .map(|c| c as i32)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            sdk,
            protocol: int("protocol").unwrap_or_default(),
            client_protocol: int("client_protocol").unwrap_or_default(),
            capabilities,
        }
    }

    /// From the `ClientInfo` of a `/rtc/v1` join request.
    pub fn from_client_info(info: Option<&lk::ClientInfo>) -> Self {
        let Some(info) = info else {
            return Self::default();
        };
        Self {
            sdk: info.sdk,
            protocol: info.protocol,
            client_protocol: info.client_protocol,
            capabilities: info
                .capabilities
                .iter()
                .copied()
                .filter(|c| Capability::try_from(*c).is_ok_and(|c| c != Capability::CapUnused))
                .collect(),
        }
    }

    pub fn has(&self, cap: Capability) -> bool {
        self.capabilities.contains(&(cap as i32))
    }

    /// The SDK's name for logs (`JS`, `PYTHON`, `NODE`, …).
    pub fn sdk_name(&self) -> &'static str {
        Sdk::try_from(self.sdk).map_or("UNKNOWN", |s| s.as_str_name())
    }
}

/// SDK names as clients put them in the `sdk` query parameter.
fn sdk_from_query(name: &str) -> Sdk {
    match name.trim().to_ascii_lowercase().as_str() {
        "js" => Sdk::Js,
        "swift" => Sdk::Swift,
        "android" => Sdk::Android,
        "flutter" => Sdk::Flutter,
        "go" => Sdk::Go,
        "unity" => Sdk::Unity,
        "reactnative" | "react-native" => Sdk::ReactNative,
        "rust" => Sdk::Rust,
        "python" => Sdk::Python,
        "cpp" => Sdk::Cpp,
        "unityweb" | "unity-web" => Sdk::UnityWeb,
        "node" => Sdk::Node,
        "unreal" => Sdk::Unreal,
        "esp32" => Sdk::Esp32,
        "dotnet" => Sdk::Dotnet,
        _ => Sdk::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_rust_sdk_query_is_understood() {
        let p = ClientProfile::from_query(&query(&[
            ("sdk", "python"),
            ("protocol", "17"),
            ("client_protocol", "2"),
            (
                "capabilities",
                "CAP_PACKET_TRAILER,CAP_COMPRESSION_DEFLATE_RAW",
            ),
        ]));
        assert_eq!(p.sdk, Sdk::Python as i32);
        assert_eq!(p.protocol, 17);
        assert_eq!(p.client_protocol, 2);
        assert_eq!(
            p.capabilities,
            vec![
                Capability::CapPacketTrailer as i32,
                Capability::CapCompressionDeflateRaw as i32
            ]
        );
    }

    #[test]
    fn unknown_capabilities_and_garbage_numbers_are_ignored() {
        let p = ClientProfile::from_query(&query(&[
            ("protocol", "seventeen"),
            (
                "capabilities",
                " CAP_FROM_THE_FUTURE , ,CAP_UNUSED, CAP_PACKET_TRAILER ",
            ),
        ]));
        assert_eq!(p.protocol, 0);
        assert_eq!(p.capabilities, vec![Capability::CapPacketTrailer as i32]);
    }

    #[test]
    fn a_v1_client_info_is_taken_as_is_minus_unknown_values() {
        let info = lk::ClientInfo {
            sdk: Sdk::Js as i32,
            protocol: 17,
            client_protocol: 2,
            capabilities: vec![2, 99, 0],
            ..Default::default()
        };
        let p = ClientProfile::from_client_info(Some(&info));
        assert_eq!(p.capabilities, vec![2]);
        assert_eq!(p.client_protocol, 2);
        assert_eq!(
            ClientProfile::from_client_info(None),
            ClientProfile::default()
        );
    }
}
