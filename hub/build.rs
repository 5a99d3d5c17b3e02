//! Prepares the web files compiled into the binary (`src/assets.rs`):
//!
//! - the demo, `clients/demo/dist`, committed: only watched, so that a rebuilt
//!   demo (a file added or removed included) rebuilds the hub;
//! - the API docs page, `clients/api-docs/dist`, built from npm packages and
//!   never committed: when npm is on the PATH, `scripts/build-assets.sh` makes
//!   it (a no-op when it is up to date); without npm, or when that fails, the
//!   hub is built without the page (or with the one already there) and cargo
//!   prints a warning. `GET /api/docs` then says how to build it.

use std::path::Path;
use std::process::Command;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).parent().expect("hub/ is inside the workspace");
    for watched in [
        "clients/demo/dist",
        "clients/api-docs/dist",
        "clients/api-docs/src",
        "clients/api-docs/package.json",
        "clients/api-docs/package-lock.json",
        "scripts/build-assets.sh",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let script = root.join("scripts/build-assets.sh");
    let page = root.join("clients/api-docs/dist/index.html");
    let npm = Command::new("npm").arg("--version").output().is_ok_and(|out| out.status.success());
    if npm && script.is_file() {
        match Command::new("bash").arg(&script).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => warn(&format!(
                "scripts/build-assets.sh failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            )),
            Err(error) => warn(&format!("cannot run scripts/build-assets.sh: {error}")),
        }
    }
    if !page.is_file() {
        warn(&format!(
            "building the hub without the API docs page (GET /api/docs answers 404): {}; \
             install Node.js with npm, or run scripts/build-assets.sh, then build again",
            if npm { "scripts/build-assets.sh did not make it" } else { "npm not found" }
        ));
    }
}

fn warn(message: &str) {
    println!("cargo:warning={message}");
}
