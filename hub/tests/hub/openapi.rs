//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the server API,
//! served without a key, with a path for every method the API serves.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{raw_response, spawn_hub, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_every_method() {
    // A key is configured; the document needs none.
    let config = hub::config::Config { api_key: Some("secret".into()), ..test_config() };
    let hub = spawn_hub(config).await;
    let addr = hub.addr;
    let response =
        raw_response(addr, &format!("GET /api/openapi.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"))
            .await;
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
    let head = head.to_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(head.contains("\r\ncontent-type: application/json"), "{head}");
    let doc: Value = serde_json::from_str(body).expect("the document is JSON");

    let version = doc["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3.1."), "{version}");

    // Exactly the methods of the API's method table, each a POST.
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let served: Vec<String> = hub::api_method_names().into_iter().map(|name| format!("/api/{name}")).collect();
    let served: BTreeSet<&str> = served.iter().map(String::as_str).collect();
    assert_eq!(documented, served);

    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes["X-API-Key"]["type"], "apiKey");
    assert_eq!(schemes["X-API-Key"]["in"], "header");
    assert_eq!(schemes["X-API-Key"]["name"], "X-API-Key");
    assert_eq!(schemes["AuthorizationApikey"]["name"], "Authorization");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");

    for (path, item) in paths {
        let operation = item["post"].as_object().unwrap_or_else(|| panic!("{path}: no POST"));
        let security = operation["security"].as_array().unwrap_or_else(|| panic!("{path}: no security"));
        let named: BTreeSet<&str> = security
            .iter()
            .flat_map(|requirement| requirement.as_object().into_iter().flatten())
            .map(|(k, _)| k.as_str())
            .collect();
        assert!(named.contains("X-API-Key") && named.contains("AuthorizationApikey"), "{path}: {named:?}");
        assert!(operation["requestBody"]["content"]["application/json"]["schema"].is_object(), "{path}");
        for status in ["200", "400", "401", "404", "413", "503"] {
            let schema = &operation["responses"][status]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{path}: no {status} answer");
        }
        assert_eq!(
            operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorReply",
            "{path}"
        );
    }

    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{reference}"));
        assert!(schemas.contains_key(name), "{reference} does not resolve");
    }

    // refresh, and the session/whitelist fields of the user commands.
    assert_eq!(
        paths["/api/refresh"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/RefreshRequest"
    );
    let fields = |schema: &str| -> BTreeSet<String> {
        schemas[schema]["properties"].as_object().expect("properties").keys().cloned().collect()
    };
    for field in ["user", "client", "session", "expired", "expire_at"] {
        assert!(fields("RefreshRequest").contains(field), "RefreshRequest.{field}");
    }
    assert!(fields("DisconnectRequest").contains("whitelist") && fields("DisconnectRequest").contains("session"));
    assert!(fields("UserChannelRequest").contains("session"));
    let required: BTreeSet<&str> =
        schemas["RefreshRequest"]["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert_eq!(required, BTreeSet::from(["user"]));

    // The error shape: {"error": {"code", "message"}}.
    let error = &schemas["ErrorBody"];
    let required: BTreeSet<&str> =
        error["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert_eq!(required, BTreeSet::from(["code", "message"]));

    hub.shutdown().await;
}

/// What the handlers check beyond the types is in the document, so that a
/// body the document allows is served and one it forbids is refused (found by
/// schemathesis, scripts/openapi-check.sh); the live hub agrees on the bodies
/// that may be left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_states_what_the_handlers_check() {
    let config = hub::config::Config { api_key: Some("secret".into()), ..test_config() };
    let hub = spawn_hub(config).await;
    let addr = hub.addr;
    let get = format!("GET /api/openapi.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let response = raw_response(addr, &get).await;
    let (_, body) = response.split_once("\r\n\r\n").expect("a complete response");
    let doc: Value = serde_json::from_str(body).expect("the document is JSON");
    let schemas = &doc["components"]["schemas"];

    // An empty body counts as `{}`: it may be left out only where no field is required.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let optional = ["/api/channels", "/api/info", "/api/batch"].contains(&path.as_str());
        assert_eq!(item["post"]["requestBody"]["required"], !optional, "{path}");
        let post = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: secret\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let status = if optional { "200" } else { "400" };
        let answer = raw_response(addr, &post).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{path} without a body: {answer}");
    }

    // A channel is not empty; broadcast names at least one.
    for schema in ["ChannelRequest", "HistoryRequest", "UserChannelRequest"] {
        assert_eq!(schemas[schema]["properties"]["channel"]["minLength"], 1, "{schema}");
    }
    for (schema, field) in [("PublishRequest", "channel"), ("BroadcastRequest", "channels")] {
        let object = &schemas[schema]["allOf"][0];
        let constraint = if field == "channel" { "minLength" } else { "minItems" };
        assert_eq!(object["properties"][field][constraint], 1, "{schema}");
        assert!(object["properties"]["b64data"]["pattern"].is_string(), "{schema}");
        // `data`, or `b64data` as a string.
        let either = &schemas[schema]["allOf"][1]["anyOf"];
        assert_eq!(either[0]["required"], serde_json::json!(["data"]), "{schema}");
        assert_eq!(either[1]["required"], serde_json::json!(["b64data"]), "{schema}");
        assert_eq!(either[1]["properties"]["b64data"]["type"], "string", "{schema}");
    }
    // `session` and `whitelist` are taken (no bound on them); refresh's
    // `expire_at` is not negative, and its `info` (refused) is not offered.
    assert!(schemas["UserChannelRequest"]["properties"]["session"].get("maxLength").is_none());
    assert!(schemas["DisconnectRequest"]["properties"]["session"].get("maxLength").is_none());
    assert!(schemas["DisconnectRequest"]["properties"]["whitelist"].get("maxItems").is_none());
    assert_eq!(schemas["RefreshRequest"]["properties"]["expire_at"]["minimum"], 0);
    assert!(schemas["RefreshRequest"]["properties"].get("info").is_none());
    let codes = schemas["DisconnectSpec"]["properties"]["code"]["anyOf"].as_array().expect("code: anyOf");
    assert!(codes.iter().any(|c| c["minimum"] == 3000 && c["maximum"] == 4999), "{codes:?}");
    assert!(codes.iter().any(|c| c["enum"] == serde_json::json!([0])), "{codes:?}");
    // A stream offset is any u64, not only what fits an int64.
    assert_eq!(schemas["StreamPosition"]["properties"]["offset"]["maximum"], u64::MAX);
    // Each batch command is decoded on its own: any value, answered in its reply slot.
    assert!(schemas["BatchRequest"]["properties"]["commands"]["items"].get("type").is_none());

    hub.shutdown().await;
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => refs.push(reference.clone()),
                    _ => collect_refs(value, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, refs)),
        _ => {}
    }
}
