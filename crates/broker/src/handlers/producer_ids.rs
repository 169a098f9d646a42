//! InitProducerId: producer ids and epochs for idempotent producers, and for transactional
//! ones through their transaction coordinator.

use cauce_protocol::kafka::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use cauce_protocol::ResponseError;

use super::{Context, Reply};
use crate::txn::state::ProducerIdAndEpoch;

/// First InitProducerId version that knows PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 4;

pub fn init_producer_id(context: Context, request: InitProducerIdRequest) -> Reply {
    if let Some(transactional_id) = request.transactional_id.clone() {
        return context.respond_later(|context| async move {
            let transactional_id = transactional_id.to_string();
            let expected = match (request.producer_id.0, request.producer_epoch) {
                (-1, -1) => Ok(None),
                (producer_id, epoch) if producer_id >= 0 && epoch >= 0 => {
                    Ok(Some(ProducerIdAndEpoch { producer_id, epoch }))
                }
                // Exactly one of them given.
                _ => Err(ResponseError::InvalidRequest),
            };
            let outcome = match expected {
                _ if transactional_id.is_empty() => Err(ResponseError::InvalidRequest),
                Ok(expected) => context
                    .broker
                    .transactions
                    .init_producer_id(
                        &context.broker,
                        &transactional_id,
                        request.transaction_timeout_ms,
                        expected,
                    )
                    .await
                    .map_err(|error| {
                        super::txn::fenced_for(context.version, PRODUCER_FENCED_VERSION, error)
                    }),
                Err(error) => Err(error),
            };
            match outcome {
                Ok((producer_id, epoch)) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(epoch),
                Err(error) => {
                    tracing::debug!(%transactional_id, ?error, "InitProducerId refused");
                    InitProducerIdResponse::default()
                        .with_error_code(error.code())
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1)
                }
            }
        });
    }
    context.respond_later(|context| async move {
        // KIP-360: a producer that asks with its current id and epoch gets the next epoch of the
        // same id, unless the epoch would overflow, when it gets a new id.
        let bumped = (request.producer_id.0 >= 0
            && request.producer_epoch >= 0
            && request.producer_epoch < i16::MAX - 1)
            .then(|| (request.producer_id.0, request.producer_epoch + 1));
        let assigned = match bumped {
            Some(pair) => Ok(pair),
            None => context.broker.next_producer_id().await.map(|id| (id, 0)),
        };
        match assigned {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(error) => {
                tracing::error!(%error, "producer id allocation failed");
                InitProducerIdResponse::default()
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
            }
        }
    })
}
