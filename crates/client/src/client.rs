//! A client of a whole cluster: bootstrap, metadata, which node takes which request (any broker,
//! a given node, the controller, a group's coordinator), a connection per node, and retries of
//! the errors that only mean "not here" or "not yet".

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::connection::{ClientOptions, Connection};
use crate::error::ClientError;
use crate::retry::Backoff;
use crate::versions::ApiName;

/// FindCoordinator's key type for consumer (and share, streams) groups.
pub const COORDINATOR_GROUP: i8 = 0;
/// FindCoordinator's key type for transactional ids.
pub const COORDINATOR_TRANSACTION: i8 = 1;

/// Which node a request must go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// Any broker will do (metadata, configs).
    AnyBroker,
    /// This node (a partition's leader, for instance).
    Node(i32),
    /// The active controller as the metadata names it (topic creation and deletion).
    Controller,
    /// The coordinator of a group (key type [`COORDINATOR_GROUP`]) or of a transactional id.
    Coordinator {
        /// FindCoordinator's key type.
        key_type: i8,
        /// The group id or transactional id.
        key: &'a str,
    },
}

/// What this client knows of the cluster from its last metadata answer.
#[derive(Debug, Clone, Default)]
struct ClusterView {
    /// Each live broker's address, by node id.
    brokers: BTreeMap<i32, String>,
    /// The node the metadata named as controller, if any.
    controller_id: Option<i32>,
}

/// A client of one Kafka-compatible cluster.
pub struct Client {
    /// Addresses to ask for metadata before any node is known.
    bootstrap: Vec<String>,
    /// Timeouts, client id, response limit, for every connection.
    options: ClientOptions,
    /// How long a request may be retried in all, and how long to wait between tries.
    backoff: Backoff,
    /// Open connections by node id.
    nodes: HashMap<i32, Connection>,
    /// A connection to a bootstrap address, used until the node ids are known.
    bootstrap_connection: Option<Connection>,
    /// Brokers and controller from the last metadata answer; `None` until the first.
    view: Option<ClusterView>,
    /// Coordinators found, by key type and key.
    coordinators: HashMap<(i8, String), i32>,
}

impl Client {
    /// A client of the cluster reachable at `bootstrap` (comma-separated `host:port` pairs).
    /// Nothing is sent until the first request.
    pub fn new(bootstrap: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let bootstrap: Vec<String> = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(str::to_string)
            .collect();
        if bootstrap.is_empty() {
            return Err(ClientError::NoBootstrap);
        }
        let backoff = Backoff::for_request_timeout(options.request_timeout);
        Ok(Client {
            bootstrap,
            options,
            backoff,
            nodes: HashMap::new(),
            bootstrap_connection: None,
            view: None,
            coordinators: HashMap::new(),
        })
    }

    /// Replaces the retry policy (how long in all, and the pauses between tries).
    pub fn with_backoff(mut self, backoff: Backoff) -> Client {
        self.backoff = backoff;
        self
    }

    /// The options every connection is opened with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Metadata of `topics`, or of every topic for `None`; never creates a topic. Updates the
    /// brokers and controller this client routes by. Retried like any call.
    pub async fn metadata(
        &mut self,
        topics: Option<&[&str]>,
    ) -> Result<MetadataResponse, ClientError> {
        let request = metadata_request(topics);
        let response = self.call(Route::AnyBroker, &request).await?;
        self.learn(&response);
        Ok(response)
    }

    /// One metadata request to any broker, without retries: the lookup inside a routed call,
    /// whose own retries cover it.
    async fn refresh_metadata(&mut self) -> Result<(), ClientError> {
        let request = metadata_request(Some(&[]));
        let response = self.any_connection().await?.call(&request).await?;
        self.learn(&response);
        Ok(())
    }

    /// Sends `request` to the node `route` names, at the newest common version, retrying
    /// connection failures and routing errors until the retry deadline.
    pub async fn call<R: Request>(
        &mut self,
        route: Route<'_>,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        self.call_with(route, request, |_| None).await
    }

    /// As [`Client::call`], with `error_in` reading an error out of a successful response
    /// (a top-level or per-item code): a retriable one is retried like a failed call, any other
    /// is left in the response for the caller.
    pub async fn call_with<R: Request>(
        &mut self,
        route: Route<'_>,
        request: &R,
        error_in: impl Fn(&R::Response) -> Option<ClientError>,
    ) -> Result<R::Response, ClientError> {
        let deadline = Instant::now() + self.backoff.total;
        let mut attempt = 0;
        loop {
            let outcome = match self.connection(route).await {
                Ok(connection) => connection.call(request).await,
                Err(error) => Err(error),
            };
            let error = match outcome {
                Ok(response) => match error_in(&response) {
                    Some(error) if error.is_retriable() => error,
                    _ => return Ok(response),
                },
                Err(error) => error,
            };
            self.forget_after(route, &error);
            let pause = self.backoff.pause(attempt);
            if !error.is_retriable() || Instant::now() + pause >= deadline {
                return Err(error);
            }
            tracing::debug!(api = %ApiName(R::KEY), %error, attempt, "retrying");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// The open connection to the node `route` names, opened (and the node looked up) first
    /// if needed.
    pub async fn connection(&mut self, route: Route<'_>) -> Result<&mut Connection, ClientError> {
        let node = match route {
            Route::AnyBroker => return self.any_connection().await,
            Route::Node(node) => node,
            Route::Controller => self.controller().await?,
            Route::Coordinator { key_type, key } => self.coordinator(key_type, key).await?,
        };
        let known = self
            .view
            .as_ref()
            .is_some_and(|view| view.brokers.contains_key(&node));
        if !known && !self.nodes.contains_key(&node) {
            self.refresh_metadata().await?;
        }
        self.node_connection(node).await
    }

    /// The active controller's node id, from metadata.
    pub async fn controller(&mut self) -> Result<i32, ClientError> {
        if self
            .view
            .as_ref()
            .and_then(|view| view.controller_id)
            .is_none()
        {
            self.refresh_metadata().await?;
        }
        self.view
            .as_ref()
            .and_then(|view| view.controller_id)
            .ok_or(ClientError::UnknownNode(-1))
    }

    /// The coordinator of `key` (a group id or transactional id), asked of any broker with
    /// FindCoordinator and remembered until it answers NOT_COORDINATOR.
    pub async fn coordinator(&mut self, key_type: i8, key: &str) -> Result<i32, ClientError> {
        if let Some(node) = self.coordinators.get(&(key_type, key.to_string())) {
            return Ok(*node);
        }
        let connection = self.any_connection().await?;
        let version = connection.version_for::<FindCoordinatorRequest>()?;
        let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
        // v4 asks for a batch of keys; before, for one.
        if version >= 4 {
            request.coordinator_keys = vec![StrBytes::from_string(key.to_string())];
        } else {
            request.key = StrBytes::from_string(key.to_string());
        }
        let response = connection.call_version(version, &request).await?;
        let api = ApiName(FindCoordinatorRequest::KEY);
        let (code, message, node, host, port) = if version >= 4 {
            let found = response
                .coordinators
                .first()
                .ok_or_else(|| ClientError::kafka(api, -1, Some("no coordinator in the answer")))?;
            (
                found.error_code,
                found.error_message.clone(),
                found.node_id.0,
                found.host.to_string(),
                found.port,
            )
        } else {
            (
                response.error_code,
                response.error_message.clone(),
                response.node_id.0,
                response.host.to_string(),
                response.port,
            )
        };
        if code != 0 {
            return Err(ClientError::kafka(api, code, message.as_deref()));
        }
        // The coordinator may be a broker this client has not seen in metadata yet.
        self.view
            .get_or_insert_with(ClusterView::default)
            .brokers
            .insert(node, format!("{host}:{port}"));
        self.coordinators.insert((key_type, key.to_string()), node);
        Ok(node)
    }

    /// Every broker's node id in the last metadata, looked up first if there is none.
    pub async fn broker_ids(&mut self) -> Result<Vec<i32>, ClientError> {
        if self.view.is_none() {
            self.refresh_metadata().await?;
        }
        Ok(self
            .view
            .as_ref()
            .map(|view| view.brokers.keys().copied().collect())
            .unwrap_or_default())
    }

    /// Records the brokers and controller of a metadata answer.
    fn learn(&mut self, response: &MetadataResponse) {
        let brokers = response
            .brokers
            .iter()
            .map(|broker| (broker.node_id.0, format!("{}:{}", broker.host, broker.port)))
            .collect();
        let controller_id = Some(response.controller_id.0).filter(|id| *id >= 0);
        self.view = Some(ClusterView {
            brokers,
            controller_id,
        });
    }

    /// Forgets what `error` showed to be stale: a broken connection, the controller or
    /// coordinator the request went to.
    fn forget_after(&mut self, route: Route<'_>, error: &ClientError) {
        if error.breaks_connection() {
            match route {
                Route::AnyBroker => {
                    self.bootstrap_connection = None;
                    self.nodes.clear();
                }
                Route::Node(node) => {
                    self.nodes.remove(&node);
                }
                Route::Controller | Route::Coordinator { .. } => {
                    // Which node it was is in the caches cleared below.
                    self.nodes.clear();
                }
            }
        }
        if error.needs_fresh_metadata() {
            if let Some(view) = self.view.as_mut() {
                view.controller_id = None;
            }
            if let Route::Coordinator { key_type, key } = route {
                self.coordinators.remove(&(key_type, key.to_string()));
            }
        }
    }

    /// A connection to some broker: one already open, else the bootstrap addresses in order.
    async fn any_connection(&mut self) -> Result<&mut Connection, ClientError> {
        if let Some(node) = self.nodes.keys().next().copied() {
            return self.node_connection(node).await;
        }
        if self.bootstrap_connection.is_none() {
            let mut last_error = None;
            for address in &self.bootstrap {
                match Connection::connect(address, &self.options).await {
                    Ok(connection) => {
                        self.bootstrap_connection = Some(connection);
                        break;
                    }
                    Err(error) => last_error = Some(error),
                }
            }
            if let Some(error) = last_error.filter(|_| self.bootstrap_connection.is_none()) {
                return Err(error);
            }
        }
        self.bootstrap_connection
            .as_mut()
            .ok_or(ClientError::NoBootstrap)
    }

    /// The connection to `node`, opened at the address the metadata gave for it.
    async fn node_connection(&mut self, node: i32) -> Result<&mut Connection, ClientError> {
        if !self.nodes.contains_key(&node) {
            let address = self
                .view
                .as_ref()
                .and_then(|view| view.brokers.get(&node))
                .cloned()
                .ok_or(ClientError::UnknownNode(node))?;
            let connection = Connection::connect(&address, &self.options).await?;
            self.nodes.insert(node, connection);
        }
        self.nodes
            .get_mut(&node)
            .ok_or(ClientError::UnknownNode(node))
    }
}

/// A Metadata request for `topics` (all for `None`) that never creates one.
fn metadata_request(topics: Option<&[&str]>) -> MetadataRequest {
    MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                .collect()
        }))
}

/// A topic name as the messages want it.
pub(crate) fn topic_name(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(StrBytes::from_string(name.to_string()))
}

/// The first retriable error among per-item error codes, for [`Client::call_with`].
pub(crate) fn first_retriable(
    api: ApiName,
    codes: impl IntoIterator<Item = (i16, Option<StrBytes>)>,
) -> Option<ClientError> {
    codes
        .into_iter()
        .map(|(code, message)| ClientError::kafka(api, code, message.as_deref()))
        .find(ClientError::is_retriable)
}
