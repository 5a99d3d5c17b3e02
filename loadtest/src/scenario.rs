//! The scenarios, run by the controller: idle, connect, fanout (one channel),
//! channels (one channel per subscriber), reconnect-storm.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::adapter::{channel_name, Publisher, Target};
use crate::fleet::{progress, Fleet};
use crate::payload;
use crate::procstat;
use crate::stats::Latency;
use crate::worker::Kind;
use crate::{Common, FanoutArgs, IdleArgs, StormArgs};

/// What the server process looks like now.
struct Probe {
    pid: Option<u32>,
    /// Every process measured (summed): the `--server-pid`s, or the one found.
    pids: Vec<u32>,
}

impl Probe {
    fn rss(&self) -> Option<u64> {
        self.pids.iter().map(|&p| procstat::rss_kib(p)).sum::<Option<u64>>().filter(|_| !self.pids.is_empty())
    }
    fn cpu(&self) -> Option<f64> {
        self.pids.iter().map(|&p| procstat::cpu_secs(p)).sum::<Option<f64>>().filter(|_| !self.pids.is_empty())
    }
}

fn probe(common: &Common) -> Probe {
    if !common.server_pid.is_empty() {
        return Probe { pid: common.server_pid.first().copied(), pids: common.server_pid.clone() };
    }
    let pid = common
        .server_pid
        .first()
        .copied()
        .or_else(|| common.target().ok().and_then(|t| port_of(&t.url)).and_then(procstat::pid_listening_on));
    if pid.is_none() {
        eprintln!("note: server pid unknown (pass --server-pid): no RSS/CPU figures");
    }
    Probe { pid, pids: pid.into_iter().collect() }
}

fn port_of(url: &str) -> Option<u16> {
    let rest = url.split("://").nth(1)?;
    let host = rest.split('/').next()?;
    host.rsplit(':').next()?.parse().ok()
}

fn cpu_percent(before: Option<f64>, after: Option<f64>, secs: f64) -> Option<f64> {
    Some(((after? - before?) / secs * 100.0 * 10.0).round() / 10.0)
}

/// Publication counters per channel, shared with the publishing task.
#[derive(Clone)]
pub struct Sequences(Arc<Mutex<Vec<u64>>>);

impl Sequences {
    pub fn new(channels: u32) -> Self {
        Sequences(Arc::new(Mutex::new(vec![0; channels as usize])))
    }
    pub fn snapshot(&self) -> Vec<u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn next(&self, channel: u32) -> u64 {
        let mut seqs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seqs[channel as usize] += 1;
        seqs[channel as usize]
    }
}

/// What a publishing run did.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub count: u64,
    pub secs: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// AMQP publisher: publications the broker acked / nacked, and the seconds spent
    /// after the last publication waiting for the outstanding confirms.
    pub acked: Option<u64>,
    pub nacked: Option<u64>,
    pub confirm_wait_secs: f64,
}

/// Publishes at `rate` per second, round-robin over the channels, until
/// `duration` passes or `stop` turns true. Each request carries what is due
/// (at most `max_batch`); a publisher that falls behind sends bigger batches.
pub async fn publish(
    target: Target,
    rate: f64,
    duration: Duration,
    seqs: Sequences,
    size: usize,
    max_batch: usize,
    mut stop: watch::Receiver<bool>,
) -> Result<Published> {
    let mut publisher = Publisher::connect(&target).await?;
    let channels = seqs.snapshot().len() as u32;
    let mut result = Published::default();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_channel = 0u32;
    let mut batch = Vec::with_capacity(max_batch);
    while started.elapsed() < duration && !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let due = (rate * started.elapsed().as_secs_f64()) as u64;
        while result.count < due {
            batch.clear();
            let n = (due - result.count).min(max_batch as u64);
            for _ in 0..n {
                let channel = next_channel;
                next_channel = (next_channel + 1) % channels;
                batch.push((channel_name(channel), payload::make(seqs.next(channel), channel, size)));
            }
            result.count += n;
            if let Err(error) = publisher.publish(&batch).await {
                result.errors += n;
                if result.first_error.is_none() {
                    result.first_error = Some(format!("{error:#}"));
                    eprintln!("publish error: {error:#}");
                }
                // A broken connection is replaced; the lost publications count as errors.
                tokio::time::sleep(Duration::from_millis(100)).await;
                publisher = Publisher::connect(&target).await?;
            }
        }
    }
    result.secs = started.elapsed().as_secs_f64();
    if let Publisher::Amqp(amqp) = publisher {
        let confirms = (*amqp).finish().await?;
        result.confirm_wait_secs = started.elapsed().as_secs_f64() - result.secs;
        result.acked = Some(confirms.acked);
        result.nacked = Some(confirms.nacked);
        if confirms.nacked > 0 && result.first_error.is_none() {
            eprintln!("AMQP: {} publications nacked: {:?}", confirms.nacked, confirms.first_error);
            result.first_error = confirms.first_error;
        }
    }
    Ok(result)
}

fn ready_json(ready: &crate::fleet::Ready) -> Value {
    json!({
        "connected": ready.connected,
        "failed": ready.failed,
        "first_error": ready.first_error,
        "secs": round(ready.secs, 3),
        "per_sec": round(ready.connected as f64 / ready.secs.max(1e-9), 0),
        "connect_latency": Latency::of(&ready.connect),
    })
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn check_ready(ready: &crate::fleet::Ready) -> Result<()> {
    if ready.connected == 0 {
        bail!("no connection succeeded: {}", ready.first_error.clone().unwrap_or_default());
    }
    if ready.failed > 0 {
        eprintln!(
            "warning: {} connections failed; first error: {}",
            ready.failed,
            ready.first_error.clone().unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn idle(common: &Common, args: &IdleArgs) -> Result<Value> {
    let probe = probe(common);
    let rss_before = probe.rss();
    let channels = args.channels.unwrap_or(args.connections as u32);
    let mut fleet = Fleet::start(common, Kind::Light, args.connections, channels, 0).await?;
    let ready = fleet.connect_all().await?;
    check_ready(&ready)?;
    fleet.next_within(Duration::from_secs(args.settle)).await?;
    let rss_after = probe.rss();
    let cpu0 = probe.cpu();
    let bar = progress(args.hold, "holding");
    let held = Instant::now();
    while held.elapsed().as_secs() < args.hold {
        fleet.next_within(Duration::from_millis(500)).await?;
        bar.set_position(held.elapsed().as_secs());
    }
    bar.finish_and_clear();
    let cpu = cpu_percent(cpu0, probe.cpu(), held.elapsed().as_secs_f64());
    let stats = fleet.stats();
    let (done, _) = fleet.finish(Vec::new()).await?;
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if ready.connected > 0 => {
            Some(round((a.saturating_sub(b)) as f64 / ready.connected as f64, 2))
        }
        _ => None,
    };
    Ok(json!({
        "connect": ready_json(&ready),
        "server_pid": probe.pid,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_connection_kib": per_conn,
        "idle_cpu_percent": cpu,
        "hold_secs": args.hold,
        "still_connected": stats.connected,
        "disconnects": done.disconnects,
        "received_while_idle": done.received,
    }))
}

pub async fn connect(common: &Common, connections: usize) -> Result<Value> {
    let probe = probe(common);
    let rss_before = probe.rss();
    let cpu0 = probe.cpu();
    let mut fleet = Fleet::start(common, Kind::Light, connections, connections as u32, 0).await?;
    let ready = fleet.connect_all().await?;
    check_ready(&ready)?;
    let cpu = cpu_percent(cpu0, probe.cpu(), ready.secs);
    let rss_after = probe.rss();
    fleet.finish(Vec::new()).await?;
    Ok(json!({
        "connect": ready_json(&ready),
        "server_cpu_percent": cpu,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
    }))
}

/// Fan-out (`channels == 1`) or many channels: steps of publication rates.
pub async fn fanout(common: &Common, args: &FanoutArgs, channels: u32) -> Result<Value> {
    let target = common.target()?;
    let probe = probe(common);
    let subscribers = args.subscribers;
    let channels = channels.clamp(1, subscribers as u32);
    // Subscribers of channel c: those i with i % channels == c.
    let subs_of = |c: u32| ((subscribers - c as usize).div_ceil(channels as usize)) as u64;
    let mut fleet = Fleet::start(common, Kind::Light, subscribers, channels, 0).await?;
    let ready = fleet.connect_all().await?;
    check_ready(&ready)?;
    let rss_connected = probe.rss();
    let seqs = Sequences::new(channels);
    let mut steps = Vec::new();
    let mut best_sustained: Option<Value> = None;
    for &rate in &args.rates {
        let (base, _) = fleet.snap().await?;
        let before = seqs.snapshot();
        let cpu0 = probe.cpu();
        let own0 = fleet.own_cpu();
        let (stop_tx, stop_rx) = watch::channel(false);
        let duration = Duration::from_secs_f64(args.duration);
        let task =
            tokio::spawn(publish(target.clone(), rate, duration, seqs.clone(), args.payload, args.max_batch, stop_rx));
        let bar = progress((rate * args.duration) as u64, &format!("{rate}/s"));
        while !task.is_finished() {
            fleet.next_within(Duration::from_millis(200)).await?;
            let sent: u64 = seqs.snapshot().iter().zip(&before).map(|(a, b)| a - b).sum();
            bar.set_position(sent);
            bar.set_message(format!("{rate}/s rx {}", fleet.stats().received - base));
        }
        bar.finish_and_clear();
        drop(stop_tx);
        let published = task.await??;
        let pub_secs = published.secs;
        let after = seqs.snapshot();
        let expected: u64 = (0..channels).map(|c| (after[c as usize] - before[c as usize]) * subs_of(c)).sum();
        let expected_now = expected * fleet.stats().connected / subscribers as u64;
        let drain_secs = fleet.drain(base + expected_now, Duration::from_secs(2), Duration::from_secs(15)).await?;
        let cpu = cpu_percent(cpu0, probe.cpu(), pub_secs + drain_secs);
        let loadgen_cpu = cpu_percent(own0, fleet.own_cpu(), pub_secs + drain_secs);
        let (received, latency) = fleet.snap().await?;
        let delivered = received - base;
        let stats = fleet.stats();
        let lat = Latency::of(&latency);
        let stats_connected = stats.connected;
        let step = json!({
            "rate_publications_per_sec": rate,
            "published": published.count,
            "publish_errors": published.errors,
            "publish_secs": round(pub_secs, 3),
            "published_per_sec": round(published.count as f64 / pub_secs, 0),
            "amqp_acked": published.acked,
            "amqp_nacked": published.nacked,
            "amqp_confirm_wait_secs": round(published.confirm_wait_secs, 3),
            "expected_deliveries": expected,
            "delivered": delivered,
            "missing": expected.saturating_sub(delivered),
            "deliveries_per_sec": round(delivered as f64 / pub_secs, 0),
            "target_deliveries_per_sec": round(expected as f64 / pub_secs, 0),
            "drain_secs": round(drain_secs, 2),
            "loadavg": crate::report::loadavg(),
            "latency": lat,
            "server_cpu_percent": cpu,
            "loadgen_cpu_percent": loadgen_cpu,
            "server_rss_kib": probe.rss(),
            "connected": stats_connected,
        });
        // The same rule as `loadtest compare` (report::sustained).
        let kept_up = crate::report::sustained(&step, args.duration, subscribers as u64);
        let mut step = step;
        step["kept_up"] = json!(kept_up);
        eprintln!(
            "  rate {rate:>8}/s  published {:>7.0}/s{}  delivered {delivered:>9}/{expected:<9} {:>10.0}/s  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  server cpu {}%  loadgen cpu {}%  {}",
            published.count as f64 / pub_secs,
            published
                .acked
                .map_or(String::new(), |a| format!(" (acked {a}, nacked {}, confirm wait {:.2}s)", published.nacked.unwrap_or(0), published.confirm_wait_secs)),
            delivered as f64 / pub_secs,
            lat.p50_ms,
            lat.p99_ms,
            lat.max_ms,
            cpu.map_or("?".to_string(), |c| c.to_string()),
            loadgen_cpu.map_or("?".to_string(), |c| c.to_string()),
            if kept_up { "kept up" } else { "FELL BEHIND" }
        );
        if kept_up {
            best_sustained = Some(step.clone());
        }
        steps.push(step);
        if !kept_up && !args.keep_going {
            break;
        }
        if stats.connected == 0 {
            break;
        }
    }
    let published = seqs.snapshot();
    let total_published: u64 = published.iter().sum();
    let (done, _) = fleet.finish(published).await?;
    Ok(json!({
        "subscribers": subscribers,
        "channels": channels,
        "payload_bytes": args.payload,
        "connect": ready_json(&ready),
        "rss_connected_kib": rss_connected,
        "steps": steps,
        "best_sustained": best_sustained,
        "totals": {
            "published": total_published,
            "received": done.received,
            "unique": done.unique,
            "lost": done.lost,
            "duplicates": done.duplicates,
            "gaps": done.gaps,
            "disconnects": done.disconnects,
        },
    }))
}

pub async fn storm(common: &Common, args: &StormArgs) -> Result<Value> {
    let target = common.target()?;
    if target.proto != crate::adapter::Proto::Hub {
        bail!("reconnect-storm needs recovery: only the hub target speaks it");
    }
    let probe = probe(common);
    let channels = args.channels.clamp(1, args.clients as u32);
    let mut fleet = Fleet::start(common, Kind::Client, args.clients, channels, args.backoff_ms).await?;
    let ready = fleet.connect_all().await?;
    check_ready(&ready)?;
    let seqs = Sequences::new(channels);
    let (stop_tx, stop_rx) = watch::channel(false);
    let publisher = tokio::spawn(publish(
        target.clone(),
        args.rate,
        Duration::from_secs(3600),
        seqs.clone(),
        args.payload,
        1000,
        stop_rx,
    ));
    fleet.next_within(Duration::from_secs_f64(args.warmup)).await?;
    let connected = fleet.stats().connected;
    let cpu0 = probe.cpu();
    let cut_at = Instant::now();
    fleet.send(crate::worker::Ctl::Cut);
    let bar = progress(connected, "recovering");
    let mut back_secs = None;
    while cut_at.elapsed().as_secs_f64() < args.timeout {
        fleet.next_within(Duration::from_millis(100)).await?;
        let stats = fleet.stats();
        bar.set_position(stats.recovered + stats.not_recovered);
        if stats.recovered + stats.not_recovered >= connected {
            back_secs = Some(cut_at.elapsed().as_secs_f64());
            break;
        }
    }
    bar.finish_and_clear();
    let cpu = cpu_percent(cpu0, probe.cpu(), cut_at.elapsed().as_secs_f64());
    let at_back = fleet.stats();
    fleet.next_within(Duration::from_secs_f64(args.after)).await?;
    let _ = stop_tx.send(true);
    let published = publisher.await??;
    let counts = seqs.snapshot();
    let subs_of = |c: u32| ((args.clients - c as usize).div_ceil(channels as usize)) as u64;
    let expected: u64 = (0..channels).map(|c| counts[c as usize] * subs_of(c)).sum();
    fleet.drain(expected, Duration::from_secs(2), Duration::from_secs(15)).await?;
    let (_, latency) = fleet.snap().await?;
    let (done, recovery) = fleet.finish(counts).await?;
    Ok(json!({
        "clients": args.clients,
        "channels": channels,
        "publish_rate": args.rate,
        "connect": ready_json(&ready),
        "cut_connected": connected,
        "all_back_secs": back_secs.map(|s| round(s, 3)),
        "recovered": at_back.recovered,
        "not_recovered": at_back.not_recovered,
        "recovery_latency": Latency::of(&recovery),
        "server_cpu_percent_during_storm": cpu,
        "published": published.count,
        "publish_errors": published.errors,
        "expected_deliveries": expected,
        "received": done.received,
        "unique": done.unique,
        "lost": done.lost,
        "duplicates": done.duplicates,
        "gaps": done.gaps,
        "disconnects": done.disconnects,
        "delivery_latency": Latency::of(&latency),
    }))
}
