//! Starting and stopping the broker.

use std::time::Duration;

use cauce_integration_tests::BrokerProcess;

#[test]
fn ready_within_one_second_on_an_empty_data_dir() {
    let broker = BrokerProcess::start();
    assert!(
        broker.last_startup < Duration::from_secs(1),
        "startup took {:?}",
        broker.last_startup
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_restart_serves_again() {
    let mut broker = BrokerProcess::start();
    let status = broker.stop();
    assert!(status.success(), "exit status {status:?}");
    broker.restart();
    assert!(std::net::TcpStream::connect(broker.address).is_ok());
}
