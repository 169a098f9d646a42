//! Brokers: registration, heartbeats, controlled shutdown, and the cluster id.

use super::partitions::{elect_leaderless, move_leadership_away};
use uuid::Uuid;

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

pub(super) fn new_cluster_id() -> String {
    // Kafka's cluster ids are a random UUID in URL-safe base64 without padding.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    let mut out = String::new();
    for byte in bytes {
        bits = (bits << 8) | byte as u32;
        bit_count += 8;
        while bit_count >= 6 {
            bit_count -= 6;
            out.push(ALPHABET[((bits >> bit_count) & 63) as usize] as char);
        }
    }
    if bit_count > 0 {
        out.push(ALPHABET[((bits << (6 - bit_count)) & 63) as usize] as char);
    }
    out
}

/// A broker's registration, as its command carries it.
pub struct Registration<'a> {
    /// The broker's node id.
    pub broker_id: i32,
    /// The host clients reach it at.
    pub host: &'a str,
    /// The port clients reach it at.
    pub port: i32,
    /// Its rack, for replica placement.
    pub rack: Option<&'a str>,
    /// The run it registers from: a new one means the broker restarted.
    pub incarnation: Option<uuid::Uuid>,
}

/// A registration's records: the cluster id on the very first one, the broker's address when
/// it changed, and, for a broker registering from a new run while still counted alive, its
/// fencing: the old run's leaderships must not carry over at their epochs (its log may have
/// lost what it had not flushed), so it is fenced until its first heartbeat.
pub fn decide_registration(
    image: &MetadataImage,
    registration: &Registration<'_>,
) -> Vec<MetadataRecord> {
    let broker_id = registration.broker_id;
    let mut records = Vec::new();
    if image.cluster_id.is_empty() {
        records.push(MetadataRecord::Cluster {
            cluster_id: new_cluster_id(),
        });
    }
    let current = image.brokers.get(&broker_id);
    let registered = current.is_some_and(|broker| {
        broker.host == registration.host
            && broker.port == registration.port
            && broker.rack.as_deref() == registration.rack
            && (registration.incarnation.is_none()
                || broker.incarnation == registration.incarnation)
    });
    if !registered {
        records.push(MetadataRecord::RegisterBroker {
            broker_id,
            host: registration.host.to_string(),
            port: registration.port,
            rack: registration.rack.map(str::to_string),
            incarnation: registration.incarnation,
        });
    }
    let restarted = registration.incarnation.is_some()
        && current
            .is_some_and(|broker| !broker.fenced && broker.incarnation != registration.incarnation);
    if restarted {
        records.push(MetadataRecord::FenceBroker { broker_id });
        records.extend(move_leadership_away(image, broker_id));
    }
    records
}

/// A heartbeat's records: a fenced broker is unfenced, and partitions left without a leader
/// that it can lead get it back.
pub fn decide_heartbeat(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let fenced = image
        .brokers
        .get(&broker_id)
        .is_some_and(|broker| broker.fenced);
    if !fenced {
        return Vec::new();
    }
    let mut records = vec![MetadataRecord::UnfenceBroker { broker_id }];
    records.extend(elect_leaderless(&image.apply(&records)));
    records
}

/// A controlled shutdown's records: the broker is fenced and its leaderships move away.
pub fn decide_controlled_shutdown(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    if !image.brokers.contains_key(&broker_id) {
        return Vec::new();
    }
    let mut records = vec![MetadataRecord::FenceBroker { broker_id }];
    records.extend(move_leadership_away(image, broker_id));
    records
}
