//! Request dispatch: one module per API area, each turning a request into a [`Reply`].
//!
//! Handlers run on the connection's reader in arrival order, so that appends to a partition
//! happen in the order a client pipelined them. A handler that must wait (for an fsync, for
//! data to arrive, for a blocking file operation) does its ordered part at once and returns the
//! rest as a future; the connection writes replies in request order.

mod api_versions;
mod cluster;
mod configs;
mod consumer_groups;
mod fetch;
mod group_offsets;
mod groups;
mod log_dirs;
mod metadata;
mod offsets;
mod produce;
mod producer_ids;
mod topics;
mod txn;
mod txn_markers;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cauce_protocol::kafka::messages::{ApiKey, ResponseHeader};
use cauce_protocol::kafka::protocol::buf::ByteBufMut;
use cauce_protocol::kafka::protocol::{Encodable, HeaderVersion, StrBytes};
use cauce_protocol::legacy_produce::{unsupported_version_response, MAX_LEGACY_PRODUCE_VERSION};
use cauce_protocol::request::Request;
use cauce_protocol::versions;

use crate::splice::SplicingBuf;
use crate::Broker;

/// A response still being produced.
pub type PendingResponse = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// What the connection does with a request once its handler has run.
pub enum Reply {
    /// Write this response frame (size prefix included).
    Ready(Bytes),
    /// Write these parts one after the other; together they are one response frame. Fetch
    /// answers this way so that record bytes are not copied into the frame.
    Spliced(Vec<Bytes>),
    /// Wait for this future, in request order, then act on what it yields.
    Later(PendingResponse),
    /// Write nothing: the client asked for no response (Produce with acks=0).
    Nothing,
    /// Answer nothing more and close the connection, for the reason given.
    Close(String),
}

/// Who sent a request, for logs.
#[derive(Debug, Clone)]
pub struct Client {
    /// The peer address.
    pub address: SocketAddr,
}

/// What every handler gets besides its decoded request.
pub struct Context {
    /// Shared broker state.
    pub broker: Arc<Broker>,
    /// The API being answered.
    pub api_key: ApiKey,
    /// The version the client used; it decides which fields are encoded.
    pub version: i16,
    /// Echoed in the response header.
    pub correlation_id: i32,
    /// The client's self-reported id, for logs.
    pub client_id: Option<StrBytes>,
    /// The peer, for logs.
    pub client: Client,
}

impl Context {
    /// Encodes a response into a complete frame, or closes the connection if it cannot be.
    pub fn respond<R: Encodable + HeaderVersion>(&self, response: &R) -> Reply {
        match encode_frame(self.api_key, self.version, self.correlation_id, response) {
            Ok(frame) => Reply::Ready(frame),
            Err(error) => self.encoding_failed(&error),
        }
    }

    /// Like [`Context::respond`], but keeps `record_sets` (the response's record fields, in
    /// encoding order) as parts of their own instead of copying them into the frame.
    pub fn respond_spliced<R: Encodable + HeaderVersion>(
        &self,
        response: &R,
        record_sets: impl IntoIterator<Item = Bytes>,
    ) -> Reply {
        let mut buf = SplicingBuf::new(record_sets);
        match encode_frame_into(
            &mut buf,
            self.api_key,
            self.version,
            self.correlation_id,
            response,
        ) {
            Ok(()) => Reply::Spliced(buf.into_parts()),
            Err(error) => self.encoding_failed(&error),
        }
    }

    fn encoding_failed(&self, error: &anyhow::Error) -> Reply {
        tracing::error!(api = ?self.api_key, version = self.version, %error, "response did not encode");
        Reply::Close(format!(
            "response to {:?} v{} did not encode",
            self.api_key, self.version
        ))
    }

    /// Answers with the response `work` yields: for handlers that wait on the metadata log,
    /// replication or a coordinator without blocking a thread. `work` gets the context shared.
    pub fn respond_later<R, F, W>(self, work: W) -> Reply
    where
        R: Encodable + HeaderVersion,
        F: Future<Output = R> + Send + 'static,
        W: FnOnce(Arc<Context>) -> F,
    {
        let context = Arc::new(self);
        let response = work(context.clone());
        Reply::Later(Box::pin(async move {
            let response = response.await;
            context.respond(&response)
        }))
    }

    /// Runs blocking work (file system, fsync) off the reactor and answers with its response.
    pub fn respond_blocking<R, F>(self, work: F) -> Reply
    where
        R: Encodable + HeaderVersion + Send + 'static,
        F: FnOnce(&Context) -> R + Send + 'static,
    {
        Reply::Later(Box::pin(async move {
            match tokio::task::spawn_blocking(move || {
                let response = work(&self);
                self.respond(&response)
            })
            .await
            {
                Ok(reply) => reply,
                Err(error) => Reply::Close(format!("handler failed: {error}")),
            }
        }))
    }

    fn client_id(&self) -> &str {
        self.client_id.as_ref().map_or("", |id| id.as_str())
    }
}

/// Encodes header and body behind a size prefix.
pub fn encode_frame<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> anyhow::Result<Bytes> {
    let mut frame = BytesMut::with_capacity(256);
    encode_frame_into(&mut frame, api_key, version, correlation_id, response)?;
    Ok(frame.freeze())
}

/// Writes the size prefix, the response header and the body into `buf`.
fn encode_frame_into<B: ByteBufMut, R: Encodable>(
    buf: &mut B,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> anyhow::Result<()> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let size = header.compute_size(header_version)? + response.compute_size(version)?;
    buf.put_i32(i32::try_from(size)?);
    header.encode(buf, header_version)?;
    response.encode(buf, version)?;
    Ok(())
}

/// Routes a parsed request to its handler.
pub fn dispatch(broker: &Arc<Broker>, request: Request, client: &Client) -> Reply {
    let api_key_code = request.header.request_api_key;
    let version = request.api_version();
    let Some(api_key) = request.api_key else {
        tracing::warn!(client = %client.address, api_key = api_key_code, "unknown api key; closing connection");
        return Reply::Close(format!("unknown api key {api_key_code}"));
    };
    let context = Context {
        broker: broker.clone(),
        api_key,
        version,
        correlation_id: request.correlation_id(),
        client_id: request.header.client_id.clone(),
        client: client.clone(),
    };
    if api_key == ApiKey::ApiVersions {
        return api_versions::handle(context, request.body);
    }
    if api_key == ApiKey::Produce && (0..=MAX_LEGACY_PRODUCE_VERSION).contains(&version) {
        return match unsupported_version_response(&request.body, version, context.correlation_id) {
            Some(frame) => Reply::Ready(frame),
            None => Reply::Close(format!("malformed Produce v{version} request")),
        };
    }
    if !versions::is_supported(api_key, version) {
        tracing::warn!(
            client = %client.address,
            client_id = context.client_id(),
            api = ?api_key,
            version,
            "unsupported api version; closing connection"
        );
        return Reply::Close(format!("{api_key:?} v{version} is not supported"));
    }
    let mut body = request.body;
    macro_rules! route {
        ($handler:path) => {
            match cauce_protocol::schema::decode(&mut body, version) {
                Ok(decoded) => $handler(context, decoded),
                Err(error) => malformed(&context, error),
            }
        };
    }
    match api_key {
        ApiKey::Produce => route!(produce::handle),
        ApiKey::Fetch => route!(fetch::handle),
        ApiKey::ListOffsets => route!(offsets::list_offsets),
        ApiKey::Metadata => route!(metadata::handle),
        ApiKey::CreateTopics => route!(topics::create_topics),
        ApiKey::DeleteTopics => route!(topics::delete_topics),
        ApiKey::DeleteRecords => route!(offsets::delete_records),
        ApiKey::InitProducerId => route!(producer_ids::init_producer_id),
        ApiKey::OffsetForLeaderEpoch => route!(offsets::offset_for_leader_epoch),
        ApiKey::DescribeConfigs => route!(configs::describe_configs),
        ApiKey::AlterConfigs => route!(configs::alter_configs),
        ApiKey::CreatePartitions => route!(topics::create_partitions),
        ApiKey::IncrementalAlterConfigs => route!(configs::incremental_alter_configs),
        ApiKey::DescribeCluster => route!(cluster::describe_cluster),
        ApiKey::DescribeLogDirs => route!(log_dirs::describe_log_dirs),
        ApiKey::DescribeQuorum => route!(cluster::describe_quorum),
        ApiKey::ElectLeaders => route!(cluster::elect_leaders),
        ApiKey::AlterPartitionReassignments => route!(cluster::alter_partition_reassignments),
        ApiKey::ListPartitionReassignments => route!(cluster::list_partition_reassignments),
        ApiKey::FindCoordinator => route!(groups::find_coordinator),
        ApiKey::JoinGroup => route!(groups::join_group),
        ApiKey::SyncGroup => route!(groups::sync_group),
        ApiKey::Heartbeat => route!(groups::heartbeat),
        ApiKey::LeaveGroup => route!(groups::leave_group),
        ApiKey::ListGroups => route!(groups::list_groups),
        ApiKey::DescribeGroups => route!(groups::describe_groups),
        ApiKey::DeleteGroups => route!(groups::delete_groups),
        ApiKey::OffsetCommit => route!(group_offsets::offset_commit),
        ApiKey::OffsetFetch => route!(group_offsets::offset_fetch),
        ApiKey::OffsetDelete => route!(group_offsets::offset_delete),
        ApiKey::ConsumerGroupHeartbeat => route!(consumer_groups::consumer_group_heartbeat),
        ApiKey::ConsumerGroupDescribe => route!(consumer_groups::consumer_group_describe),
        ApiKey::WriteTxnMarkers => route!(txn_markers::write_txn_markers),
        ApiKey::AddPartitionsToTxn => route!(txn::add_partitions_to_txn),
        ApiKey::EndTxn => route!(txn::end_txn),
        ApiKey::AddOffsetsToTxn => route!(txn::add_offsets_to_txn),
        ApiKey::TxnOffsetCommit => route!(group_offsets::txn_offset_commit),
        ApiKey::DescribeProducers => route!(txn::describe_producers),
        ApiKey::DescribeTransactions => route!(txn::describe_transactions),
        ApiKey::ListTransactions => route!(txn::list_transactions),
        other => Reply::Close(format!("{other:?} is advertised but has no handler")),
    }
}

fn malformed(context: &Context, error: cauce_protocol::schema::SchemaError) -> Reply {
    tracing::warn!(
        client = %context.client.address,
        client_id = context.client_id(),
        api = ?context.api_key,
        version = context.version,
        %error,
        "malformed request; closing connection"
    );
    Reply::Close(format!("malformed {:?} request: {error}", context.api_key))
}

/// A string field for a response.
pub fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}
