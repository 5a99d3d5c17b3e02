//! The web files compiled into the binary: the demo at `/` (`demo = true`,
//! set by `--dev`) from any working directory, `static_dir` in its place when
//! set, and the API docs page at `/api/docs` loading nothing from elsewhere.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{raw_response, spawn_hub, test_config};

/// A response split up: status, headers (names in lower case), body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_else(|| panic!("no content-type: {}", self.head))
    }

    /// The hub's JSON error shape with `code`.
    fn assert_json_error(&self, status: u16, code: u64) {
        assert_eq!(self.status, status, "{}\r\n\r\n{}", self.head, self.body);
        assert!(self.content_type().starts_with("application/json"), "{}", self.head);
        let error: Value = serde_json::from_str(&self.body).expect("a JSON body");
        assert_eq!(error["error"]["code"], code, "{}", self.body);
        assert!(error["error"]["message"].is_string(), "{}", self.body);
    }
}

async fn request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> Answer {
    let response =
        raw_response(addr, &format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"))
            .await;
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status line");
    Answer { status, head: head.to_owned(), body: body.to_owned() }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, "").await
}

/// A fresh empty directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let dir = std::env::temp_dir().join(format!("hub-assets-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// The `hub` binary started with `args` in `dir`, killed when dropped.
struct HubProcess {
    child: Child,
    dir: PathBuf,
}

impl HubProcess {
    fn start(dir: PathBuf, args: &[&str]) -> (HubProcess, SocketAddr) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .env_remove("HUB_CONFIG")
            .env_remove("HUB_DEMO")
            .env_remove("HUB_STATIC_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the hub binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (send, lines) = mpsc::channel();
        // Drains stderr for the hub's whole life: a closed pipe would fail
        // its log writes (which reset the connection being logged).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let hub = HubProcess { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).unwrap_or_else(|_| panic!("no listening line: {seen:#?}"));
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on http://".len()..];
                let addr = rest.split(|c: char| c == '"' || c.is_whitespace()).next().unwrap_or_default();
                return (hub, addr.parse().unwrap_or_else(|e| panic!("{e}: {line}")));
            }
            seen.push(line);
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `hub --dev` run in an empty directory serves the demo compiled into it:
/// the page, its script and style with their types, ETag revalidation, HEAD,
/// and a JSON 404 for a file it does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_the_embedded_demo_from_any_directory() {
    let (_hub, addr) = HubProcess::start(temp_dir("dev"), &["--dev"]);

    let page = get(addr, "/").await;
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    assert!(page.body.contains("<title>hub demo</title>"), "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let etag = page.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(get(addr, "/index.html").await.body, page.body);

    // The files the page names, with their types.
    let script = get(addr, "/assets/index.js").await;
    assert_eq!(script.status, 200, "{}", script.head);
    assert!(script.content_type().contains("javascript"), "{}", script.head);
    assert!(!script.body.is_empty());
    let style = get(addr, "/assets/index.css").await;
    assert_eq!(style.status, 200, "{}", style.head);
    assert_eq!(style.content_type(), "text/css; charset=utf-8");

    // A current copy is not sent again.
    let again = request(addr, "GET", "/", &format!("If-None-Match: {etag}\r\n")).await;
    assert_eq!(again.status, 304, "{}", again.head);
    assert_eq!(again.body, "");
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let stale = request(addr, "GET", "/", "If-None-Match: \"other\"\r\n").await;
    assert_eq!(stale.status, 200, "{}", stale.head);

    // HEAD: the headers of GET, no body.
    let head = request(addr, "HEAD", "/assets/index.css", "").await;
    assert_eq!(head.status, 200, "{}", head.head);
    assert_eq!(head.content_type(), "text/css; charset=utf-8");
    assert_eq!(head.header("content-length"), Some(style.body.len().to_string().as_str()));
    assert_eq!(head.body, "");

    get(addr, "/assets/missing.js").await.assert_json_error(404, 104);
    get(addr, "/nothing/").await.assert_json_error(404, 104);
    // The hub's own routes are still its own.
    assert_eq!(get(addr, "/health").await.body, r#"{"status":"ok"}"#);
}

/// Without `demo` (the default) nothing is served at `/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_demo_by_default() {
    let hub = spawn_hub(test_config()).await;
    get(hub.addr, "/").await.assert_json_error(404, 104);
    get(hub.addr, "/assets/index.js").await.assert_json_error(404, 104);
    hub.shutdown().await;
}

/// `static_dir` is served in place of the embedded demo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_dir_overrides_the_demo() {
    let dir = temp_dir("static");
    std::fs::write(dir.join("index.html"), "<!doctype html><title>mine</title>").expect("write index.html");
    std::fs::write(dir.join("app.js"), "console.log('mine');").expect("write app.js");
    let config = hub::config::Config { demo: true, static_dir: Some(dir.clone()), ..test_config() };
    let hub = spawn_hub(config).await;
    let addr = hub.addr;

    let page = get(addr, "/").await;
    assert_eq!(page.status, 200, "{}", page.head);
    assert!(page.content_type().starts_with("text/html"), "{}", page.head);
    assert_eq!(page.body, "<!doctype html><title>mine</title>");
    let script = get(addr, "/app.js").await;
    assert_eq!(script.status, 200, "{}", script.head);
    assert!(script.content_type().contains("javascript"), "{}", script.head);
    // The demo's files are not there.
    get(addr, "/assets/index.js").await.assert_json_error(404, 104);

    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The values of the `src` and `href` attributes of an HTML text.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let end = rest.find('"').expect("a closing quote");
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

/// `GET /api/docs`: an HTML page (no key needed) whose scripts and styles
/// all come from the hub, with a CSP that keeps it so; the files answer with
/// their types; the OpenAPI document it shows is the hub's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_docs_page_loads_only_from_the_hub() {
    let config = hub::config::Config { api_key: Some("secret".into()), ..test_config() };
    let hub = spawn_hub(config).await;
    let addr = hub.addr;

    let page = get(addr, "/api/docs").await;
    assert_eq!(page.status, 200, "built without the docs page? {}\r\n\r\n{}", page.head, page.body);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    assert!(!page.body.contains("http://") && !page.body.contains("https://"), "{}", page.body);
    let csp = page.header("content-security-policy").expect("a Content-Security-Policy");
    for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'"] {
        assert!(csp.contains(directive), "{csp}");
    }

    let mut types = Vec::new();
    for reference in references(&page.body) {
        if reference.starts_with("data:") {
            continue;
        }
        assert!(!reference.starts_with("//") && !reference.contains("://"), "{reference} is not on the hub");
        // Relative to the page, /api/docs.
        let path = format!("/api/{}", reference.trim_start_matches("./"));
        let file = get(addr, &path).await;
        assert_eq!(file.status, 200, "{path}: {}", file.head);
        assert!(!file.body.is_empty(), "{path}");
        let kind = file.content_type().to_owned();
        if path.ends_with(".js") {
            assert!(kind.contains("javascript"), "{path}: {kind}");
        } else if path.ends_with(".css") {
            assert_eq!(kind, "text/css; charset=utf-8", "{path}");
        }
        types.push(kind);
    }
    assert!(types.iter().any(|kind| kind.starts_with("text/css")), "no stylesheet: {types:?}");
    assert!(types.iter().filter(|kind| kind.contains("javascript")).count() >= 2, "Swagger UI and ours: {types:?}");

    // Our script points Swagger UI at the hub's own document.
    let init = get(addr, "/api/docs/init.js").await;
    assert!(init.body.contains("'openapi.json'"), "{}", init.body);
    assert_eq!(get(addr, "/api/openapi.json").await.status, 200);

    // Swagger UI's license travels with it.
    let license = get(addr, "/api/docs/swagger-ui-LICENSE.txt").await;
    assert_eq!(license.status, 200, "{}", license.head);
    assert_eq!(license.content_type(), "text/plain; charset=utf-8");
    assert!(license.body.contains("Apache License"), "{}", license.body);

    // `/api/docs/` goes to the page (its links are relative to /api/docs).
    let slash = get(addr, "/api/docs/").await;
    assert_eq!(slash.status, 308, "{}", slash.head);
    assert_eq!(slash.header("location"), Some("../docs"));
    get(addr, "/api/docs/missing.js").await.assert_json_error(404, 104);
    // The API beside it still wants its key.
    let (status, _) = crate::helpers::raw_request(
        addr,
        &format!("POST /api/info HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"),
    )
    .await;
    assert_eq!(status, 401);

    hub.shutdown().await;
}
