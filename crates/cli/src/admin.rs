//! What the admin commands share: the `cauce-client` connection to the cluster, its timeouts,
//! and the wording of errors.

use std::cell::{RefCell, RefMut};
use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Context};
use cauce_client::kafka_protocol::error::ResponseError;
use cauce_client::kafka_protocol::messages::MetadataResponse;
use cauce_client::{Client, ClientError, ClientOptions};

/// How long a metadata or admin request may take before the command gives up: long enough for
/// a busy broker, short enough that a wrong address fails a script quickly.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of the admin commands, accepted anywhere on the command line (`cauce server` ignores
/// them).
#[derive(clap::Args)]
pub struct ConnectionArgs {
    /// Bootstrap brokers, comma separated host:port pairs.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Print JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// An admin client of one cluster.
pub struct Connection {
    /// The Kafka client; behind a `RefCell` because its calls take `&mut` (they open and
    /// replace connections) while the commands pass the connection around shared.
    client: RefCell<Client>,
    /// The bootstrap list, for error messages.
    brokers: String,
    /// Drives the client's futures; the commands themselves are synchronous.
    runtime: tokio::runtime::Runtime,
}

impl Connection {
    /// Creates the client; nothing is sent until the first request.
    pub fn open(args: &ConnectionArgs) -> anyhow::Result<Connection> {
        let options = ClientOptions {
            client_id: "cauce-cli".to_string(),
            connect_timeout: REQUEST_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            ..ClientOptions::default()
        };
        let client = Client::new(&args.brokers, options)
            .with_context(|| format!("cannot use broker list '{}'", args.brokers))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Connection {
            client: RefCell::new(client),
            brokers: args.brokers.clone(),
            runtime,
        })
    }

    /// The client, for one call at a time: `connection.block_on(connection.client().x())`.
    pub fn client(&self) -> RefMut<'_, Client> {
        self.client.borrow_mut()
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Metadata of every topic: asking for all of them never makes a broker auto-create one.
    pub fn metadata(&self) -> anyhow::Result<MetadataResponse> {
        self.block_on(self.client().metadata(None))
            .map_err(|error| self.request_failed("metadata request", error))
    }

    /// Words a failed request (as opposed to a failed topic within it) for the user.
    pub fn request_failed(&self, request: &str, error: ClientError) -> anyhow::Error {
        if error.breaks_connection() {
            return anyhow!(
                "no broker at {} answered within {} s ({error})",
                self.brokers,
                REQUEST_TIMEOUT.as_secs()
            );
        }
        anyhow!("{request} to {} failed: {error}", self.brokers)
    }

    /// Words the error a broker gave for one topic, with its message where that says more.
    pub fn topic_failed(&self, request: &str, topic: &str, error: ClientError) -> anyhow::Error {
        let Some(code) = error.code() else {
            return self.request_failed(request, error);
        };
        match (ResponseError::try_from_code(code), error.broker_message()) {
            (Some(ResponseError::InvalidConfig), Some(message)) => {
                anyhow!("invalid config for topic '{topic}': {message}")
            }
            (
                Some(ResponseError::UnknownTopicOrPartition | ResponseError::TopicAlreadyExists),
                _,
            )
            | (_, None) => topic_error(topic, code),
            (_, Some(message)) => anyhow!("topic '{topic}': {message} ({})", code_name(code)),
        }
    }

    /// Words the error a broker gave for one group.
    pub fn group_failed(&self, request: &str, group: &str, error: ClientError) -> anyhow::Error {
        let Some(code) = error.code() else {
            return self.request_failed(request, error);
        };
        match (ResponseError::try_from_code(code), error.broker_message()) {
            (Some(ResponseError::GroupIdNotFound), _) => anyhow!("group '{group}' does not exist"),
            (Some(ResponseError::NonEmptyGroup), _) => {
                anyhow!("group '{group}': the group is not empty (it has active members)")
            }
            (_, Some(message)) => anyhow!("group '{group}': {message}"),
            (_, None) => anyhow!("group '{group}': {}", code_name(code)),
        }
    }
}

/// Words the error code a broker gave for one topic.
pub fn topic_error(topic: &str, code: i16) -> anyhow::Error {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::UnknownTopicOrPartition) => anyhow!("topic '{topic}' does not exist"),
        Some(ResponseError::TopicAlreadyExists) => anyhow!("topic '{topic}' already exists"),
        _ => anyhow!("topic '{topic}': {}", code_name(code)),
    }
}

/// A Kafka error code by its name and number, such as `InvalidReplicationFactor (38)`.
pub fn code_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(error) => format!("{error} ({code})"),
        None => "no error (0)".to_string(),
    }
}

/// The topic of a metadata answer with this name, or why there is none.
pub fn find_topic<'m>(
    metadata: &'m MetadataResponse,
    name: &str,
) -> anyhow::Result<
    &'m cauce_client::kafka_protocol::messages::metadata_response::MetadataResponseTopic,
> {
    let topic = metadata
        .topics
        .iter()
        .find(|topic| {
            topic
                .name
                .as_ref()
                .is_some_and(|found| found.as_str() == name)
        })
        .ok_or_else(|| topic_error(name, ResponseError::UnknownTopicOrPartition.code()))?;
    match topic.error_code {
        0 => Ok(topic),
        code => Err(topic_error(name, code)),
    }
}

/// The partition ids of a topic in a metadata answer, sorted.
pub fn partition_ids(
    topic: &cauce_client::kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> Vec<i32> {
    let mut partitions: Vec<i32> = topic
        .partitions
        .iter()
        .map(|partition| partition.partition_index)
        .collect();
    partitions.sort_unstable();
    partitions
}

/// Parses `key=value` flags.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected key=value, found '{text}'")),
    }
}
