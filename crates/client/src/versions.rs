//! Which version of an API to speak: the newest that both this client and the broker know.

use std::collections::BTreeMap;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

use crate::error::ClientError;

/// The API versions one broker advertised in its ApiVersions answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerVersions {
    /// Oldest and newest version by API key; an API missing here is one the broker lacks.
    ranges: BTreeMap<i16, (i16, i16)>,
}

impl BrokerVersions {
    /// The ranges of an ApiVersions response.
    pub fn from_response(response: &ApiVersionsResponse) -> BrokerVersions {
        BrokerVersions {
            ranges: response
                .api_keys
                .iter()
                .map(|api| (api.api_key, (api.min_version, api.max_version)))
                .collect(),
        }
    }

    /// Ranges given directly, for tests and for brokers known in advance.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (i16, (i16, i16))>) -> BrokerVersions {
        BrokerVersions {
            ranges: ranges.into_iter().collect(),
        }
    }

    /// The broker's range for `api_key`, if it advertises the API.
    pub fn range(&self, api_key: i16) -> Option<(i16, i16)> {
        self.ranges.get(&api_key).copied()
    }

    /// The newest version of `api_key` in both `client` (what this crate can encode) and the
    /// broker's range.
    pub fn select(&self, api_key: i16, client: VersionRange) -> Result<i16, ClientError> {
        let broker = self.range(api_key);
        let common = broker.and_then(|(broker_min, broker_max)| {
            let newest = client.max.min(broker_max);
            let oldest = client.min.max(broker_min);
            (oldest <= newest).then_some(newest)
        });
        common.ok_or_else(|| ClientError::NoCommonVersion {
            api: ApiName(api_key),
            client_min: client.min,
            client_max: client.max,
            broker: broker
                .map_or_else(|| "none".to_string(), |(min, max)| format!("{min}..={max}")),
        })
    }
}

/// An API key shown by its name (`Fetch`, `CreateTopics`) in errors and logs, or by its number
/// when this crate does not know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiName(pub i16);

impl std::fmt::Display for ApiName {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match ApiKey::try_from(self.0) {
            Ok(key) => write!(formatter, "{key:?}"),
            Err(_) => write!(formatter, "api key {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: i16, max: i16) -> VersionRange {
        VersionRange { min, max }
    }

    #[test]
    fn the_newest_version_both_sides_know_is_chosen() {
        let broker = BrokerVersions::from_ranges([(1, (4, 12)), (3, (0, 9))]);
        assert_eq!(broker.select(1, range(0, 17)).unwrap(), 12);
        assert_eq!(broker.select(3, range(0, 7)).unwrap(), 7);
        assert_eq!(broker.select(1, range(4, 4)).unwrap(), 4);
    }

    #[test]
    fn disjoint_or_missing_ranges_are_refused_with_both_sides_named() {
        let broker = BrokerVersions::from_ranges([(1, (13, 17))]);
        let error = broker.select(1, range(0, 12)).unwrap_err().to_string();
        assert!(error.contains("Fetch"), "{error}");
        assert!(error.contains("client 0..=12"), "{error}");
        assert!(error.contains("broker 13..=17"), "{error}");
        let error = broker.select(19, range(0, 7)).unwrap_err().to_string();
        assert!(
            error.contains("CreateTopics") && error.contains("none"),
            "{error}"
        );
    }

    #[test]
    fn api_names_come_from_the_key() {
        assert_eq!(ApiName(18).to_string(), "ApiVersions");
        assert_eq!(ApiName(-7).to_string(), "api key -7");
    }
}
