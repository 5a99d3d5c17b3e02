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
        for status in ["200", "400", "401", "404", "413"] {
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

    // The error shape: {"error": {"code", "message"}}.
    let error = &schemas["ErrorBody"];
    let required: BTreeSet<&str> =
        error["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert_eq!(required, BTreeSet::from(["code", "message"]));

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
