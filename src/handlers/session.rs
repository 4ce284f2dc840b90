//! What a handler knows of the connection a request came on: the listener (for the addresses
//! clients are told), the peer, the principal and where SASL authentication stands. The
//! network layer makes one per connection and hands it to every request's handler.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::{Principal, SaslExchange};
use crate::config::SecurityProtocol;
use crate::quotas::Throttle;

/// What a connection knows about the listener it arrived on.
#[derive(Debug)]
pub struct ListenerInfo {
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Host and port given to clients of this listener in Metadata and DescribeCluster.
    pub advertised: (String, i32),
}

/// Per-connection context handed to every handler.
#[derive(Debug)]
pub struct Session {
    pub peer: SocketAddr,
    /// The client's IP address, as ACLs name hosts.
    pub host: String,
    pub listener: Arc<ListenerInfo>,
    /// Who the client is: `User:ANONYMOUS` until SASL authenticates it, or the subject of
    /// its certificate on an SSL listener with client authentication.
    pub principal: Principal,
    /// Where the connection is in SASL authentication (complete at once without SASL).
    pub sasl: SaslExchange,
    /// The quota throttle a handler decided for the request being served (a fetch over its
    /// byte rate, a mutation over its rate), merged with the others once it is done.
    pub throttle: Option<Throttle>,
}

impl Session {
    pub fn new(peer: SocketAddr, listener: Arc<ListenerInfo>) -> Session {
        let sasl = SaslExchange::new(listener.protocol.uses_sasl());
        Session {
            peer,
            host: peer.ip().to_string(),
            listener,
            principal: Principal::anonymous(),
            sasl,
            throttle: None,
        }
    }

    /// The user quotas are matched on: the principal's name, as Kafka's
    /// `KafkaPrincipal.getName` (`alice` of `User:alice`).
    pub fn user_name(&self) -> &str {
        let principal = self.principal.as_str();
        principal
            .split_once(':')
            .map_or(principal, |(_, name)| name)
    }

    /// Keeps the longer of the request's throttles.
    pub fn throttled(&mut self, throttle: Option<Throttle>) {
        self.throttle = Throttle::longest(self.throttle.take(), throttle);
    }
}
