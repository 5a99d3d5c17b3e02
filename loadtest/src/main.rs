//! loadtest: the load generator for the hub and the servers people would pick
//! instead, measured the same way in the same run.
//!
//! The parts:
//! - [`adapter`]: one adapter per protocol (hub, Node `ws`, Socket.IO, NATS
//!   over WebSocket, RabbitMQ Web-STOMP, Pusher/sockudo): subscribe,
//!   heartbeats, publish.
//! - [`payload`]: self-describing payloads (sequence, send time, channel) and
//!   the scanner that finds them in any framing.
//! - [`worker`]: a group of subscriber connections, in this process or a
//!   child process (`--processes`), driven by [`worker::Ctl`] messages.
//! - [`fleet`]: the controller's side of the workers.
//! - [`scenario`]: idle, connect, fanout, channels, reconnect-storm.
//! - [`report`], [`stats`], [`procstat`]: JSON reports and tables, HDR
//!   histograms, the server's RSS and CPU from /proc.

mod adapter;
mod amqp;
mod delta;
mod fleet;
mod http;
mod payload;
mod procstat;
mod report;
mod scenario;
mod stats;
mod worker;

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::adapter::{HubPublisher, Proto, Target};

const ABOUT: &str = "Load generator for the hub (Centrifugo protocol v2) and its peers.

Scenarios (each prints a table and, with --json FILE, writes a JSON report):
  idle             N connections, each subscribed to its own channel (--channels C to share C
                   channels), held with heartbeats on:
                   the server's RSS per connection (VmRSS of /proc/<pid>/status, before vs after)
                   and its CPU while idle.
  connect          N clients connect and subscribe (at most --concurrency handshakes in flight):
                   connect+subscribe per second, time until all are subscribed, handshake latency.
  fanout           N subscribers on ONE channel; a publisher at each rate of --rates (publications/s)
                   for --duration s: deliveries/s, publish-to-deliver latency p50/p90/p99/max (from a
                   timestamp in each payload), losses (per-channel sequence numbers). A rate is
                   sustained when the publisher kept it, everything arrived, the backlog drained
                   within 2.5 s and no subscriber was dropped; the run stops at the first rate
                   that is not (unless --keep-going).
  channels         N subscribers each on its own channel (or --channels C shared), publications spread
                   round-robin over all channels; same measures as fanout.
  reconnect-storm  N hub clients (hub_client: reconnect + resubscribe with recovery) on --channels
                   channels while a publisher runs; all connections are cut at once: time until all
                   are back and recovered, and every publication received exactly once.
  compare          merge fanout/channels JSON reports of several servers into a markdown table and an
                   SVG chart.

Targets (--target): hub, ws (Node ws baseline), socketio, nats (WebSocket), stomp (RabbitMQ
Web-STOMP), pusher (sockudo). The server under test runs separately (see loadtest/bench/).
Past one process's open files, use --processes N (children of this binary, results aggregated)
and several source addresses (--sources 127.0.0.2,127.0.0.3,...).";

#[derive(Parser)]
#[command(name = "loadtest", version, about = "Load generator for the hub and its peers", long_about = ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hold N idle subscribed connections: server RSS per connection and idle CPU.
    Idle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: IdleArgs,
    },
    /// Connect+subscribe rate and time for N clients to be subscribed.
    Connect {
        #[command(flatten)]
        common: Common,
        /// Clients to connect.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    /// N subscribers on one channel, publications at increasing rates.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: FanoutArgs,
    },
    /// N subscribers each on its own channel, publications spread over all channels.
    Channels {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: FanoutArgs,
        /// Channels (default: one per subscriber).
        #[arg(long)]
        channels: Option<u32>,
    },
    /// Cut every client at once; time until all are back and recovered, nothing lost.
    ReconnectStorm {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: StormArgs,
    },
    /// Merge fanout reports of several servers into a markdown table and an SVG chart.
    Compare {
        /// JSON reports written with --json.
        files: Vec<PathBuf>,
        /// Write the markdown table here.
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Write the SVG chart here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// (internal) run one worker, controlled over stdin/stdout.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        spec: String,
    },
}

/// Options every scenario shares.
#[derive(Args, Clone)]
pub struct Common {
    /// Protocol of the server under test.
    #[arg(long, value_enum, default_value = "hub")]
    pub target: Proto,
    /// Label of the server in reports (default: the target's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Subscriber WebSocket URL (default per target: hub ws://127.0.0.1:8000/connection/websocket,
    /// ws ws://127.0.0.1:8101/, socketio ws://127.0.0.1:8102/socket.io/?EIO=4&transport=websocket,
    /// nats ws://127.0.0.1:8103, stomp ws://127.0.0.1:15674/ws, pusher ws://127.0.0.1:6001/app/<key>?protocol=7).
    /// Repeat it (or give a comma list) to spread subscribers round-robin over several
    /// servers, e.g. the nodes of a hub cluster; publishers and --server-pid use the first.
    #[arg(long, value_delimiter = ',')]
    pub url: Vec<String>,
    /// HTTP base of the API publisher (hub: http://127.0.0.1:8000, pusher: http://127.0.0.1:6001).
    #[arg(long)]
    pub api: Option<String>,
    /// Hub API key (X-API-Key), or the Pusher app key.
    #[arg(long)]
    pub key: Option<String>,
    /// Pusher app id.
    #[arg(long, default_value = "app-id")]
    pub app_id: String,
    /// Pusher app secret.
    #[arg(long, default_value = "app-secret")]
    pub secret: String,
    /// How the hub is published to: the HTTP server API or a client connection.
    #[arg(long, value_enum, default_value = "http")]
    pub hub_publisher: HubPublisher,
    /// HTTP publisher: ask the hub to run each `/api/batch` in parallel (`"parallel": true`);
    /// per-channel order inside one batch is then not guaranteed.
    #[arg(long)]
    pub api_parallel: bool,
    /// Hub: delta compression; subscribers ask for `delta: "fossil"` (and apply
    /// the deltas, as the SDK does), the HTTP publisher sends `delta: true`.
    #[arg(long)]
    pub delta: bool,
    /// RabbitMQ URL of the AMQP publisher (--hub-publisher amqp).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Exchange of the AMQP publisher: the hub's publish exchange (`<amqp_prefix>.publish`);
    /// routing key = channel, body = the JSON payload.
    #[arg(long, default_value = "hub.publish")]
    pub amqp_exchange: String,
    /// Most unconfirmed AMQP publications at once (publisher confirms are pipelined).
    #[arg(long, default_value_t = 1000)]
    pub amqp_inflight: usize,
    /// Source addresses for subscriber connections, used in turn (the ephemeral-port
    /// limit applies per source address).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5")]
    pub sources: Vec<IpAddr>,
    /// Worker processes holding the connections (each has its own open-file limit).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Runtime threads per process.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Connection handshakes in flight at once (over all processes).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// PID of the server, for RSS and CPU (default: the process listening on the URL's port).
    /// Repeat it (or a comma list) to sum RSS and CPU over several processes (cluster nodes,
    /// RabbitMQ).
    #[arg(long, alias = "hub-pid", value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl Common {
    pub fn target(&self) -> Result<Target> {
        let key =
            self.key.clone().unwrap_or_else(
                || {
                    if self.target == Proto::Pusher {
                        "app-key".into()
                    } else {
                        "dev".into()
                    }
                },
            );
        let url = self.url.first().cloned().unwrap_or_else(|| match self.target {
            Proto::Hub => "ws://127.0.0.1:8000/connection/websocket".into(),
            Proto::Ws => "ws://127.0.0.1:8101/".into(),
            Proto::Socketio => "ws://127.0.0.1:8102/socket.io/?EIO=4&transport=websocket".into(),
            Proto::Nats => "ws://127.0.0.1:8103".into(),
            Proto::Stomp => "ws://127.0.0.1:15674/ws".into(),
            Proto::Pusher => {
                format!("ws://127.0.0.1:6001/app/{key}?protocol=7&client=loadtest&version=1.0")
            }
        });
        let api = self.api.clone().unwrap_or_else(|| match self.target {
            Proto::Pusher => "http://127.0.0.1:6001".into(),
            _ => "http://127.0.0.1:8000".into(),
        });
        let name = self.name.clone().unwrap_or_else(|| format!("{:?}", self.target).to_lowercase());
        Ok(Target {
            proto: self.target,
            name,
            urls: if self.url.len() > 1 { self.url.clone() } else { Vec::new() },
            url,
            api,
            key,
            app_id: self.app_id.clone(),
            secret: self.secret.clone(),
            hub_publisher: self.hub_publisher,
            api_parallel: self.api_parallel,
            amqp_url: self.amqp_url.clone(),
            amqp_exchange: self.amqp_exchange.clone(),
            amqp_inflight: self.amqp_inflight,
            delta: self.delta,
        })
    }
}

#[derive(Args, Clone)]
pub struct IdleArgs {
    /// Connections to hold.
    #[arg(long, default_value_t = 18_000)]
    pub connections: usize,
    /// Seconds to wait after the last connect before reading RSS.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Seconds to hold the idle connections while measuring CPU.
    #[arg(long, default_value_t = 30)]
    pub hold: u64,
    /// Channels (connection i subscribes to channel i % channels; default: one each).
    #[arg(long)]
    pub channels: Option<u32>,
}

#[derive(Args, Clone)]
pub struct FanoutArgs {
    /// Subscriber connections.
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Publication rates to step through (publications per second, all channels together).
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,50,100")]
    pub rates: Vec<f64>,
    /// Seconds of publishing per rate.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Most publications per publish request / flush.
    #[arg(long, default_value_t = 500)]
    pub max_batch: usize,
    /// Go on with higher rates after one that was not kept up with.
    #[arg(long)]
    pub keep_going: bool,
}

#[derive(Args, Clone)]
pub struct StormArgs {
    /// Clients.
    #[arg(long, default_value_t = 15_000)]
    pub clients: usize,
    /// Channels (client i on channel i % channels); each needs history for recovery.
    #[arg(long, default_value_t = 100)]
    pub channels: u32,
    /// Publications per second during the whole storm (spread over the channels).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Seconds of publishing before the cut.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds of publishing after all are back.
    #[arg(long, default_value_t = 2.0)]
    pub after: f64,
    /// Ceiling of the first reconnect delay (each client draws from 0..this), ms.
    #[arg(long, default_value_t = 1000)]
    pub backoff_ms: u64,
    /// Give up waiting for everyone to be back after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Idle { common, .. }
        | Command::Connect { common, .. }
        | Command::Fanout { common, .. }
        | Command::Channels { common, .. }
        | Command::ReconnectStorm { common, .. } => common.threads,
        Command::Worker { spec } => serde_json::from_str::<worker::Spec>(spec).map(|s| s.threads).unwrap_or(1),
        Command::Compare { .. } => 1,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let load_at_start = report::loadavg();
    let (scenario, common, params, results) = match cli.command {
        Command::Worker { spec } => {
            let spec: worker::Spec = serde_json::from_str(&spec).context("worker spec")?;
            return worker::serve_stdio(spec).await;
        }
        Command::Compare { files, markdown, svg } => return report::compare(&files, markdown, svg),
        Command::Idle { common, args } => {
            let params = json!({"connections": args.connections, "channels": args.channels.unwrap_or(args.connections as u32), "settle": args.settle, "hold": args.hold});
            let results = scenario::idle(&common, &args).await?;
            ("idle", common, params, results)
        }
        Command::Connect { common, connections } => {
            let results = scenario::connect(&common, connections).await?;
            ("connect", common, json!({"connections": connections}), results)
        }
        Command::Fanout { common, args } => {
            let params = fanout_params(&args, 1);
            let results = scenario::fanout(&common, &args, 1).await?;
            ("fanout", common, params, results)
        }
        Command::Channels { common, args, channels } => {
            let channels = channels.unwrap_or(args.subscribers as u32);
            let params = fanout_params(&args, channels);
            let results = scenario::fanout(&common, &args, channels).await?;
            ("channels", common, params, results)
        }
        Command::ReconnectStorm { common, args } => {
            let params = json!({"clients": args.clients, "channels": args.channels, "rate": args.rate, "backoff_ms": args.backoff_ms});
            let results = scenario::storm(&common, &args).await?;
            ("reconnect-storm", common, params, results)
        }
    };
    let target = common.target()?;
    let mut params = params;
    params["processes"] = json!(common.processes);
    params["threads"] = json!(common.threads);
    params["sources"] = json!(common.sources);
    params["loadavg_at_start"] = json!(load_at_start);
    let report = json!({
        "scenario": scenario,
        "target": target.name,
        "proto": target.proto,
        "url": target.url,
        "urls": target.urls,
        "publisher": format!("{:?}", target.hub_publisher).to_lowercase(),
        "machine": report::machine(),
        "params": params,
        "results": results,
    });
    report::print(&report);
    if let Some(path) = &common.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}

fn fanout_params(args: &FanoutArgs, channels: u32) -> serde_json::Value {
    json!({
        "subscribers": args.subscribers,
        "channels": channels,
        "rates": args.rates,
        "duration": args.duration,
        "payload": args.payload,
        "max_batch": args.max_batch,
    })
}
