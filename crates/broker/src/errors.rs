//! The one table from Cauce's internal errors to Kafka error codes.

use cauce_log::LogError;
use cauce_metadata::MetadataError;
use cauce_protocol::ResponseError;

/// The Kafka error a metadata failure is reported as.
pub fn metadata_error_code(error: &MetadataError) -> ResponseError {
    match error {
        MetadataError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        MetadataError::InvalidTopicName(_) => ResponseError::InvalidTopicException,
        MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        MetadataError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        MetadataError::InvalidConfig(_) => ResponseError::InvalidConfig,
        MetadataError::NotController(_) => ResponseError::NotController,
        MetadataError::StaleLeadership(_) => ResponseError::FencedLeaderEpoch,
        MetadataError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        MetadataError::NoReassignmentInProgress(_) => ResponseError::NoReassignmentInProgress,
        MetadataError::PolicyViolation(_) => ResponseError::PolicyViolation,
        MetadataError::Io(_) | MetadataError::BadRecord { .. } => ResponseError::UnknownServerError,
    }
}

/// The Kafka error a log failure is reported as.
pub fn log_error_code(error: &LogError) -> ResponseError {
    use cauce_protocol::batch::BatchError;
    match error {
        LogError::Batch(batch) => match batch {
            BatchError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            BatchError::UnsupportedMagic { .. } => ResponseError::UnsupportedForMessageFormat,
            BatchError::InvalidRecord { .. } => ResponseError::InvalidRecord,
            _ => ResponseError::CorruptMessage,
        },
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        LogError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        LogError::KeylessRecord { .. } => ResponseError::InvalidRecord,
        LogError::RecordSetTooLarge { .. } => ResponseError::RecordListTooLarge,
        LogError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        LogError::TransactionCoordinatorFenced { .. } => {
            ResponseError::TransactionCoordinatorFenced
        }
        _ => ResponseError::KafkaStorageError,
    }
}

/// The Kafka error a group coordinator refusal is reported as.
pub fn group_error_code(error: crate::group::state::GroupError) -> ResponseError {
    use crate::group::state::GroupError;
    match error {
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
    }
}

/// The Kafka error a KIP-848 heartbeat refusal is reported as.
pub fn consumer_group_error_code(
    error: crate::group::consumer_group::ConsumerGroupError,
) -> ResponseError {
    use crate::group::consumer_group::ConsumerGroupError;
    match error {
        ConsumerGroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        ConsumerGroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        ConsumerGroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        ConsumerGroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
        ConsumerGroupError::InvalidRequest => ResponseError::InvalidRequest,
        ConsumerGroupError::NotAConsumerGroup => ResponseError::GroupIdNotFound,
    }
}
