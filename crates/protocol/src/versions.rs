//! The API versions Cauce implements: the single source for ApiVersions and for dispatch.
//!
//! Each range is what the handlers really implement, intersected with what the schema crate
//! can decode. Clients pick the highest version both sides know, so a range here is a promise.

use kafka_protocol::messages::ApiKey;

/// One API and the versions of it that the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest version advertised.
    pub min_version: i16,
    /// Highest version advertised and decoded.
    pub max_version: i16,
    /// Lowest version actually decoded; below it the broker answers UNSUPPORTED_VERSION.
    /// Differs from `min_version` only for Produce, see [`PRODUCE_ADVERTISED_MIN_VERSION`].
    pub min_decoded_version: i16,
}

/// librdkafka refuses to use compression with a broker whose Produce range does not start at 0
/// (KAFKA-18659), so Kafka 4 advertises Produce from version 0 while rejecting versions 0-2.
pub const PRODUCE_ADVERTISED_MIN_VERSION: i16 = 0;

const fn api(api_key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    SupportedApi {
        api_key,
        min_version,
        max_version,
        min_decoded_version: min_version,
    }
}

/// Every API the broker answers, in api-key order.
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    SupportedApi {
        api_key: ApiKey::Produce,
        min_version: PRODUCE_ADVERTISED_MIN_VERSION,
        max_version: 11,
        min_decoded_version: 3,
    },
    api(ApiKey::Fetch, 4, 16),
    api(ApiKey::ListOffsets, 1, 8),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::FindCoordinator, 0, 5),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    // Clients' versions only: 4 and 5 are the brokers' verification requests (KIP-890).
    api(ApiKey::AddPartitionsToTxn, 0, 3),
    api(ApiKey::AddOffsetsToTxn, 0, 3),
    // Version 5 is transaction version 2's, which Cauce does not finalize yet.
    api(ApiKey::EndTxn, 0, 4),
    api(ApiKey::WriteTxnMarkers, 1, 1),
    api(ApiKey::TxnOffsetCommit, 0, 3),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::AlterPartitionReassignments, 0, 0),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::DescribeQuorum, 0, 2),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    // Version 2's transactional id pattern is a Java regular expression: not offered.
    api(ApiKey::ListTransactions, 0, 1),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The supported range of an API, if the broker answers it at all.
pub fn supported(api_key: ApiKey) -> Option<&'static SupportedApi> {
    SUPPORTED_APIS.iter().find(|api| api.api_key == api_key)
}

/// Whether the broker decodes this version of this API.
pub fn is_supported(api_key: ApiKey, version: i16) -> bool {
    supported(api_key)
        .is_some_and(|api| version >= api.min_decoded_version && version <= api.max_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_fit_the_schema_crate() {
        for api in SUPPORTED_APIS {
            let schema = api.api_key.valid_versions();
            assert!(
                api.min_decoded_version >= schema.min,
                "{:?} decodes below the schema",
                api.api_key
            );
            assert!(
                api.max_version <= schema.max,
                "{:?} advertises above the schema",
                api.api_key
            );
            assert!(api.min_version <= api.min_decoded_version);
        }
    }

    #[test]
    fn produce_is_advertised_from_version_zero_but_decoded_from_three() {
        let produce = supported(ApiKey::Produce).unwrap();
        assert_eq!(produce.min_version, 0);
        assert!(!is_supported(ApiKey::Produce, 2));
        assert!(is_supported(ApiKey::Produce, 3));
    }

    #[test]
    fn keys_are_sorted_and_unique() {
        let keys: Vec<i16> = SUPPORTED_APIS
            .iter()
            .map(|api| api.api_key as i16)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
    }
}
