//! Command line of the `hub` binary: the subcommands and their flags.
//!
//! The configuration flags themselves live in [`hub::config::ConfigArgs`] (flattened here,
//! usable before or after the subcommand); this module only adds the subcommands. Parsing
//! is `clap`'s: a bad flag prints usage and exits 2 before anything starts.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hub::config::ConfigArgs;

/// A real-time messaging hub speaking the Centrifugo client protocol v2.
///
/// Without a subcommand it serves until SIGINT or SIGTERM. Configuration comes from the
/// built-in defaults, the --dev preset, the --config file (the hub's TOML, or a Centrifugo
/// v6 config in JSON, YAML or TOML), HUB_* environment
/// variables (nested keys joined with "__", e.g. HUB_TOKEN__HMAC_SECRET) and these flags,
/// each overriding the one before.
#[derive(Debug, Parser)]
#[command(name = "hub", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve clients and the server API until SIGINT/SIGTERM (the default).
    Serve,
    /// Print an HS256 connection token (or a subscription token with --channel) signed
    /// with the configured token.hmac_secret.
    Gentoken(GentokenArgs),
    /// Validate the configuration and print the effective config as TOML. With a
    /// Centrifugo config file, first print to stderr one "warning:" line per Centrifugo
    /// key the hub supports only partly or not at all: the TOML is the hub config to
    /// migrate to.
    Checkconfig(CheckconfigArgs),
}

#[derive(Debug, Args)]
pub struct GentokenArgs {
    /// User id: the token's `sub` claim.
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// Lifetime of the token (`exp` = now + TTL); 0s = a token that never expires.
    #[arg(long, value_name = "DURATION", default_value = "3600s", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Comma-separated channels for the connection token's `channels` claim.
    #[arg(long, value_name = "CHANNELS", value_delimiter = ',')]
    pub channels: Vec<String>,
    /// JSON for the `info` claim, e.g. '{"name":"Alice"}'.
    #[arg(long, value_name = "JSON")]
    pub info: Option<String>,
    /// Make a subscription token for this channel instead of a connection token.
    #[arg(long, value_name = "CHANNEL", conflicts_with = "channels")]
    pub channel: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckconfigArgs {
    /// Print the API key and HMAC secret instead of "<redacted>".
    #[arg(long)]
    pub show_secrets: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_flags_work_before_and_after_the_subcommand() {
        let cli = Cli::try_parse_from(["hub", "--dev", "gentoken", "--user", "u", "--config", "x.toml"]).unwrap();
        assert!(cli.config.dev);
        assert_eq!(cli.config.config.as_deref(), Some(std::path::Path::new("x.toml")));
        let Some(Command::Gentoken(args)) = cli.command else { panic!("not gentoken") };
        assert_eq!(args.ttl, Duration::from_secs(3600));
    }
}
