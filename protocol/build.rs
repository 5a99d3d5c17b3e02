//! Generates the wire types from `proto/client.proto` with protox (no `protoc`
//! binary needed) and prost, and gives every field the serde attributes of the
//! Centrifugo JSON mapping: proto field names as keys, default values left out,
//! `bytes` fields embedded as raw JSON.

use prost_build::Config;

/// Fields the JSON protocol always carries, even when empty or zero (as
/// Centrifugo writes them; the SDKs read them without defaults).
const ALWAYS_PRESENT: &[&str] = &[
    "ClientInfo.user",
    "ClientInfo.client",
    "PresenceResult.presence",
    "PresenceStatsResult.num_clients",
    "PresenceStatsResult.num_users",
    "HistoryResult.publications",
    "HistoryResult.epoch",
    "HistoryResult.offset",
];
use prost_types::field_descriptor_proto::{Label, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/client.proto");
    let fds = protox::compile(["client.proto"], ["proto"])?;

    let mut config = Config::new();
    config.bytes(["."]);
    config.btree_map(["."]);
    config.type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]");
    config.type_attribute(".", "#[serde(default)]");

    for file in &fds.file {
        let package = file.package();
        for message in &file.message_type {
            for field in &message.field {
                let path = format!(".{package}.{}.{}", message.name(), field.name());
                let is_map = field.type_name().ends_with("Entry") && field.label() == Label::Repeated;
                let short = format!("{}.{}", message.name(), field.name());
                let attribute = if ALWAYS_PRESENT.contains(&short.as_str()) {
                    continue;
                } else if is_map {
                    "#[serde(skip_serializing_if = \"::std::collections::BTreeMap::is_empty\")]"
                } else if field.label() == Label::Repeated {
                    "#[serde(skip_serializing_if = \"::std::vec::Vec::is_empty\")]"
                } else {
                    match field.r#type() {
                        Type::Bytes => {
                            "#[serde(with = \"crate::json::raw\", skip_serializing_if = \"::bytes::Bytes::is_empty\")]"
                        }
                        Type::Message => "#[serde(skip_serializing_if = \"::std::option::Option::is_none\")]",
                        _ => "#[serde(skip_serializing_if = \"crate::json::is_default\")]",
                    }
                };
                config.field_attribute(&path, attribute);
            }
        }
    }
    config.compile_fds(fds)?;
    Ok(())
}
