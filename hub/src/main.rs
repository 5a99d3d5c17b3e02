//! The `hub` binary: parses the command line, loads the configuration, sets up logging and
//! runs the server (or one of the `gentoken` / `checkconfig` helpers).
//!
//! Exit codes: 0 after a clean shutdown or a successful helper, 1 when the server or a
//! helper fails, 2 for a bad command line or a bad configuration (printed to stderr before
//! anything starts).

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use hub::auth::{self, ConnectClaims, SubscribeClaims};
use hub::config::{Config, ConfigWarning, LogFormat};
use hub::telemetry::{Telemetry, WithTraceIds};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::{CheckconfigArgs, Cli, Command, GentokenArgs};

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, warnings) = match Config::load_reporting(&cli.config) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config, &warnings).await,
        Command::Gentoken(args) => gentoken(&config, &args),
        Command::Checkconfig(args) => checkconfig(&config, &warnings, &args),
    }
}

/// How long shutdown waits for the OpenTelemetry exporter to flush.
const TELEMETRY_FLUSH: Duration = Duration::from_secs(5);

async fn serve(config: Config, warnings: &[ConfigWarning]) -> ExitCode {
    let telemetry = match Telemetry::start(&config.otel, &config.node_name) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_tracing(&config, telemetry.as_ref()) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    if let Some(url) = config.otel.traces_url() {
        tracing::info!(%url, service = %config.otel.service_name, "exporting spans over OTLP/HTTP");
    }
    tracing::info!(
        listen = %config.listen,
        node = %config.node_name,
        dev = config.dev,
        "starting hub {}",
        env!("CARGO_PKG_VERSION")
    );
    for warning in warnings {
        tracing::warn!("Centrifugo config: {warning}");
    }
    if config.api_key.is_none() {
        tracing::warn!("no api_key configured: the server API refuses every request with 401");
    }
    let has_key = config.token.hmac_secret.is_some()
        || config.token.rsa_public_key.is_some()
        || config.token.ecdsa_public_key.is_some();
    if !config.allow_anonymous && !has_key {
        tracing::warn!("allow_anonymous is off and no token key is configured: no client can connect");
    }
    let code = match hub::server::run(config).await {
        Ok(()) => {
            tracing::info!("hub stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "hub failed");
            ExitCode::from(1)
        }
    };
    if let Some(telemetry) = telemetry {
        telemetry.shutdown(TELEMETRY_FLUSH).await;
    }
    code
}

/// Logs go to stderr; the filter is RUST_LOG when set, else `config.log_level`.
///
/// Each line carries the spans it was logged in, outermost first, with their
/// fields: `request{id,method,path}` for an HTTP request,
/// `connection{transport,client,user}` for a client connection. Human lines
/// prefix the message with them; JSON lines hold them in `"spans"` (a list of
/// objects with `name` and the fields), and with OpenTelemetry on, the
/// `trace_id` and `span_id` of the innermost span.
///
/// With OpenTelemetry on, the hub's own spans at info and above are exported
/// too, whatever the log filter says.
fn init_tracing(config: &Config, telemetry: Option<&Telemetry>) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).map_err(|e| format!("RUST_LOG: not a valid log filter: {e}"))?
        }
        // log_level was validated when the config loaded.
        _ => EnvFilter::try_new(&config.log_level).map_err(|e| format!("config error: key \"log_level\": {e}"))?,
    };
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match config.log_format {
        LogFormat::Human => lines.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::format().json().with_span_list(true).with_current_span(false);
            lines.json().event_format(WithTraceIds(json)).boxed()
        }
    };
    let spans = telemetry
        .map(|telemetry| telemetry.layer().with_filter(Targets::new().with_target("hub", tracing::Level::INFO)));
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}

fn gentoken(config: &Config, args: &GentokenArgs) -> ExitCode {
    let Some(secret) = config.token.hmac_secret.as_deref() else {
        eprintln!("gentoken: no HMAC secret configured (set token.hmac_secret, HUB_TOKEN__HMAC_SECRET or --token-hmac-secret)");
        return ExitCode::from(2);
    };
    let expires_at = (args.ttl != Duration::ZERO).then(|| auth::expires_in(args.ttl));
    let info = args.info.clone().map(Bytes::from);
    let token = match &args.channel {
        Some(channel) => auth::sign_subscribe_token(
            secret,
            &SubscribeClaims { user: args.user.clone(), channel: channel.clone(), expires_at, info },
        ),
        None => auth::sign_connect_token(
            secret,
            &ConnectClaims { user: args.user.clone(), expires_at, info, channels: args.channels.clone() },
        ),
    };
    match token {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gentoken: {e}");
            ExitCode::from(1)
        }
    }
}

/// Prints the warnings of a Centrifugo file to stderr (`warning: file: key = value: reason`),
/// then the effective config as TOML to stdout: the file to keep when migrating.
fn checkconfig(config: &Config, warnings: &[ConfigWarning], args: &CheckconfigArgs) -> ExitCode {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let shown = if args.show_secrets { config.clone() } else { config.redacted() };
    match toml::to_string_pretty(&shown) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("checkconfig: cannot print the config as TOML: {e}");
            ExitCode::from(1)
        }
    }
}
