//! What the admin commands share: the librdkafka admin client, its timeouts, and the wording of
//! errors.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

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

/// An admin client connected to one cluster.
pub struct Connection {
    /// librdkafka's admin client; its metadata calls go through `inner()`.
    admin: AdminClient<DefaultClientContext>,
    /// The bootstrap list, for error messages.
    brokers: String,
    /// Drives the admin futures; librdkafka does the I/O on its own threads.
    runtime: tokio::runtime::Runtime,
}

impl Connection {
    /// Creates the client; nothing is sent until the first request.
    pub fn open(args: &ConnectionArgs) -> anyhow::Result<Connection> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &args.brokers)
            .set("client.id", "cauce-cli")
            .create::<AdminClient<DefaultClientContext>>()
            .with_context(|| format!("cannot use broker list '{}'", args.brokers))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Connection {
            admin,
            brokers: args.brokers.clone(),
            runtime,
        })
    }

    pub fn admin(&self) -> &AdminClient<DefaultClientContext> {
        &self.admin
    }

    /// Metadata of every topic: asking for all of them never makes a broker auto-create one.
    pub fn metadata(&self) -> anyhow::Result<Metadata> {
        self.admin
            .inner()
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|error| self.request_failed("metadata request", error))
    }

    /// Options for every admin request: the same timeout as metadata.
    pub fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(REQUEST_TIMEOUT))
            .operation_timeout(Some(REQUEST_TIMEOUT))
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Words a failed request (as opposed to a failed topic within it) for the user.
    pub fn request_failed(&self, request: &str, error: KafkaError) -> anyhow::Error {
        let code = match &error {
            KafkaError::MetadataFetch(code) | KafkaError::AdminOp(code) => *code,
            other => return anyhow!("{request} to {} failed: {other}", self.brokers),
        };
        match code {
            RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve => anyhow!(
                "no broker at {} answered within {} s ({code})",
                self.brokers,
                REQUEST_TIMEOUT.as_secs()
            ),
            _ => anyhow!("{request} to {} failed: {code}", self.brokers),
        }
    }
}

/// Words the error a broker gave for one topic.
pub fn topic_error(topic: &str, code: RDKafkaErrorCode) -> anyhow::Error {
    match code {
        RDKafkaErrorCode::UnknownTopicOrPartition => anyhow!("topic '{topic}' does not exist"),
        RDKafkaErrorCode::TopicAlreadyExists => anyhow!("topic '{topic}' already exists"),
        other => anyhow!("topic '{topic}': {other}"),
    }
}

/// Parses `key=value` flags.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected key=value, found '{text}'")),
    }
}
