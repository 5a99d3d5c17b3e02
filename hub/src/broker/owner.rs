//! The owner's side of a shard (cluster mode): one sequencer per channel.
//!
//! The node that is the active consumer of a shard queue owns the channels the
//! publish exchange hashes onto it. For each it keeps a [`Stream`]: a random
//! epoch created when the node took the channel over, offsets increasing by
//! one, bounded history, idempotency keys. Losing the shard (a consumer error,
//! RabbitMQ restarting) forgets everything, so a later owner — this node or
//! another — starts a new epoch and clients learn `recovered: false` instead
//! of meeting silent gaps. Pure logic: the AMQP plumbing is in `amqp.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::codes::ErrorCode;
use protocol::proto::Publication;

use super::{Reply, WireInfo, WirePublication};
use crate::channel::Channel;
use crate::config::Config;
use crate::topic::history::{HistoryQuery, Stream};

struct Owned {
    stream: Stream,
    idempotency: HashMap<String, (Instant, u64)>,
}

pub struct ShardOwner {
    config: Arc<Config>,
    channels: HashMap<String, Owned>,
}

/// The outcome of a publish at the owner.
pub struct Sequenced {
    pub epoch: String,
    pub publication: WirePublication,
    /// A repeat of an idempotency key: nothing new to deliver.
    pub duplicate: bool,
}

impl ShardOwner {
    pub fn new(config: Arc<Config>) -> Self {
        ShardOwner { config, channels: HashMap::new() }
    }

    /// Ownership may have been lost: forget every stream.
    pub fn reset(&mut self) {
        self.channels.clear();
    }

    fn owned(&mut self, channel: &str) -> Result<&mut Owned, ErrorCode> {
        if !self.channels.contains_key(channel) {
            let (_, options) = Channel::parse(channel, &self.config)?;
            let stream = Stream::new(options.history_size, options.history_ttl);
            self.channels.insert(channel.to_string(), Owned { stream, idempotency: HashMap::new() });
        }
        // Inserted just above when missing.
        Ok(self.channels.get_mut(channel).expect("stream exists"))
    }

    pub fn publish(
        &mut self,
        channel: &str,
        data: Vec<u8>,
        info: Option<WireInfo>,
        tags: std::collections::BTreeMap<String, String>,
        idempotency_key: Option<String>,
        now: Instant,
    ) -> Result<Sequenced, ErrorCode> {
        let window = self.config.idempotency_window;
        let limit = self.config.client_outbox_bytes;
        let owned = self.owned(channel)?;
        if let Some(key) = &idempotency_key {
            if let Some((at, offset)) = owned.idempotency.get(key) {
                if now.duration_since(*at) < window {
                    let publication = WirePublication {
                        offset: *offset,
                        data: Vec::new(),
                        info: None,
                        tags: Default::default(),
                        delta: false,
                    };
                    return Ok(Sequenced { epoch: epoch_of(&owned.stream), publication, duplicate: true });
                }
            }
        }
        let proto = Publication { data: data.into(), info: info.map(Into::into), tags, ..Default::default() };
        // Also AMQP ingest: what no client could be sent is refused here.
        crate::limits::check_publication(channel, &proto, limit)?;
        let offset = if owned.stream.enabled() { owned.stream.append(proto.clone(), now) } else { 0 };
        if let Some(key) = idempotency_key {
            owned.idempotency.retain(|_, (at, _)| now.duration_since(*at) < window);
            owned.idempotency.insert(key, (now, offset));
        }
        let mut publication = WirePublication::from_proto(&proto);
        publication.offset = offset;
        Ok(Sequenced { epoch: epoch_of(&owned.stream), publication, duplicate: false })
    }

    /// The whole stream, for a node's replica to start from.
    pub fn sync(&mut self, channel: &str, now: Instant) -> Result<Reply, ErrorCode> {
        let owned = self.owned(channel)?;
        let publications = owned.stream.publications(now).iter().map(WirePublication::from_proto).collect();
        Ok(Reply::Stream { epoch: epoch_of(&owned.stream), top: owned.stream.top(), publications })
    }

    pub fn history(&mut self, channel: &str, query: &HistoryQuery, now: Instant) -> Result<Reply, ErrorCode> {
        let owned = self.owned(channel)?;
        let page = owned.stream.page(query, now)?;
        let publications = page.publications.iter().map(WirePublication::from_proto).collect();
        Ok(Reply::History { epoch: page.epoch, top: page.offset, publications })
    }

    pub fn history_remove(&mut self, channel: &str) -> Result<Reply, ErrorCode> {
        self.owned(channel)?.stream.clear();
        Ok(Reply::Done)
    }

    /// Forgets streams with nothing left (history expired, keys expired).
    pub fn prune(&mut self, now: Instant) {
        let window = self.config.idempotency_window.max(Duration::from_secs(1));
        self.channels.retain(|_, owned| {
            owned.idempotency.retain(|_, (at, _)| now.duration_since(*at) < window);
            let idle = !owned.stream.enabled() || owned.stream.expired(now);
            !(idle && owned.idempotency.is_empty())
        });
    }
}

fn epoch_of(stream: &Stream) -> String {
    if stream.enabled() {
        stream.epoch().to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChannelOptions;

    fn owner() -> ShardOwner {
        let options = ChannelOptions { history_size: 10, history_ttl: Duration::from_secs(60), ..Default::default() };
        ShardOwner::new(Arc::new(Config { channel: options, ..Config::default() }))
    }

    #[test]
    fn sequences_dedups_and_forgets_on_reset() {
        let mut owner = owner();
        let now = Instant::now();
        let a = owner.publish("news", b"1".to_vec(), None, Default::default(), Some("k".into()), now).unwrap();
        let b = owner.publish("news", b"2".to_vec(), None, Default::default(), None, now).unwrap();
        assert_eq!((a.publication.offset, b.publication.offset), (1, 2));
        assert_eq!(a.epoch, b.epoch);
        let again = owner.publish("news", b"1".to_vec(), None, Default::default(), Some("k".into()), now).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.publication.offset, 1);
        match owner.sync("news", now).unwrap() {
            Reply::Stream { top, publications, .. } => assert_eq!((top, publications.len()), (2, 2)),
            other => panic!("{other:?}"),
        }
        owner.reset();
        let c = owner.publish("news", b"3".to_vec(), None, Default::default(), None, now).unwrap();
        assert_eq!(c.publication.offset, 1);
        assert_ne!(c.epoch, a.epoch);
        assert!(owner.publish("nope:x", b"1".to_vec(), None, Default::default(), None, now).is_err());
    }

    #[test]
    fn amqp_ingest_refuses_what_no_client_could_be_sent_and_accepts_empty_data() {
        let options = ChannelOptions { history_size: 10, history_ttl: Duration::from_secs(60), ..Default::default() };
        let config = Config { client_outbox_bytes: 1024, channel: options, ..Config::default() };
        let mut owner = ShardOwner::new(Arc::new(config));
        let now = Instant::now();
        // 300 control bytes: 1,800 bytes once a JSON string.
        let refused = owner.publish("news", vec![1u8; 300], None, Default::default(), None, now).err();
        assert_eq!(refused, Some(crate::limits::PUBLICATION_TOO_LARGE));
        let empty = owner.publish("news", Vec::new(), None, Default::default(), None, now).ok();
        assert_eq!(empty.map(|s| s.publication.offset), Some(1), "nothing was sequenced for the refused one");
    }
}
