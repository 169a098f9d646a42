//! Typed admin calls on a [`Client`]: topics, their configs, groups and their offsets,
//! transactions and their producers. Each
//! goes to the node Kafka's own admin client sends it to, and turns the per-item error of its
//! one item into a [`ClientError`] that keeps the broker's message.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::describe_producers_request::TopicRequest as ProducersTopicRequest;
pub use kafka_protocol::messages::describe_producers_response::ProducerState;
pub use kafka_protocol::messages::describe_transactions_response::TransactionState as DescribedTransaction;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, DescribeGroupsRequest, DescribeProducersRequest,
    DescribeTransactionsRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest,
    ListOffsetsRequest, ListTransactionsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::client::{
    first_retriable, topic_name, Client, Route, COORDINATOR_GROUP, COORDINATOR_TRANSACTION,
};
use crate::error::ClientError;
use crate::versions::ApiName;

/// DescribeConfigs' and IncrementalAlterConfigs' resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// ListOffsets' timestamp that asks for the first offset still in the log.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets' timestamp that asks for the log end.
pub const LATEST_TIMESTAMP: i64 = -1;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic<'a> {
    /// Its name.
    pub name: &'a str,
    /// Partition count; -1 asks for the broker's `num.partitions`.
    pub partitions: i32,
    /// Copies of each partition; -1 asks for the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Configuration overrides.
    pub configs: &'a [(String, String)],
}

/// One configuration key of a resource as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key.
    pub name: String,
    /// None for sensitive values, which brokers do not return.
    pub value: Option<String>,
    /// Where the value comes from, as DescribeConfigs codes it (1 a topic override, 5 the
    /// built-in default, ...); see [`config_source_name`].
    pub source: i8,
    /// Whether the key cannot be changed at runtime.
    pub read_only: bool,
}

/// One change of an IncrementalAlterConfigs request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigChange<'a> {
    /// Set the key to the value.
    Set(&'a str, &'a str),
    /// Remove the override, going back to the default.
    Delete(&'a str),
}

/// One committed offset of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset the group will read next.
    pub offset: i64,
}

/// One transaction as ListTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its state, by Kafka's name (`Ongoing`, `CompleteCommit`, ...).
    pub state: String,
    /// The broker coordinating it.
    pub coordinator: i32,
}

/// One group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group: String,
    /// `Stable`, `Empty`, ...; empty where the broker's version does not say.
    pub state: String,
    /// `consumer` for Kafka consumers; empty for groups that only commit offsets.
    pub protocol_type: String,
}

/// The name of a DescribeConfigs config source, as Kafka's tools print it.
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "topic",
        2 => "dynamic-broker",
        3 => "dynamic-default-broker",
        4 => "static-broker",
        5 => "default",
        8 => "group",
        _ => "unknown",
    }
}

impl Client {
    /// Creates a topic (at the controller), waiting up to the request timeout for it to exist.
    pub async fn create_topic(&mut self, topic: &NewTopic<'_>) -> Result<(), ClientError> {
        let api = ApiName(CreateTopicsRequest::KEY);
        let configs = topic
            .configs
            .iter()
            .map(|(key, value)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(key.clone()))
                    .with_value(Some(StrBytes::from_string(value.clone())))
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic.name))
                .with_num_partitions(topic.partitions)
                .with_replication_factor(topic.replication_factor)
                .with_configs(configs)]);
        let response = self
            .call_with(Route::Controller, &request, |response| {
                let codes = response.topics.iter();
                first_retriable(api, codes.map(|t| (t.error_code, t.error_message.clone())))
            })
            .await?;
        let result = single(api, topic.name, response.topics.iter())?;
        check(api, result.error_code, result.error_message.as_ref())
    }

    /// Deletes a topic (at the controller).
    pub async fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        let api = ApiName(DeleteTopicsRequest::KEY);
        let version = self
            .connection(Route::Controller)
            .await?
            .version_for::<DeleteTopicsRequest>()?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        // v6 names topics by name or id; before, by name only.
        if version >= 6 {
            request.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(name)))];
        } else {
            request.topic_names = vec![topic_name(name)];
        }
        let response = self
            .call_with(Route::Controller, &request, |response| {
                let codes = response.responses.iter();
                first_retriable(api, codes.map(|t| (t.error_code, t.error_message.clone())))
            })
            .await?;
        let result = single(api, name, response.responses.iter())?;
        check(api, result.error_code, result.error_message.as_ref())
    }

    /// Raises a topic's partition count to `total` (at the controller).
    pub async fn create_partitions(&mut self, name: &str, total: i32) -> Result<(), ClientError> {
        let api = ApiName(CreatePartitionsRequest::KEY);
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(total)
                // No explicit assignment: the controller places the new partitions.
                .with_assignments(None)]);
        let response = self
            .call_with(Route::Controller, &request, |response| {
                let codes = response.results.iter();
                first_retriable(api, codes.map(|t| (t.error_code, t.error_message.clone())))
            })
            .await?;
        let result = single(api, name, response.results.iter())?;
        check(api, result.error_code, result.error_message.as_ref())
    }

    /// The configuration of topic `name` (DescribeConfigs, any broker).
    pub async fn describe_topic_configs(
        &mut self,
        name: &str,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        let api = ApiName(DescribeConfigsRequest::KEY);
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configuration_keys(None),
        ]);
        let response = self.call(Route::AnyBroker, &request).await?;
        let result = single(api, name, response.results.iter())?;
        check(api, result.error_code, result.error_message.as_ref())?;
        Ok(result
            .configs
            .iter()
            .map(|entry| ConfigEntry {
                name: entry.name.to_string(),
                value: entry.value.as_ref().map(ToString::to_string),
                source: entry.config_source,
                read_only: entry.read_only,
            })
            .collect())
    }

    /// Sets and removes overrides of topic `name`, leaving its other overrides alone
    /// (IncrementalAlterConfigs, any broker).
    pub async fn alter_topic_configs(
        &mut self,
        name: &str,
        changes: &[ConfigChange<'_>],
    ) -> Result<(), ClientError> {
        let api = ApiName(IncrementalAlterConfigsRequest::KEY);
        let configs = changes
            .iter()
            .map(|change| match change {
                // Operation codes: 0 SET, 1 DELETE.
                ConfigChange::Set(key, value) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(value.to_string()))),
                ConfigChange::Delete(key) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_config_operation(1)
                    .with_value(None),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configs(configs),
        ]);
        let response = self.call(Route::AnyBroker, &request).await?;
        let result = single(api, name, response.responses.iter())?;
        check(api, result.error_code, result.error_message.as_ref())
    }

    /// Every offset `group` has committed (OffsetFetch for all partitions, at its coordinator);
    /// partitions without a committed offset are left out.
    pub async fn group_offsets(
        &mut self,
        group: &str,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let api = ApiName(OffsetFetchRequest::KEY);
        let route = Route::Coordinator {
            key_type: COORDINATOR_GROUP,
            key: group,
        };
        let version = self
            .connection(route)
            .await?
            .version_for::<OffsetFetchRequest>()?;
        let group_id = GroupId(StrBytes::from_string(group.to_string()));
        let mut request = OffsetFetchRequest::default();
        // v8 asks for a batch of groups; before, for one. No topics asks for all of them.
        if version >= 8 {
            request.groups = vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id)
                .with_topics(None)];
        } else {
            request.group_id = group_id;
            request.topics = None;
        }
        let response = self
            .call_with(route, &request, |response| {
                let codes = std::iter::once(response.error_code)
                    .chain(response.groups.iter().map(|group| group.error_code));
                first_retriable(api, codes.map(|code| (code, None)))
            })
            .await?;
        let mut offsets = Vec::new();
        if version >= 8 {
            let found = single(api, group, response.groups.iter())?;
            check(api, found.error_code, None)?;
            for topic in &found.topics {
                for partition in &topic.partitions {
                    check(api, partition.error_code, None)?;
                    offsets.push((
                        topic.name.to_string(),
                        partition.partition_index,
                        partition.committed_offset,
                    ));
                }
            }
        } else {
            check(api, response.error_code, None)?;
            for topic in &response.topics {
                for partition in &topic.partitions {
                    check(api, partition.error_code, None)?;
                    offsets.push((
                        topic.name.to_string(),
                        partition.partition_index,
                        partition.committed_offset,
                    ));
                }
            }
        }
        Ok(offsets
            .into_iter()
            // A partition without a committed offset comes back as -1.
            .filter(|(_, _, offset)| *offset >= 0)
            .map(|(topic, partition, offset)| CommittedOffset {
                topic,
                partition,
                offset,
            })
            .collect())
    }

    /// Commits offsets for `group` without joining it (generation -1, no member), which the
    /// coordinator accepts only while the group has no members: Kafka's rule for resets.
    pub async fn commit_group_offsets(
        &mut self,
        group: &str,
        offsets: &[CommittedOffset],
    ) -> Result<(), ClientError> {
        let api = ApiName(OffsetCommitRequest::KEY);
        let mut by_topic: std::collections::BTreeMap<&str, Vec<OffsetCommitRequestPartition>> =
            std::collections::BTreeMap::new();
        for offset in offsets {
            by_topic.entry(&offset.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(offset.partition)
                    .with_committed_offset(offset.offset)
                    .with_committed_leader_epoch(-1),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let route = Route::Coordinator {
            key_type: COORDINATOR_GROUP,
            key: group,
        };
        let response = self
            .call_with(route, &request, |response| {
                let codes = response.topics.iter().flat_map(|topic| &topic.partitions);
                first_retriable(api, codes.map(|partition| (partition.error_code, None)))
            })
            .await?;
        for topic in &response.topics {
            for partition in &topic.partitions {
                check(api, partition.error_code, None)?;
            }
        }
        Ok(())
    }

    /// Deletes `group` with its committed offsets (at its coordinator); the broker refuses a
    /// group with members.
    pub async fn delete_group(&mut self, group: &str) -> Result<(), ClientError> {
        let api = ApiName(DeleteGroupsRequest::KEY);
        let request = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(StrBytes::from_string(group.to_string()))]);
        let route = Route::Coordinator {
            key_type: COORDINATOR_GROUP,
            key: group,
        };
        let response = self
            .call_with(route, &request, |response| {
                first_retriable(api, response.results.iter().map(|r| (r.error_code, None)))
            })
            .await?;
        let result = response
            .results
            .iter()
            .find(|result| result.group_id.as_str() == group)
            .ok_or_else(|| missing(api, group))?;
        check(api, result.error_code, None)
    }

    /// The group as its coordinator describes it (DescribeGroups). Kafka describes a group it
    /// does not know as `Dead`, without an error.
    pub async fn describe_group(&mut self, group: &str) -> Result<DescribedGroup, ClientError> {
        let api = ApiName(DescribeGroupsRequest::KEY);
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
        let route = Route::Coordinator {
            key_type: COORDINATOR_GROUP,
            key: group,
        };
        let response = self
            .call_with(route, &request, |response| {
                let codes = response.groups.iter();
                first_retriable(api, codes.map(|g| (g.error_code, g.error_message.clone())))
            })
            .await?;
        let described = response
            .groups
            .into_iter()
            .find(|described| described.group_id.as_str() == group)
            .ok_or_else(|| missing(api, group))?;
        check(api, described.error_code, described.error_message.as_ref())?;
        Ok(described)
    }

    /// Every group of every broker (ListGroups asks one broker for the groups it coordinates).
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>, ClientError> {
        let api = ApiName(ListGroupsRequest::KEY);
        let mut listed = Vec::new();
        for node in self.broker_ids().await? {
            let response = self
                .call_with(
                    Route::Node(node),
                    &ListGroupsRequest::default(),
                    |response| first_retriable(api, [(response.error_code, None)]),
                )
                .await?;
            check(api, response.error_code, None)?;
            listed.extend(response.groups.iter().map(|group| GroupListing {
                group: group.group_id.to_string(),
                state: group.group_state.to_string(),
                protocol_type: group.protocol_type.to_string(),
            }));
        }
        Ok(listed)
    }

    /// The offset ListOffsets finds for `timestamp` in one partition (at its leader):
    /// [`EARLIEST_TIMESTAMP`], [`LATEST_TIMESTAMP`], or the first record at or after a time
    /// (-1 where there is none).
    pub async fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, ClientError> {
        let api = ApiName(ListOffsetsRequest::KEY);
        let leader = self.partition_leader(topic, partition).await?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        let response = self
            .call_with(Route::Node(leader), &request, |response| {
                let codes = response.topics.iter().flat_map(|topic| &topic.partitions);
                first_retriable(api, codes.map(|partition| (partition.error_code, None)))
            })
            .await?;
        let found = response
            .topics
            .iter()
            .filter(|answer| answer.name.as_str() == topic)
            .flat_map(|answer| &answer.partitions)
            .find(|answer| answer.partition_index == partition)
            .ok_or_else(|| missing(api, topic))?;
        check(api, found.error_code, None)?;
        Ok(found.offset)
    }

    /// Every transaction every broker coordinates (ListTransactions asks one broker for its
    /// own), optionally only those in the states Kafka names `states`.
    pub async fn list_transactions(
        &mut self,
        states: &[String],
    ) -> Result<Vec<TransactionListing>, ClientError> {
        let api = ApiName(ListTransactionsRequest::KEY);
        let request = ListTransactionsRequest::default()
            .with_state_filters(
                states
                    .iter()
                    .map(|state| StrBytes::from_string(state.clone()))
                    .collect(),
            )
            .with_duration_filter(-1);
        let mut listed = Vec::new();
        for node in self.broker_ids().await? {
            let response = self
                .call_with(Route::Node(node), &request, |response| {
                    first_retriable(api, [(response.error_code, None)])
                })
                .await?;
            check(api, response.error_code, None)?;
            listed.extend(
                response
                    .transaction_states
                    .iter()
                    .map(|state| TransactionListing {
                        transactional_id: state.transactional_id.to_string(),
                        producer_id: state.producer_id.0,
                        state: state.transaction_state.to_string(),
                        coordinator: node,
                    }),
            );
        }
        Ok(listed)
    }

    /// A transactional id's state as its coordinator describes it (DescribeTransactions).
    pub async fn describe_transaction(
        &mut self,
        transactional_id: &str,
    ) -> Result<DescribedTransaction, ClientError> {
        let api = ApiName(DescribeTransactionsRequest::KEY);
        let request =
            DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
                StrBytes::from_string(transactional_id.to_string()),
            )]);
        let route = Route::Coordinator {
            key_type: COORDINATOR_TRANSACTION,
            key: transactional_id,
        };
        let response = self
            .call_with(route, &request, |response| {
                let codes = response.transaction_states.iter();
                first_retriable(api, codes.map(|state| (state.error_code, None)))
            })
            .await?;
        let described = response
            .transaction_states
            .into_iter()
            .find(|state| state.transactional_id.as_str() == transactional_id)
            .ok_or_else(|| missing(api, transactional_id))?;
        check(api, described.error_code, None)?;
        Ok(described)
    }

    /// The producers the leader of one partition knows (DescribeProducers), with each one's
    /// open transaction.
    pub async fn describe_producers(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerState>, ClientError> {
        let api = ApiName(DescribeProducersRequest::KEY);
        let leader = self.partition_leader(topic, partition).await?;
        let request =
            DescribeProducersRequest::default().with_topics(vec![ProducersTopicRequest::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![partition])]);
        let response = self
            .call_with(Route::Node(leader), &request, |response| {
                let codes = response.topics.iter().flat_map(|topic| &topic.partitions);
                first_retriable(
                    api,
                    codes.map(|partition| (partition.error_code, partition.error_message.clone())),
                )
            })
            .await?;
        let found = response
            .topics
            .into_iter()
            .filter(|answer| answer.name.as_str() == topic)
            .flat_map(|answer| answer.partitions)
            .find(|answer| answer.partition_index == partition)
            .ok_or_else(|| missing(api, topic))?;
        check(api, found.error_code, found.error_message.as_ref())?;
        Ok(found.active_producers)
    }

    /// Has the leader of one partition write an ABORT marker for a producer's open
    /// transaction there (WriteTxnMarkers, as `kafka-transactions.sh abort` sends it).
    pub async fn abort_transaction(
        &mut self,
        topic: &str,
        partition: i32,
        producer: &ProducerState,
    ) -> Result<(), ClientError> {
        let api = ApiName(WriteTxnMarkersRequest::KEY);
        let leader = self.partition_leader(topic, partition).await?;
        let request =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(producer.producer_id)
                .with_producer_epoch(producer.producer_epoch as i16)
                .with_transaction_result(false)
                .with_coordinator_epoch(producer.coordinator_epoch.max(0))
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![partition])])]);
        let response = self
            .call_with(Route::Node(leader), &request, |response| {
                let codes = response
                    .markers
                    .iter()
                    .flat_map(|marker| &marker.topics)
                    .flat_map(|topic| &topic.partitions);
                first_retriable(api, codes.map(|partition| (partition.error_code, None)))
            })
            .await?;
        let code = response
            .markers
            .iter()
            .flat_map(|marker| &marker.topics)
            .flat_map(|topic| &topic.partitions)
            .find(|answer| answer.partition_index == partition)
            .map(|answer| answer.error_code)
            .ok_or_else(|| missing(api, topic))?;
        check(api, code, None)
    }

    /// The leader of one partition, from fresh metadata.
    pub async fn partition_leader(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<i32, ClientError> {
        let api = ApiName(kafka_protocol::messages::MetadataRequest::KEY);
        let metadata = self.metadata(Some(&[topic])).await?;
        let found = single(
            api,
            topic,
            metadata
                .topics
                .iter()
                .filter(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic)),
        )?;
        check(api, found.error_code, None)?;
        let leader = found
            .partitions
            .iter()
            .find(|answer| answer.partition_index == partition)
            .map(|answer| answer.leader_id.0)
            .ok_or_else(|| {
                ClientError::kafka(
                    api,
                    3,
                    Some(&format!("topic '{topic}' has no partition {partition}")),
                )
            })?;
        if leader < 0 {
            return Err(ClientError::kafka(api, 5, None));
        }
        Ok(leader)
    }

    /// The request timeout in milliseconds, for requests that carry one for the broker.
    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.options().request_timeout.as_millis()).unwrap_or(i32::MAX)
    }
}

/// The one result of an answer about one item, or an error saying the answer lacked it.
fn single<T>(
    api: ApiName,
    item: &str,
    mut results: impl Iterator<Item = T>,
) -> Result<T, ClientError> {
    results.next().ok_or_else(|| missing(api, item))
}

/// An answer that does not mention the item asked about.
fn missing(api: ApiName, item: &str) -> ClientError {
    ClientError::kafka(
        api,
        -1,
        Some(&format!("the answer does not mention '{item}'")),
    )
}

/// The error of a per-item error code, keeping the broker's message.
fn check(api: ApiName, code: i16, message: Option<&StrBytes>) -> Result<(), ClientError> {
    if code == 0 {
        return Ok(());
    }
    Err(ClientError::kafka(
        api,
        code,
        message.map(|message| message.as_str()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sources_have_kafkas_names() {
        assert_eq!(config_source_name(1), "topic");
        assert_eq!(config_source_name(5), "default");
        assert_eq!(config_source_name(42), "unknown");
    }

    #[test]
    fn a_per_item_error_keeps_the_brokers_message() {
        let message = StrBytes::from_static_str("invalid value 'soon' for retention.ms");
        let error = check(ApiName(44), 40, Some(&message)).unwrap_err();
        assert_eq!(error.code(), Some(40));
        assert_eq!(error.broker_message(), Some(message.as_str()));
        assert!(check(ApiName(44), 0, None).is_ok());
    }
}
