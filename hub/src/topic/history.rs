//! A channel's stream: epoch, offsets and the retained publications.
//!
//! Guarantees: offsets increase by exactly one per publication within an epoch;
//! at most `size` publications are kept, none older than `ttl`; recovery from
//! a position answers `recovered: true` only when every publication after that
//! position is still held (and the epoch matches).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use protocol::codes::{self, ErrorCode};
use protocol::proto::Publication;
use rand::distr::{Alphanumeric, SampleString};

/// What a client asks of history (`limit`: 0 = position only, < 0 = everything).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    pub limit: i32,
    pub since: Option<(u64, String)>,
    pub reverse: bool,
}

/// Publications and the stream top.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryPage {
    pub publications: Vec<Publication>,
    pub epoch: String,
    pub offset: u64,
}

/// The outcome of a recovery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    pub publications: Vec<Publication>,
    pub recovered: bool,
}

#[derive(Debug)]
pub struct Stream {
    epoch: String,
    top: u64,
    size: usize,
    ttl: Duration,
    items: VecDeque<(Instant, Publication)>,
    /// Creation, then the last publication: a stream is kept at least `ttl`
    /// past its last activity (its epoch may already be known to clients).
    last_activity: Instant,
}

impl Stream {
    /// A new stream with a fresh random epoch.
    pub fn new(size: usize, ttl: Duration) -> Self {
        Stream {
            epoch: Alphanumeric.sample_string(&mut rand::rng(), 8),
            top: 0,
            size,
            ttl,
            items: VecDeque::new(),
            last_activity: Instant::now(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.size > 0 && !self.ttl.is_zero()
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub fn top(&self) -> u64 {
        self.top
    }

    /// Assigns the next offset to `publication` and keeps it; returns the offset.
    pub fn append(&mut self, mut publication: Publication, now: Instant) -> u64 {
        self.top += 1;
        publication.offset = self.top;
        self.last_activity = now;
        self.items.push_back((now, publication));
        while self.items.len() > self.size {
            self.items.pop_front();
        }
        self.top
    }

    /// Becomes a copy of an owner's stream (cluster mode): the owner's epoch,
    /// top and publications, within this stream's bounds; later ones are added
    /// with [`Stream::append_at`].
    pub fn replace(&mut self, epoch: String, top: u64, publications: Vec<Publication>, now: Instant) {
        self.epoch = epoch;
        self.top = top;
        self.last_activity = now;
        self.items = publications.into_iter().map(|p| (now, p)).collect();
        while self.items.len() > self.size {
            self.items.pop_front();
        }
    }

    /// Adds a publication sequenced elsewhere; false when it does not follow
    /// the top (a gap or a repeat), and then nothing changes.
    pub fn append_at(&mut self, mut publication: Publication, now: Instant) -> bool {
        // `delta` is the publisher's request for delta compression while a
        // delivery travels; what is kept (history, recovery) is plain.
        publication.delta = false;
        if publication.offset != self.top + 1 {
            return false;
        }
        self.top = publication.offset;
        self.last_activity = now;
        if self.enabled() {
            self.items.push_back((now, publication));
            while self.items.len() > self.size {
                self.items.pop_front();
            }
        }
        true
    }

    /// The whole stream when every publication since its start is still held
    /// (its first offset is 1), else nothing.
    pub fn complete(&mut self, now: Instant) -> Vec<Publication> {
        self.prune(now);
        match self.items.front() {
            Some((_, first)) if first.offset == 1 => self.items.iter().map(|(_, p)| p.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// Every retained publication, oldest first.
    pub fn publications(&mut self, now: Instant) -> Vec<Publication> {
        self.prune(now);
        self.items.iter().map(|(_, p)| p.clone()).collect()
    }

    /// Drops publications older than the TTL.
    pub fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.items.front() {
            if now.duration_since(*at) >= self.ttl {
                self.items.pop_front();
            } else {
                break;
            }
        }
    }

    /// True when the stream holds nothing and its last activity (creation or
    /// publication) is older than the TTL: a new epoch would lose nothing. A
    /// stream just created counts as active, since clients may already hold
    /// its epoch (they subscribed, or a replica synced it).
    pub fn expired(&mut self, now: Instant) -> bool {
        self.prune(now);
        self.items.is_empty() && now.duration_since(self.last_activity) >= self.ttl
    }

    /// Removes every retained publication (offsets and epoch stay).
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Publications after `offset` if the client's position is recoverable.
    ///
    /// An empty `epoch` stands for the stream's current one, as in Centrifugo's
    /// recovery (its `isStreamRecovered` compares epochs only when the client sent
    /// one): the SDKs' `since: {offset: 0, epoch: ''}` ("from the start") relies on it.
    pub fn recover(&mut self, offset: u64, epoch: &str, now: Instant) -> Recovery {
        self.prune(now);
        if !self.is_current_epoch(epoch) || offset > self.top {
            return Recovery { publications: Vec::new(), recovered: false };
        }
        let publications: Vec<Publication> =
            self.items.iter().filter(|(_, p)| p.offset > offset).map(|(_, p)| p.clone()).collect();
        let next_needed = offset + 1;
        let recovered = match publications.first() {
            Some(first) => first.offset == next_needed,
            None => offset == self.top,
        };
        Recovery { publications, recovered }
    }

    /// True when a client's `epoch` names this stream: equal to it, or empty, which
    /// means "the current one" wherever a position is compared (recovery, history
    /// `since`), as Centrifugo has it.
    pub fn is_current_epoch(&self, epoch: &str) -> bool {
        epoch.is_empty() || epoch == self.epoch
    }

    /// A history page as the `history` command and API method answer it.
    pub fn page(&mut self, query: &HistoryQuery, now: Instant) -> Result<HistoryPage, ErrorCode> {
        self.prune(now);
        let mut selected: Vec<&Publication> = match &query.since {
            Some((offset, epoch)) => {
                if !self.is_current_epoch(epoch) {
                    return Err(codes::UNRECOVERABLE_POSITION);
                }
                if query.reverse {
                    self.items.iter().rev().map(|(_, p)| p).filter(|p| p.offset < *offset).collect()
                } else {
                    self.items.iter().map(|(_, p)| p).filter(|p| p.offset > *offset).collect()
                }
            }
            None if query.reverse => self.items.iter().rev().map(|(_, p)| p).collect(),
            None => self.items.iter().map(|(_, p)| p).collect(),
        };
        if query.limit >= 0 {
            selected.truncate(query.limit as usize);
        }
        Ok(HistoryPage {
            publications: selected.into_iter().cloned().collect(),
            epoch: self.epoch.clone(),
            offset: self.top,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_with(n: u64, size: usize) -> (Stream, Instant) {
        let now = Instant::now();
        let mut stream = Stream::new(size, Duration::from_secs(60));
        for i in 1..=n {
            let data = bytes::Bytes::from(format!("{i}"));
            assert_eq!(stream.append(Publication { data, ..Default::default() }, now), i);
        }
        (stream, now)
    }

    fn offsets(publications: &[Publication]) -> Vec<u64> {
        publications.iter().map(|p| p.offset).collect()
    }

    #[test]
    fn a_delivery_asking_for_delta_is_kept_plain() {
        let (mut stream, now) = stream_with(0, 10);
        let asked = Publication { offset: 1, delta: true, ..Default::default() };
        assert!(stream.append_at(asked, now));
        assert!(!stream.publications(now)[0].delta, "history and recovery never show the request");
    }

    #[test]
    fn recovery_gives_exactly_the_missed_publications() {
        let (mut stream, now) = stream_with(5, 10);
        let epoch = stream.epoch().to_string();
        let recovery = stream.recover(2, &epoch, now);
        assert!(recovery.recovered);
        assert_eq!(offsets(&recovery.publications), vec![3, 4, 5]);
        assert_eq!(stream.recover(5, &epoch, now), Recovery { publications: vec![], recovered: true });
        assert!(!stream.recover(2, "other", now).recovered);
    }

    #[test]
    fn an_empty_epoch_is_the_current_one() {
        let (mut stream, now) = stream_with(3, 10);
        let recovery = stream.recover(0, "", now);
        assert!(recovery.recovered, "from the start, epoch \"\"");
        assert_eq!(offsets(&recovery.publications), vec![1, 2, 3]);
        let recovery = stream.recover(2, "", now);
        assert_eq!((offsets(&recovery.publications), recovery.recovered), (vec![3], true));
        assert_eq!(stream.recover(3, "", now), Recovery { publications: vec![], recovered: true });
        assert!(!stream.recover(4, "", now).recovered, "past the top: not this stream's position");
        let page =
            stream.page(&HistoryQuery { limit: -1, since: Some((1, String::new())), reverse: false }, now).unwrap();
        assert_eq!(offsets(&page.publications), vec![2, 3]);
        let (mut trimmed, now) = stream_with(5, 2);
        let recovery = trimmed.recover(0, "", now);
        assert!(!recovery.recovered, "offsets 1-3 are gone");
        assert_eq!(offsets(&recovery.publications), vec![4, 5]);
    }

    #[test]
    fn recovery_fails_when_publications_were_evicted_or_expired() {
        let (mut stream, now) = stream_with(5, 2);
        let epoch = stream.epoch().to_string();
        let recovery = stream.recover(1, &epoch, now);
        assert!(!recovery.recovered);
        assert_eq!(offsets(&recovery.publications), vec![4, 5]);
        let later = now + Duration::from_secs(61);
        let recovery = stream.recover(3, &epoch, later);
        assert_eq!(recovery, Recovery { publications: vec![], recovered: false });
        assert!(stream.expired(later));
    }

    #[test]
    fn a_new_stream_is_kept_for_its_ttl_before_it_expires() {
        let now = Instant::now();
        let mut stream = Stream::new(10, Duration::from_secs(60));
        assert!(!stream.expired(now + Duration::from_secs(10)), "created, never published: its epoch is in use");
        assert!(stream.expired(now + Duration::from_secs(61)));
    }

    #[test]
    fn a_stream_is_complete_only_while_it_holds_its_first_publication() {
        let (mut whole, now) = stream_with(3, 10);
        assert_eq!(offsets(&whole.complete(now)), vec![1, 2, 3]);
        let (mut trimmed, now) = stream_with(3, 2);
        assert_eq!(trimmed.complete(now), Vec::<Publication>::new());
    }

    #[test]
    fn pages_honour_limit_since_and_reverse() {
        let (mut stream, now) = stream_with(5, 10);
        let epoch = stream.epoch().to_string();
        let all = |q: HistoryQuery, s: &mut Stream| offsets(&s.page(&q, now).unwrap().publications);
        assert_eq!(all(HistoryQuery { limit: -1, ..Default::default() }, &mut stream), vec![1, 2, 3, 4, 5]);
        assert_eq!(all(HistoryQuery { limit: 0, ..Default::default() }, &mut stream), Vec::<u64>::new());
        assert_eq!(all(HistoryQuery { limit: 2, reverse: true, ..Default::default() }, &mut stream), vec![5, 4]);
        let since = Some((2, epoch.clone()));
        assert_eq!(all(HistoryQuery { limit: 2, since: since.clone(), reverse: false }, &mut stream), vec![3, 4]);
        assert_eq!(all(HistoryQuery { limit: -1, since, reverse: true }, &mut stream), vec![1]);
        let bad = HistoryQuery { limit: 1, since: Some((1, "x".into())), reverse: false };
        assert_eq!(stream.page(&bad, now), Err(codes::UNRECOVERABLE_POSITION));
        let page = stream.page(&HistoryQuery::default(), now).unwrap();
        assert_eq!((page.offset, page.epoch), (5, epoch));
    }
}
