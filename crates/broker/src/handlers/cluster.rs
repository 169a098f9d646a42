//! DescribeCluster: the brokers and the controller.

use cauce_protocol::kafka::messages::describe_cluster_response::DescribeClusterBroker;
use cauce_protocol::kafka::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{text, Context, Reply};

pub fn describe_cluster(context: Context, _request: DescribeClusterRequest) -> Reply {
    let image = context.broker.metadata.image();
    let config = &context.broker.config;
    let brokers = image
        .brokers
        .values()
        .map(|registration| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(registration.broker_id))
                .with_host(text(registration.host.clone()))
                .with_port(registration.port)
                .with_rack(registration.rack.clone().map(text))
        })
        .collect();
    let response = DescribeClusterResponse::default()
        .with_cluster_id(text(image.cluster_id.clone()))
        .with_controller_id(BrokerId(config.node_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN);
    context.respond(&response)
}
