//! The cross-origin policy as a browser sees it (`allowed_origins`): what a
//! page on an allowed origin gets (preflight answer, response headers that
//! let it read the answer, credentials), and the refusal every other origin
//! gets.

use crate::helpers::{raw_response, spawn_hub, test_config};

/// The status and the lower-cased head of the answer to `request`.
async fn head_of(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    let response = raw_response(addr, request).await;
    let head = response.split_once("\r\n\r\n").map(|(head, _)| head).unwrap_or(&response).to_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status: {head}"));
    (status, head)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| line.strip_prefix(&format!("{name}: ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_origins_get_cors_headers_and_others_403() {
    let config = hub::config::Config {
        api_key: Some("key".into()),
        allowed_origins: vec!["https://app.example".into()],
        ..test_config()
    };
    let hub = spawn_hub(config).await;
    let addr = hub.addr;

    // A preflight of an API call with the key and a JSON body.
    let preflight = format!(
        "OPTIONS /api/info HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://app.example\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: content-type, x-api-key\r\nConnection: close\r\n\r\n"
    );
    let (status, head) = head_of(addr, &preflight).await;
    assert_eq!(status, 204, "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some("https://app.example"), "{head}");
    assert_eq!(header(&head, "access-control-allow-credentials"), Some("true"), "{head}");
    let methods = header(&head, "access-control-allow-methods").unwrap_or_else(|| panic!("{head}"));
    for method in ["get", "post"] {
        assert!(methods.split(',').any(|m| m.trim() == method), "{method} in {methods}");
    }
    let headers = header(&head, "access-control-allow-headers").unwrap_or_else(|| panic!("{head}"));
    for name in ["content-type", "x-api-key"] {
        assert!(headers.split(',').any(|h| h.trim() == name), "{name} in {headers}");
    }
    assert_eq!(header(&head, "access-control-max-age"), Some("600"), "{head}");

    // The call itself: answered, readable by the page, with its credentials.
    let call = format!(
        "POST /api/info HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://app.example\r\nX-API-Key: key\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let (status, head) = head_of(addr, &call).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some("https://app.example"), "{head}");
    assert_eq!(header(&head, "access-control-allow-credentials"), Some("true"), "{head}");
    assert!(header(&head, "vary").is_some_and(|v| v.contains("origin")), "{head}");

    // The hub's own origin needs no listing.
    let same = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nConnection: close\r\n\r\n");
    let (status, head) = head_of(addr, &same).await;
    assert_eq!(status, 200, "{head}");

    // Any other origin: refused before anything runs, preflight or not.
    for request in [
        format!(
            "OPTIONS /api/info HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://evil.example\r\n\
             Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://evil.example\r\nX-API-Key: key\r\n\
             Content-Length: 38\r\nConnection: close\r\n\r\n{{\"channel\":\"chat:news\",\"data\":{{\"a\":1}}}}"
        ),
    ] {
        let (status, head) = head_of(addr, &request).await;
        assert_eq!(status, 403, "{head}");
        assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
    }
    // The refused publish did not happen.
    let history = format!(
        "POST /api/history HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: key\r\nContent-Length: 34\r\n\
         Connection: close\r\n\r\n{{\"channel\":\"chat:news\",\"limit\":-1}}"
    );
    let response = raw_response(addr, &history).await;
    assert!(response.contains("\"result\""), "{response}");
    assert!(!response.contains("\"a\":1"), "{response}");
    hub.shutdown().await;
}
