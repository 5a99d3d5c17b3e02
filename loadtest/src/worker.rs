//! Workers: a group of subscriber connections driven by a controller.
//!
//! A worker runs in the controller's process or as a child process (`loadtest
//! worker --spec JSON`, one JSON line per message on stdin/stdout) so that the
//! load spreads over several processes' open-file limits. The controller
//! speaks the same [`Ctl`]/[`Ev`] messages either way.
//!
//! Life of a worker: `Hello` → (Go) → connect all, with at most `concurrency`
//! handshakes in flight → `Ready` → `Stats` every 500 ms → (`Snap`: latency
//! since the last snap) → (`Cut`: every client drops its connection and
//! recovers) → (`Finish` with the publications per channel) → `Done` with
//! losses and duplicates counted per connection.
//!
//! Loss accounting: payloads carry a per-channel sequence number from 1; each
//! connection counts unique in-order receipts, duplicates (a number at or
//! below the last one) and gaps. At `Finish`, lost = published on its channel
//! − unique received.

use std::net::IpAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::adapter::{self, channel_name, Target};
use crate::delta::DeltaDecoder;
use crate::payload::{self, Scanner};
use crate::stats::{Hist, Sharded};

/// How a worker's connections are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Minimal protocol loop per connection (any peer); no reconnect.
    Light,
    /// `hub_client` connections: reconnect and resubscribe with recovery.
    Client,
}

/// What one worker does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub target: Target,
    pub kind: Kind,
    /// Global index of the first connection and how many.
    pub first: usize,
    pub count: usize,
    /// Connection i subscribes to channel i % channels.
    pub channels: u32,
    /// Connection i binds sources[i % len] (empty: the kernel chooses).
    pub sources: Vec<IpAddr>,
    pub concurrency: usize,
    /// Reconnect backoff ceiling of client connections (first attempt), ms.
    pub backoff_ms: u64,
    pub threads: usize,
}

/// Controller → worker. `Ctl` and `Ev` travel on unbounded channels: they are the
/// control plane, a handful of messages per step and a stats report every 500 ms per
/// worker, never one per delivery, so what is queued stays small for a whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ctl {
    Go,
    Snap,
    Cut,
    Finish(Vec<u64>),
}

/// Worker → controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ev {
    Hello,
    Ready { connected: u64, failed: u64, first_error: Option<String>, connect: Hist },
    Stats(Stats),
    Snap { received: u64, latency: Hist },
    Done(Done),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub connected: u64,
    pub received: u64,
    pub disconnects: u64,
    /// After a cut: subscriptions renewed with `recovered: true` / `false`.
    pub recovered: u64,
    pub not_recovered: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Done {
    pub received: u64,
    pub unique: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub disconnects: u64,
    /// Time from the cut to each client's renewed subscription (µs).
    pub recovery: Hist,
}

/// Shared by a worker's connections.
#[derive(Default)]
struct Shared {
    connected: AtomicU64,
    received: AtomicU64,
    disconnects: AtomicU64,
    recovered: AtomicU64,
    not_recovered: AtomicU64,
    latency: Sharded,
    connect: Sharded,
    recovery: Sharded,
    /// (channel, unique, duplicates, gaps) of each finished connection.
    results: Mutex<Vec<(u32, u64, u64, u64)>>,
    cut_at: Mutex<Option<Instant>>,
}

/// Sequence accounting of one connection.
#[derive(Default)]
struct Seq {
    next: u64,
    unique: u64,
    duplicates: u64,
    gaps: u64,
}

impl Seq {
    fn see(&mut self, seq: u64) {
        if self.next == 0 {
            self.next = 1;
        }
        if seq >= self.next {
            self.gaps += seq - self.next;
            self.unique += 1;
            self.next = seq + 1;
        } else {
            self.duplicates += 1;
        }
    }
}

/// Runs one worker until `Finish`.
pub async fn run(spec: Spec, mut ctl: mpsc::UnboundedReceiver<Ctl>, ev: mpsc::UnboundedSender<Ev>) -> Result<()> {
    let _ = ev.send(Ev::Hello);
    loop {
        match ctl.recv().await {
            Some(Ctl::Go) => break,
            Some(_) => continue,
            None => return Ok(()),
        }
    }
    let shared = Arc::new(Shared::default());
    let (finish_tx, finish_rx) = watch::channel(false);
    let spec = Arc::new(spec);
    let limit = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    // Unbounded but bounded by construction: one message per client of this
    // worker (`spec.count`), each sent once when the client is up or failed.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let mut tasks = JoinSet::new();
    let mut clients = Vec::new();
    for i in 0..spec.count {
        let index = spec.first + i;
        let channel = (index % spec.channels.max(1) as usize) as u32;
        let source = (!spec.sources.is_empty()).then(|| spec.sources[index % spec.sources.len()]);
        let permit = limit.clone().acquire_owned().await.context("semaphore closed")?;
        match spec.kind {
            Kind::Light => {
                let (spec, shared, ready, finish) = (spec.clone(), shared.clone(), ready_tx.clone(), finish_rx.clone());
                tasks.spawn(async move { light(spec, index, channel, source, shared, ready, finish, permit).await });
            }
            Kind::Client => {
                let (client, task) =
                    client(&spec, index, channel, source, shared.clone(), ready_tx.clone(), finish_rx.clone(), permit);
                clients.push(client);
                tasks.spawn(task);
            }
        }
    }
    drop(ready_tx);
    let (mut connected, mut failed, mut first_error) = (0u64, 0u64, None);
    while connected + failed < spec.count as u64 {
        match ready_rx.recv().await {
            Some(Ok(())) => connected += 1,
            Some(Err(error)) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
            None => break,
        }
    }
    let connect = Hist::from_histogram(&shared.connect.take());
    let _ = ev.send(Ev::Ready { connected, failed, first_error, connect });
    let stats_task = {
        let (shared, ev) = (shared.clone(), ev.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let stats = Stats {
                    connected: shared.connected.load(Ordering::Relaxed),
                    received: shared.received.load(Ordering::Relaxed),
                    disconnects: shared.disconnects.load(Ordering::Relaxed),
                    recovered: shared.recovered.load(Ordering::Relaxed),
                    not_recovered: shared.not_recovered.load(Ordering::Relaxed),
                };
                if ev.send(Ev::Stats(stats)).is_err() {
                    return;
                }
            }
        })
    };
    let published = loop {
        match ctl.recv().await {
            Some(Ctl::Snap) => {
                let latency = Hist::from_histogram(&shared.latency.take());
                let _ = ev.send(Ev::Snap { received: shared.received.load(Ordering::Relaxed), latency });
            }
            Some(Ctl::Cut) => {
                *shared.cut_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                for client in &clients {
                    client.reconnect();
                }
            }
            Some(Ctl::Finish(published)) => break published,
            Some(Ctl::Go) => {}
            None => break Vec::new(),
        }
    };
    let _ = finish_tx.send(true);
    drop(clients);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(20), drain).await.is_err() {
        tasks.abort_all();
    }
    stats_task.abort();
    let results = std::mem::take(&mut *shared.results.lock().unwrap_or_else(|e| e.into_inner()));
    let mut done = Done {
        received: shared.received.load(Ordering::Relaxed),
        disconnects: shared.disconnects.load(Ordering::Relaxed),
        recovery: Hist::from_histogram(&shared.recovery.take()),
        ..Done::default()
    };
    for (channel, unique, duplicates, gaps) in results {
        let sent = published.get(channel as usize).copied().unwrap_or(0);
        done.unique += unique;
        done.lost += sent.saturating_sub(unique);
        done.duplicates += duplicates;
        done.gaps += gaps;
    }
    let _ = ev.send(Ev::Done(done));
    Ok(())
}

/// Records the payloads of one frame: counts, latency, sequence.
fn record(shared: &Shared, slot: usize, scanner: &mut Scanner, seq: &mut Seq, data: &[u8], scratch: &mut Vec<u64>) {
    let now = payload::now_us();
    scratch.clear();
    scanner.scan(data, |sample| {
        scratch.push(now.saturating_sub(sample.sent_us));
        seq.see(sample.seq);
    });
    if !scratch.is_empty() {
        shared.received.fetch_add(scratch.len() as u64, Ordering::Relaxed);
        shared.latency.record_all(slot, scratch);
    }
}

#[allow(clippy::too_many_arguments)]
async fn light(
    spec: Arc<Spec>,
    index: usize,
    channel: u32,
    source: Option<IpAddr>,
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    mut finish: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let target = &spec.target;
    let ws = match adapter::subscribe(target, target.url_for(index), source, &channel_name(channel)).await {
        Ok(ws) => ws,
        Err(error) => {
            let _ = ready.send(Err(format!("{error:#}")));
            return;
        }
    };
    shared.connect.record(index, started.elapsed().as_micros() as u64);
    shared.connected.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    let _ = ready.send(Ok(()));
    drop(ready);
    let (mut sink, mut stream) = ws.split();
    let (mut scanner, mut seq, mut scratch) = (Scanner::default(), Seq::default(), Vec::new());
    let mut deltas = target.delta.then(DeltaDecoder::default);
    let proto = target.proto;
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    let data: &[u8] = match &message {
                        Message::Text(text) => text.as_bytes(),
                        Message::Binary(bytes) => bytes,
                        _ => &[],
                    };
                    match deltas.as_mut().map(|d| d.decode(data)) {
                        None => record(&shared, index, &mut scanner, &mut seq, data, &mut scratch),
                        Some(Ok(payloads)) => record(&shared, index, &mut scanner, &mut seq, payloads, &mut scratch),
                        Some(Err(error)) => {
                            eprintln!("subscriber {index}: a delta did not apply ({error}); connection dropped");
                            shared.disconnects.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                    if let Some(answer) = adapter::heartbeat_answer(proto, data) {
                        if sink.send(answer).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    shared.disconnects.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(Ok(_)) => {}
            },
            _ = finish.changed() => {
                let _ = sink.close().await;
                break;
            }
        }
    }
    shared.connected.fetch_sub(1, Ordering::Relaxed);
    shared.results.lock().unwrap_or_else(|e| e.into_inner()).push((channel, seq.unique, seq.duplicates, seq.gaps));
}

/// A `hub_client` connection and the task consuming its events.
#[allow(clippy::too_many_arguments)]
fn client(
    spec: &Spec,
    index: usize,
    channel: u32,
    source: Option<IpAddr>,
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    mut finish: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> (hub_client::Client, impl std::future::Future<Output = ()> + Send + 'static) {
    let config = hub_client::Config {
        local_addr: source,
        backoff_min: Duration::from_millis(spec.backoff_ms),
        backoff_max: Duration::from_secs(5),
        event_capacity: 256,
        request_timeout: Duration::from_secs(30),
        ..hub_client::Config::new(spec.target.url_for(index).to_string())
    };
    let (client, mut events) = hub_client::Client::connect(config);
    let handle = client.clone();
    let name = channel_name(channel);
    let task = async move {
        let started = Instant::now();
        let options = hub_client::SubscribeOptions { recoverable: true, ..Default::default() };
        match client.subscribe(&name, options).await {
            Ok(_) => {
                shared.connect.record(index, started.elapsed().as_micros() as u64);
                shared.connected.fetch_add(1, Ordering::Relaxed);
                let _ = ready.send(Ok(()));
            }
            Err(error) => {
                let _ = ready.send(Err(error.to_string()));
                client.close().await;
                return;
            }
        }
        drop(permit);
        drop(ready);
        let (mut scanner, mut seq, mut scratch) = (Scanner::default(), Seq::default(), Vec::new());
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(hub_client::Event::Publication { data, .. }) => {
                        record(&shared, index, &mut scanner, &mut seq, &data, &mut scratch);
                    }
                    Some(hub_client::Event::Subscribed { was_recovering: true, recovered, .. }) => {
                        let cut_at = *shared.cut_at.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(cut_at) = cut_at {
                            shared.recovery.record(index, cut_at.elapsed().as_micros() as u64);
                        }
                        let counter = if recovered { &shared.recovered } else { &shared.not_recovered };
                        counter.fetch_add(1, Ordering::Relaxed);
                        shared.connected.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(hub_client::Event::Disconnected { .. }) => {
                        shared.disconnects.fetch_add(1, Ordering::Relaxed);
                        shared.connected.fetch_sub(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = finish.changed() => break,
            }
        }
        client.close().await;
        shared.results.lock().unwrap_or_else(|e| e.into_inner()).push((channel, seq.unique, seq.duplicates, seq.gaps));
    };
    (handle, task)
}

/// The controller's end of a worker.
pub struct Link {
    pub ctl: mpsc::UnboundedSender<Ctl>,
    /// The worker's process, when it runs in its own.
    pub pid: Option<u32>,
}

/// Starts a worker in this process; its events go to `events` tagged with `id`.
pub fn spawn_local(id: usize, spec: Spec, events: mpsc::UnboundedSender<(usize, Ev)>) -> Link {
    // Control plane only, never per delivery: a handful of `Ctl` commands per
    // run, and per worker Hello/Ready/Done once plus one `Stats` per tick and
    // one `Snap` per `Ctl::Snap` — a count fixed by the scenario's duration,
    // drained by the controller as they come.
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        if let Err(error) = run(spec, ctl_rx, ev_tx).await {
            eprintln!("worker {id}: {error:#}");
        }
    });
    tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            if events.send((id, ev)).is_err() {
                return;
            }
        }
    });
    Link { ctl: ctl_tx, pid: None }
}

/// Starts a worker as a child process of this executable.
pub fn spawn_process(id: usize, spec: Spec, events: mpsc::UnboundedSender<(usize, Ev)>) -> Result<Link> {
    let exe = std::env::current_exe().context("own executable")?;
    let mut child = tokio::process::Command::new(exe)
        .arg("worker")
        .arg("--spec")
        .arg(serde_json::to_string(&spec)?)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawn worker process")?;
    let pid = child.id();
    let mut stdin = child.stdin.take().context("worker stdin")?;
    let stdout = child.stdout.take().context("worker stdout")?;
    // Control plane, bounded per run (see `spawn_local`).
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<Ctl>();
    tokio::spawn(async move {
        while let Some(ctl) = ctl_rx.recv().await {
            let mut line = serde_json::to_vec(&ctl).expect("Ctl serializes");
            line.push(b'\n');
            if stdin.write_all(&line).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Ev>(&line) {
                Ok(ev) => {
                    if events.send((id, ev)).is_err() {
                        break;
                    }
                }
                Err(error) => eprintln!("worker {id}: bad line ({error}): {line}"),
            }
        }
        let _ = child.wait().await;
    });
    Ok(Link { ctl: ctl_tx, pid })
}

/// The child side: stdin lines → [`Ctl`], [`Ev`] → stdout lines.
pub async fn serve_stdio(spec: Spec) -> Result<()> {
    // Control plane, bounded per run (see `spawn_local`).
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Ctl>(&line) {
                Ok(ctl) => {
                    if ctl_tx.send(ctl).is_err() {
                        return;
                    }
                }
                Err(error) => eprintln!("worker: bad control line ({error}): {line}"),
            }
        }
    });
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(ev) = ev_rx.recv().await {
            let mut line = serde_json::to_vec(&ev).expect("Ev serializes");
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                return;
            }
        }
    });
    run(spec, ctl_rx, ev_tx).await?;
    let _ = writer.await;
    Ok(())
}
