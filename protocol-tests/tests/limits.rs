//! Connection limits and idle connections: a broker protects itself from clients that
//! open too many sockets or leave them silent.

use std::time::{Duration, Instant};

use samsa_protocol_tests::BrokerProcess;

#[test]
fn connections_over_the_per_ip_limit_are_closed() {
    let broker = BrokerProcess::start("max_connections_per_ip = 2\n").unwrap();
    let mut first = broker.connect().unwrap();
    let mut second = broker.connect().unwrap();
    // Both admitted connections work.
    first
        .send(&samsa_protocol_tests::client::api_versions_request(), 3)
        .unwrap();
    second
        .send(&samsa_protocol_tests::client::api_versions_request(), 3)
        .unwrap();
    let mut third = broker.connect().unwrap();
    assert!(
        third.is_closed_by_peer(),
        "a third connection from one IP must be closed"
    );
    // Closing one frees its slot for a new connection.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = broker.connect().unwrap();
        if again
            .send(&samsa_protocol_tests::client::api_versions_request(), 3)
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
    }
}

#[test]
fn total_connection_limit_applies_across_clients() {
    let broker = BrokerProcess::start("max_connections = 1\n").unwrap();
    let mut only = broker.connect().unwrap();
    only.send(&samsa_protocol_tests::client::api_versions_request(), 3)
        .unwrap();
    let mut refused = broker.connect().unwrap();
    assert!(refused.is_closed_by_peer());
    only.send(&samsa_protocol_tests::client::api_versions_request(), 3)
        .unwrap();
}

#[test]
fn idle_connections_are_closed_and_busy_ones_are_not() {
    let broker = BrokerProcess::start("connections_max_idle_ms = 300\n").unwrap();
    let mut idle = broker.connect().unwrap();
    let mut busy = broker.connect().unwrap();
    let started = Instant::now();
    // Keep one connection busy for longer than the idle limit.
    while started.elapsed() < Duration::from_millis(900) {
        busy.send(&samsa_protocol_tests::client::api_versions_request(), 3)
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        idle.is_closed_by_peer(),
        "a silent connection outlived connections_max_idle_ms"
    );
    busy.send(&samsa_protocol_tests::client::api_versions_request(), 3)
        .unwrap();
}
