//! The controller's view of its workers: start them (in-process or as child
//! processes), broadcast control messages, and gather their events.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::stats::{histogram, Hist};
use crate::worker::{self, Ctl, Done, Ev, Kind, Link, Spec, Stats};
use crate::Common;

pub struct Fleet {
    links: Vec<Link>,
    events: mpsc::UnboundedReceiver<(usize, Ev)>,
    stats: Vec<Stats>,
    pub total: usize,
}

/// The outcome of the connect phase.
pub struct Ready {
    pub connected: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    pub connect: Histogram<u64>,
}

pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<14} [{bar:30}] {pos}/{len} {elapsed_precise} {per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

impl Fleet {
    /// Splits `total` connections over `common.processes` workers and starts them.
    pub async fn start(common: &Common, kind: Kind, total: usize, channels: u32, backoff_ms: u64) -> Result<Fleet> {
        // Worker events (control plane, bounded per run: see `worker::spawn_local`).
        let (tx, events) = mpsc::unbounded_channel();
        let workers = common.processes.max(1);
        let mut links = Vec::new();
        let target = common.target()?;
        for id in 0..workers {
            let first = total * id / workers;
            let count = total * (id + 1) / workers - first;
            let spec = Spec {
                target: target.clone(),
                kind,
                first,
                count,
                channels,
                sources: common.sources.clone(),
                concurrency: (common.concurrency / workers).max(1),
                backoff_ms,
                threads: common.threads,
            };
            let link = if workers == 1 {
                worker::spawn_local(id, spec, tx.clone())
            } else {
                worker::spawn_process(id, spec, tx.clone())?
            };
            links.push(link);
        }
        let mut fleet = Fleet { stats: vec![Stats::default(); workers], links, events, total };
        let mut hello = 0;
        while hello < workers {
            if let (_, Ev::Hello) = fleet.next().await? {
                hello += 1;
            }
        }
        Ok(fleet)
    }

    /// CPU seconds used so far by the load generator (this process and its workers).
    pub fn own_cpu(&self) -> Option<f64> {
        let mut total = crate::procstat::cpu_secs(std::process::id())?;
        for pid in self.links.iter().filter_map(|l| l.pid) {
            total += crate::procstat::cpu_secs(pid).unwrap_or(0.0);
        }
        Some(total)
    }

    pub fn send(&self, ctl: Ctl) {
        for link in &self.links {
            let _ = link.ctl.send(ctl.clone());
        }
    }

    /// The next event that is not a `Stats` (those only update the totals), or
    /// `None` after `wait` with nothing else.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<(usize, Ev)>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => return Ok(None),
                Ok(None) => bail!("every worker is gone"),
                Ok(Some(event)) => event,
            };
            match event {
                (id, Ev::Stats(stats)) => self.stats[id] = stats,
                other => return Ok(Some(other)),
            }
        }
    }

    pub async fn next(&mut self) -> Result<(usize, Ev)> {
        loop {
            if let Some(event) = self.next_within(Duration::from_secs(3600)).await? {
                return Ok(event);
            }
        }
    }

    /// Totals of the latest stats of every worker.
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for s in &self.stats {
            total.connected += s.connected;
            total.received += s.received;
            total.disconnects += s.disconnects;
            total.recovered += s.recovered;
            total.not_recovered += s.not_recovered;
        }
        total
    }

    /// Sends `Go` and waits until every worker has tried all its connections.
    pub async fn connect_all(&mut self) -> Result<Ready> {
        let bar = progress(self.total as u64, "connecting");
        let started = Instant::now();
        self.send(Ctl::Go);
        let mut ready = Ready { connected: 0, failed: 0, first_error: None, secs: 0.0, connect: histogram() };
        let mut pending = self.links.len();
        while pending > 0 {
            match self.next_within(Duration::from_millis(200)).await? {
                Some((_, Ev::Ready { connected, failed, first_error, connect })) => {
                    pending -= 1;
                    ready.connected += connected;
                    ready.failed += failed;
                    if ready.first_error.is_none() {
                        ready.first_error = first_error;
                    }
                    connect.add_to(&mut ready.connect);
                }
                Some(_) => {}
                None => {}
            }
            bar.set_position(self.stats().connected.min(self.total as u64));
        }
        ready.secs = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        Ok(ready)
    }

    /// Latency recorded since the last snap, and the total received so far.
    pub async fn snap(&mut self) -> Result<(u64, Histogram<u64>)> {
        self.send(Ctl::Snap);
        let mut latency = histogram();
        let mut received = 0;
        let mut pending = self.links.len();
        while pending > 0 {
            if let (_, Ev::Snap { received: r, latency: l }) = self.next().await? {
                pending -= 1;
                received += r;
                l.add_to(&mut latency);
            }
        }
        Ok((received, latency))
    }

    /// Waits until `received` reaches `expected`, or stops growing for
    /// `quiet`, or `max` passes. Returns the seconds waited.
    pub async fn drain(&mut self, expected: u64, quiet: Duration, max: Duration) -> Result<f64> {
        let started = Instant::now();
        let mut last = self.stats().received;
        let mut last_change = Instant::now();
        while started.elapsed() < max {
            self.next_within(Duration::from_millis(100)).await?;
            let now = self.stats().received;
            if now >= expected {
                break;
            }
            if now != last {
                last = now;
                last_change = Instant::now();
            } else if last_change.elapsed() >= quiet {
                break;
            }
        }
        Ok(started.elapsed().as_secs_f64())
    }

    /// Ends the run: workers close their connections and report.
    pub async fn finish(&mut self, published: Vec<u64>) -> Result<(Done, Histogram<u64>)> {
        self.send(Ctl::Finish(published));
        let mut total = Done::default();
        let mut recovery = histogram();
        let mut pending = self.links.len();
        while pending > 0 {
            if let (_, Ev::Done(done)) = self.next().await? {
                pending -= 1;
                total.received += done.received;
                total.unique += done.unique;
                total.lost += done.lost;
                total.duplicates += done.duplicates;
                total.gaps += done.gaps;
                total.disconnects += done.disconnects;
                done.recovery.add_to(&mut recovery);
            }
        }
        total.recovery = Hist::default();
        Ok((total, recovery))
    }
}
