//! Web files compiled into the binary, so that a hub serves them from any
//! working directory:
//!
//! - the demo app, `clients/demo/dist` (committed), at `/` when `demo = true`
//!   and no `static_dir` is set ([`demo_routes`]; `server` decides);
//! - the API documentation page, `clients/api-docs/dist` (our `index.html`
//!   and `init.js` with Swagger UI's files from the `swagger-ui-dist` npm
//!   package, put together by `scripts/build-assets.sh`, which `hub/build.rs`
//!   runs), at `GET /api/docs` and its files under `/api/docs/`
//!   ([`docs_routes`], always: it documents an API that needs the key anyway).
//!   A binary built without npm has no page: `/api/docs` then answers 404
//!   saying how to build it.
//!
//! Every file goes out with its Content-Type, an ETag (a prefix of its
//! SHA-256, computed at compile time; `If-None-Match` answers 304),
//! `Cache-Control: no-cache` (the file names are stable, not content-hashed,
//! so a browser revalidates, which costs a 304) and
//! `X-Content-Type-Options: nosniff`; HEAD answers as GET without the body. The
//! docs page also gets a Content-Security-Policy that lets it load from the
//! hub only. A missing file is a 404 in the hub's JSON error shape.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use rust_embed::{EmbeddedFile, RustEmbed};

use crate::http_error;

/// `clients/demo/dist`, the built Vue demo.
#[derive(RustEmbed)]
#[folder = "../clients/demo/dist/"]
struct Demo;

/// `clients/api-docs/dist`, the API docs page; empty when the hub was built
/// without it (no npm).
#[derive(RustEmbed)]
#[folder = "../clients/api-docs/dist/"]
#[allow_missing = true]
struct ApiDocs;

/// Where the API docs page is served.
pub const DOCS_PATH: &str = "/api/docs";

/// The docs page loads scripts, styles and the OpenAPI document from the hub
/// only. Swagger UI sets inline styles (hence `'unsafe-inline'` for styles,
/// never for scripts) and shows icons as `data:` images.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                        base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// Whether this binary has the API docs page.
pub fn api_docs_built() -> bool {
    ApiDocs::get("index.html").is_some()
}

/// `GET`/`HEAD /api/docs` (the page) and `/api/docs/<file>` (its scripts and
/// styles). Register before the API's routes.
pub fn docs_routes(config: &mut web::ServiceConfig) {
    config
        .route(DOCS_PATH, web::route().guard(get_or_head()).to(docs_page))
        .route("/api/docs/{file:.*}", web::route().guard(get_or_head()).to(docs_file));
}

/// `GET`/`HEAD /<file>` from the embedded demo, `index.html` for `/`: every
/// path no other route takes, so register it last.
pub fn demo_routes(config: &mut web::ServiceConfig) {
    config.route("/{file:.*}", web::route().guard(get_or_head()).to(demo_file));
}

fn get_or_head() -> impl guard::Guard {
    guard::Any(guard::Get()).or(guard::Head())
}

async fn docs_page(request: HttpRequest) -> HttpResponse {
    if !api_docs_built() {
        return not_built();
    }
    with_csp(serve(&request, "index.html", ApiDocs::get("index.html")))
}

async fn docs_file(request: HttpRequest, file: web::Path<String>) -> HttpResponse {
    let name = file.into_inner();
    if name.is_empty() || name == "index.html" {
        // The page's links are relative to /api/docs: send `/api/docs/` there
        // (relatively, so that a proxy's path prefix is kept).
        return HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "../docs")).finish();
    }
    if !api_docs_built() {
        return not_built();
    }
    with_csp(serve(&request, &name, ApiDocs::get(&name)))
}

async fn demo_file(request: HttpRequest, file: web::Path<String>) -> HttpResponse {
    let path = file.into_inner();
    let name = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path };
    serve(&request, &name, Demo::get(&name))
}

fn not_built() -> HttpResponse {
    http_error::response(
        StatusCode::NOT_FOUND,
        http_error::code_for(StatusCode::NOT_FOUND).code,
        "this hub binary was built without the API docs page: install Node.js with npm, run \
         scripts/build-assets.sh and build the hub again (the OpenAPI document is at /api/openapi.json)",
    )
}

fn with_csp(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
    response
}

/// `file` (named `name`) as the answer to `request`: 200, 304 when the
/// client's copy is current, 404 JSON when there is no such file.
fn serve(request: &HttpRequest, name: &str, file: Option<EmbeddedFile>) -> HttpResponse {
    let Some(file) = file else {
        return http_error::response(
            StatusCode::NOT_FOUND,
            http_error::code_for(StatusCode::NOT_FOUND).code,
            format!("no such file: {}", request.path()),
        );
    };
    let etag = etag(&file.metadata.sha256_hash());
    let current =
        request.headers().get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()).is_some_and(|value| {
            value.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
        });
    let mut answer = if current { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    answer
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if current {
        return answer.finish();
    }
    let body = match file.data {
        Cow::Borrowed(bytes) => Bytes::from_static(bytes),
        Cow::Owned(bytes) => Bytes::from(bytes),
    };
    answer.content_type(content_type(name)).body(body)
}

/// A strong ETag: the first 16 bytes of the SHA-256, in hex, quoted.
fn etag(sha256: &[u8; 32]) -> String {
    let hex: String = sha256[..16].iter().map(|byte| format!("{byte:02x}")).collect();
    format!("\"{hex}\"")
}

/// The Content-Type of a file by its extension, with `charset=utf-8` for text.
fn content_type(name: &str) -> String {
    let mime = mime_guess::from_path(name).first_raw().unwrap_or("application/octet-stream");
    let text =
        mime.starts_with("text/") || matches!(mime, "application/javascript" | "application/json" | "image/svg+xml");
    if text {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("assets/index.css"), "text/css; charset=utf-8");
        assert!(content_type("assets/index.js").contains("javascript"), "{}", content_type("assets/index.js"));
        assert_eq!(content_type("logo.png"), "image/png");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }

    #[test]
    fn the_demo_is_embedded() {
        let page = Demo::get("index.html").expect("clients/demo/dist/index.html is embedded");
        assert!(String::from_utf8_lossy(&page.data).contains("<title>hub demo</title>"));
        assert!(Demo::get("assets/index.js").is_some());
    }

    #[test]
    fn etags_are_quoted_hex() {
        assert_eq!(etag(&[0xab; 32]), format!("\"{}\"", "ab".repeat(16)));
    }
}
