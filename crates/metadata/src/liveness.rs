//! Broker liveness as the active controller sees it, and which brokers to fence.
//!
//! A broker is alive while it has been in contact (registered or heartbeated) within the
//! session timeout. Contacts are only meaningful within one controller term: a controller that
//! has just been elected knows nothing of the heartbeats its predecessor saw, so it gives every
//! broker a full session from the start of its term, as Kafka's heartbeat manager does.
//!
//! The decision is [`silent_brokers`], a pure function of the image, the contacts, the time and
//! the session timeout; the manager only feeds it and commits what it returns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::image::MetadataImage;

/// When this controller last heard from each broker, within its current term.
#[derive(Debug, Clone)]
pub struct BrokerContacts {
    /// The controller term the contacts belong to; `None` while this node is not active.
    term: Option<u64>,
    /// When that term began here: the session of a broker not heard from since starts then.
    term_started: Instant,
    /// Last registration or heartbeat per broker during the term.
    last_contact: HashMap<i32, Instant>,
}

impl BrokerContacts {
    /// No term yet, no contacts.
    pub fn new(now: Instant) -> BrokerContacts {
        BrokerContacts {
            term: None,
            term_started: now,
            last_contact: HashMap::new(),
        }
    }

    /// Moves to `term` (`None`: not the active controller), forgetting the contacts of another
    /// term; the same term changes nothing.
    pub fn enter_term(&mut self, term: Option<u64>, now: Instant) {
        if self.term == term {
            return;
        }
        self.term = term;
        self.term_started = now;
        self.last_contact.clear();
    }

    /// Records that `broker_id` registered or heartbeated at `now`, during `term`.
    pub fn record_contact(&mut self, term: Option<u64>, broker_id: i32, now: Instant) {
        self.enter_term(term, now);
        let last = self.last_contact.entry(broker_id).or_insert(now);
        *last = (*last).max(now);
    }

    /// When the current session of `broker_id` began: its last contact, or the term's start if
    /// it has not been heard from during the term.
    pub fn session_start(&self, broker_id: i32) -> Instant {
        self.last_contact
            .get(&broker_id)
            .map_or(self.term_started, |seen| (*seen).max(self.term_started))
    }

    /// The term the contacts belong to.
    pub fn term(&self) -> Option<u64> {
        self.term
    }
}

/// The unfenced brokers of `image` whose session (from their last contact, or from the start
/// of the term) has lasted `session_timeout` or longer at `now`; none when `contacts` belong to
/// no term (this node is not the active controller). In broker id order.
pub fn silent_brokers(
    image: &MetadataImage,
    contacts: &BrokerContacts,
    now: Instant,
    session_timeout: Duration,
) -> Vec<i32> {
    if contacts.term().is_none() {
        return Vec::new();
    }
    let mut silent: Vec<i32> = image
        .brokers
        .values()
        .filter(|broker| !broker.fenced)
        .map(|broker| broker.broker_id)
        .filter(|broker_id| {
            now.saturating_duration_since(contacts.session_start(*broker_id)) >= session_timeout
        })
        .collect();
    silent.sort_unstable();
    silent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::MetadataRecord;

    fn image_with(brokers: &[i32]) -> MetadataImage {
        let records: Vec<MetadataRecord> = brokers
            .iter()
            .map(|&broker_id| MetadataRecord::RegisterBroker {
                broker_id,
                host: "127.0.0.1".into(),
                port: 9000 + broker_id,
                rack: None,
                incarnation: None,
            })
            .collect();
        MetadataImage::default().apply(&records)
    }

    #[test]
    fn a_broker_heard_from_within_the_session_is_not_silent() {
        let start = Instant::now();
        let session = Duration::from_millis(100);
        let image = image_with(&[1, 2]);
        let mut contacts = BrokerContacts::new(start);
        contacts.enter_term(Some(7), start);
        let later = start + Duration::from_millis(80);
        contacts.record_contact(Some(7), 1, later);
        let now = start + Duration::from_millis(120);
        assert_eq!(silent_brokers(&image, &contacts, now, session), vec![2]);
        assert!(silent_brokers(&image, &contacts, later, session).is_empty());
    }

    #[test]
    fn a_new_term_gives_every_broker_a_full_session() {
        let start = Instant::now();
        let session = Duration::from_millis(100);
        let image = image_with(&[1, 2]);
        let mut contacts = BrokerContacts::new(start);
        contacts.enter_term(Some(1), start);
        let elected = start + Duration::from_millis(500);
        contacts.enter_term(Some(2), elected);
        let now = elected + Duration::from_millis(99);
        assert!(silent_brokers(&image, &contacts, now, session).is_empty());
        let expired = elected + session;
        assert_eq!(
            silent_brokers(&image, &contacts, expired, session),
            vec![1, 2]
        );
    }

    #[test]
    fn nothing_is_silent_outside_a_term() {
        let start = Instant::now();
        let image = image_with(&[1]);
        let contacts = BrokerContacts::new(start);
        let now = start + Duration::from_secs(60);
        assert!(silent_brokers(&image, &contacts, now, Duration::from_millis(1)).is_empty());
    }
}
