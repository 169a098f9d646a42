//! InitProducerId: producer ids and epochs for idempotent producers.

use cauce_protocol::kafka::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use cauce_protocol::ResponseError;

use super::{Context, Reply};

pub fn init_producer_id(context: Context, request: InitProducerIdRequest) -> Reply {
    if let Some(transactional_id) = &request.transactional_id {
        tracing::info!(
            client = %context.client.address,
            transactional_id = transactional_id.as_str(),
            "InitProducerId with a transactional id refused: transactions are not supported yet"
        );
        let response = InitProducerIdResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        return context.respond(&response);
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
