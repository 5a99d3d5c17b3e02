//! The AMQP publisher (`--hub-publisher amqp`): what a backend service does to
//! publish into a hub cluster. Each publication goes to the publish exchange
//! (`hub.publish` by default) with the channel as routing key and the JSON
//! payload as body, on a channel in confirm mode. Publishing is pipelined: the
//! confirms are awaited in order by a separate task, and at most `inflight`
//! publications are unconfirmed at once (the publisher waits for a slot).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties, PublisherConfirm};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the broker answered, over a whole publishing run.
#[derive(Debug, Clone, Default)]
pub struct Confirms {
    pub acked: u64,
    pub nacked: u64,
    pub first_error: Option<String>,
}

pub struct AmqpPublisher {
    connection: Connection,
    channel: lapin::Channel,
    exchange: String,
    confirms: mpsc::Sender<PublisherConfirm>,
    waiter: JoinHandle<Confirms>,
    /// Publications handed to the broker so far.
    pub sent: Arc<AtomicU64>,
}

impl AmqpPublisher {
    pub async fn connect(url: &str, exchange: &str, inflight: usize) -> Result<AmqpPublisher> {
        let properties = ConnectionProperties::default().with_connection_name("loadtest publisher".to_string().into());
        let connection =
            Connection::connect(url, properties).await.with_context(|| format!("AMQP connect {}", redact(url)))?;
        let channel = connection.create_channel().await.context("AMQP channel")?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.context("AMQP confirm mode")?;
        let (confirms, mut pending) = mpsc::channel::<PublisherConfirm>(inflight.max(1));
        let waiter = tokio::spawn(async move {
            let mut out = Confirms::default();
            while let Some(confirm) = pending.recv().await {
                match confirm.await {
                    Ok(confirmation) if !confirmation.is_nack() => out.acked += 1,
                    Ok(_) => {
                        out.nacked += 1;
                        out.first_error.get_or_insert_with(|| "nack".into());
                    }
                    Err(error) => {
                        out.nacked += 1;
                        out.first_error.get_or_insert_with(|| error.to_string());
                    }
                }
            }
            out
        });
        Ok(AmqpPublisher {
            connection,
            channel,
            exchange: exchange.to_string(),
            confirms,
            waiter,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Publishes each `(channel, payload)`; returns once they are all sent (not confirmed).
    pub async fn publish(&mut self, batch: &[(String, String)]) -> Result<()> {
        for (channel, payload) in batch {
            // Waits for a slot first, so at most `inflight` are unconfirmed.
            let permit = self.confirms.reserve().await.context("AMQP confirm waiter gone")?;
            let confirm = self
                .channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    channel.as_str().into(),
                    BasicPublishOptions::default(),
                    payload.as_bytes(),
                    BasicProperties::default().with_content_type("application/json".into()),
                )
                .await
                .context("AMQP publish")?;
            permit.send(confirm);
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Waits for every outstanding confirm and closes the connection.
    pub async fn finish(self) -> Result<Confirms> {
        drop(self.confirms);
        let confirms = self.waiter.await?;
        let _ = self.channel.close(200, "done".into()).await;
        let _ = self.connection.close(200, "done".into()).await;
        Ok(confirms)
    }
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((credentials, host)) => {
            let scheme = credentials.split_once("://").map_or("amqp", |(s, _)| s);
            format!("{scheme}://***@{host}")
        }
        None => url.to_string(),
    }
}
