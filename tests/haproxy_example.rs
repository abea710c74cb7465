//! The shipped HAProxy example target parses and yields a working driver configuration.

use flightdeck::lb::haproxy::{Haproxy, SocketAddress};
use flightdeck::lb::LbClient;
use flightdeck::target::Target;

const EXAMPLE: &str = include_str!("../procedures/targets/haproxy.example.toml");

#[test]
fn example_target_parses() {
    let target: Target = toml::from_str(EXAMPLE).unwrap();
    assert_eq!(target.nodes.len(), 3);
    assert_eq!(target.probes.len(), 3);
    assert!(target.probes.iter().any(|p| p.health));

    let lb = target.lb.as_ref().unwrap();
    assert_eq!(lb.driver, "haproxy");
    assert_eq!(lb.address, "/run/haproxy/admin.sock");
    assert_eq!(lb.backend.as_deref(), Some("be_cluster"));
    // Every node has a server, and every mapping names a real node.
    for node in &target.nodes {
        assert!(
            lb.servers.contains_key(&node.name),
            "{} unmapped",
            node.name
        );
    }
    assert_eq!(lb.servers.len(), target.nodes.len());

    let driver = Haproxy::new(lb).unwrap();
    assert_eq!(
        driver.runtime().address(),
        &SocketAddress::Unix("/run/haproxy/admin.sock".into())
    );
    assert_eq!(driver.server_for("core2"), "graph-core-2");
    assert_eq!(driver.node_for("graph-core-2").as_deref(), Some("core2"));
    assert!(matches!(
        LbClient::from_config(lb).unwrap(),
        LbClient::Haproxy(_)
    ));
}
