//! What clients can make the broker hold: connections (in total and per address) and the bytes
//! of requests read but not yet answered (Kafka's `queued.max.request.bytes`).
//!
//! A connection counts against `max.connections` from accept to close; above
//! `max.connections.per.ip` (or its override for the address) a new connection is closed at
//! once, and at `max.connections` the listener stops accepting until one closes, as Kafka's do.
//!
//! Request bytes are charged before they are read, never after, and only as they arrive: a
//! frame first takes a 64 KiB chunk, then twice what it holds each time that is full. A peer
//! that announces 100 MiB and sends one byte a second holds 64 KiB, not 100 MiB, until the
//! frame's read deadline closes its connection; one that sends fast holds at most twice what it
//! sent.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of a frame charged (and allocated) before any of its body has arrived.
pub const FIRST_CHUNK_BYTES: usize = 64 * 1024;

/// Connection counts, shared by the listener and every connection.
#[derive(Debug)]
pub struct ConnectionLimits {
    /// One permit per connection the listener may still accept (`max.connections`).
    total: Arc<Semaphore>,
    /// `max.connections.per.ip`.
    per_ip: usize,
    /// `max.connections.per.ip.overrides`, by address.
    per_ip_overrides: HashMap<IpAddr, usize>,
    /// Open connections by client address.
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place in the counts; given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    /// The counts it was taken from.
    limits: Arc<ConnectionLimits>,
    /// The client's address, once admitted.
    address: Option<IpAddr>,
    /// Its share of `max.connections`.
    _total: OwnedSemaphorePermit,
}

impl ConnectionLimits {
    /// Limits of `max_connections` in all and `per_ip` per address, except the overrides.
    pub fn new(
        max_connections: usize,
        per_ip: usize,
        per_ip_overrides: HashMap<IpAddr, usize>,
    ) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            total: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            per_ip,
            per_ip_overrides,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Waits until the broker may accept one more connection.
    pub async fn reserve(self: &Arc<Self>) -> ConnectionSlot {
        let permit = self
            .total
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        ConnectionSlot {
            limits: self.clone(),
            address: None,
            _total: permit,
        }
    }

    /// The most connections `address` may have open.
    fn limit_for(&self, address: IpAddr) -> usize {
        self.per_ip_overrides
            .get(&address)
            .copied()
            .unwrap_or(self.per_ip)
    }
}

impl ConnectionSlot {
    /// Gives the slot to a connection from `address`, or refuses it (and frees the slot) when
    /// that address already has as many connections as it may; returns the limit refused at.
    pub fn admit(mut self, address: IpAddr) -> Result<ConnectionSlot, usize> {
        let limit = self.limits.limit_for(address);
        let mut open = self.limits.open.lock();
        let count = open.entry(address).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                open.remove(&address);
            }
            return Err(limit);
        }
        *count += 1;
        drop(open);
        self.address = Some(address);
        Ok(self)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let Some(address) = self.address else {
            return;
        };
        let mut open = self.limits.open.lock();
        if let Some(count) = open.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&address);
            }
        }
    }
}

/// The bytes of requests read but not yet answered, across all connections.
#[derive(Debug, Clone)]
pub struct RequestMemory {
    /// One permit per byte still free.
    pool: Arc<Semaphore>,
    /// The pool's size: a frame never waits for more than this.
    capacity: usize,
}

/// Bytes charged to one request, returned to the pool when dropped.
#[derive(Debug)]
pub struct RequestBytes {
    /// The permits held.
    permits: Option<OwnedSemaphorePermit>,
}

impl RequestMemory {
    /// A pool of `capacity` bytes (`queued.max.request.bytes`).
    pub fn new(capacity: usize) -> RequestMemory {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        RequestMemory {
            pool: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Waits until `bytes` more can be held, and charges them to `charged` (cancel-safe: a
    /// wait given up charges nothing). A request larger
    /// than the whole pool is charged the whole pool, so that it waits for the pool to empty
    /// rather than forever.
    pub async fn charge(&self, charged: &mut RequestBytes, bytes: usize) {
        let bytes = bytes.min(self.capacity) as u32;
        if bytes == 0 {
            return;
        }
        let permit = self
            .pool
            .clone()
            .acquire_many_owned(bytes)
            .await
            .expect("the request memory semaphore is never closed");
        match &mut charged.permits {
            Some(held) => held.merge(permit),
            None => charged.permits = Some(permit),
        }
    }

    /// Bytes not charged to any request now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.pool.available_permits()
    }
}

impl RequestBytes {
    /// Nothing charged yet.
    pub fn none() -> RequestBytes {
        RequestBytes { permits: None }
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.permits
            .as_ref()
            .map_or(0, |permits| permits.num_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_above_its_limit_is_refused_and_a_closed_connection_frees_its_place() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let limits = ConnectionLimits::new(10, 2, HashMap::from([(other, 1)]));
        let first = limits.reserve().await.admit(local).unwrap();
        let _second = limits.reserve().await.admit(local).unwrap();
        assert_eq!(limits.reserve().await.admit(local).unwrap_err(), 2);
        let _overridden = limits.reserve().await.admit(other).unwrap();
        assert_eq!(limits.reserve().await.admit(other).unwrap_err(), 1);
        drop(first);
        assert!(limits.reserve().await.admit(local).is_ok());
    }

    #[tokio::test]
    async fn the_listener_waits_at_max_connections() {
        let limits = ConnectionLimits::new(1, 10, HashMap::new());
        let held = limits.reserve().await;
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), limits.reserve());
        assert!(
            waiting.await.is_err(),
            "a second slot was given at max.connections 1"
        );
        drop(held);
        let _next = limits.reserve().await;
    }

    #[tokio::test]
    async fn request_bytes_return_to_the_pool_when_dropped() {
        let memory = RequestMemory::new(1000);
        let mut charged = RequestBytes::none();
        memory.charge(&mut charged, 600).await;
        memory.charge(&mut charged, 300).await;
        assert_eq!((charged.held(), memory.available()), (900, 100));
        let blocked = {
            let memory = memory.clone();
            tokio::spawn(async move {
                let mut more = RequestBytes::none();
                memory.charge(&mut more, 5000).await;
                more.held()
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!blocked.is_finished(), "charged beyond the pool");
        drop(charged);
        // Larger than the pool: charged the whole pool once it is free.
        assert_eq!(blocked.await.unwrap(), 1000);
    }
}
