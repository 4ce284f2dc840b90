//! Share sessions (Kafka's `ShareSessionCache`): the partitions a member fetches from this
//! broker, so that a ShareFetch need name only what changes. A session is keyed by group and
//! member, opened with epoch 0, continued with each next epoch, closed with -1, and belongs
//! to the connection that opened it: when that connection closes, the session goes and the
//! member's acquired records are released.

use std::collections::HashMap;

use parking_lot::Mutex;
use uuid::Uuid;

/// A partition of a share session: topic id and index.
pub type SessionPartition = (Uuid, i32);

pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

/// Why a share session request is refused; the whole request fails with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("The share session was not found.")]
    NotFound,
    #[error("The share session epoch is invalid.")]
    InvalidEpoch,
    #[error("The limit of share sessions has been reached.")]
    LimitReached,
    #[error("Acknowledge data present in the initial fetch request")]
    AcknowledgeInInitialFetch,
}

/// What the request's session context is (Kafka's ShareSessionContext and FinalContext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    /// A new session (epoch 0): every partition is answered.
    Full(Vec<SessionPartition>),
    /// A continued session: its partitions after this request's additions and removals;
    /// only those with something to say are answered.
    Incremental(Vec<SessionPartition>),
    /// The closing request (epoch -1): acknowledgements only, then the session goes.
    Final(Vec<SessionPartition>),
}

impl From<SessionError> for crate::error::BrokerError {
    fn from(err: SessionError) -> Self {
        use crate::error::BrokerError as B;
        match err {
            SessionError::NotFound => B::ShareSessionNotFound,
            SessionError::InvalidEpoch => B::InvalidShareSessionEpoch,
            SessionError::LimitReached => B::ShareSessionLimitReached,
            SessionError::AcknowledgeInInitialFetch => B::InvalidRequest(err.to_string()),
        }
    }
}

#[derive(Debug)]
struct Session {
    partitions: Vec<SessionPartition>,
    /// The epoch the next request must carry.
    epoch: i32,
    connection: u64,
}

type Key = (String, String);

pub struct ShareSessions {
    max_sessions: usize,
    sessions: Mutex<HashMap<Key, Session>>,
}

/// Kafka's `ShareRequestMetadata.nextEpoch`.
fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        INITIAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl ShareSessions {
    pub fn new(max_sessions: usize) -> ShareSessions {
        ShareSessions {
            max_sessions,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// ShareFetch's session step (Kafka's `SharePartitionManager.newContext`).
    #[allow(clippy::too_many_arguments)]
    pub fn fetch_context(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        wanted: &[SessionPartition],
        forgotten: &[SessionPartition],
        acknowledges: bool,
        connection: u64,
    ) -> Result<Context, SessionError> {
        let key = (group.to_owned(), member.to_owned());
        let mut sessions = self.sessions.lock();
        match epoch {
            FINAL_EPOCH => match sessions.get(&key) {
                Some(session) => Ok(Context::Final(session.partitions.clone())),
                None => Err(SessionError::NotFound),
            },
            INITIAL_EPOCH => {
                if acknowledges {
                    return Err(SessionError::AcknowledgeInInitialFetch);
                }
                sessions.remove(&key);
                if sessions.len() >= self.max_sessions {
                    return Err(SessionError::LimitReached);
                }
                let mut partitions: Vec<SessionPartition> = Vec::new();
                for p in wanted {
                    if !partitions.contains(p) {
                        partitions.push(*p);
                    }
                }
                sessions.insert(
                    key,
                    Session {
                        partitions: partitions.clone(),
                        epoch: next_epoch(INITIAL_EPOCH),
                        connection,
                    },
                );
                Ok(Context::Full(partitions))
            }
            _ => {
                let session = sessions.get_mut(&key).ok_or(SessionError::NotFound)?;
                if session.epoch != epoch {
                    return Err(SessionError::InvalidEpoch);
                }
                for p in wanted {
                    if !session.partitions.contains(p) {
                        session.partitions.push(*p);
                    }
                }
                session.partitions.retain(|p| !forgotten.contains(p));
                session.epoch = next_epoch(epoch);
                Ok(Context::Incremental(session.partitions.clone()))
            }
        }
    }

    /// ShareAcknowledge's session step (Kafka's `acknowledgeSessionUpdate`): a session must
    /// exist and the epoch follow on; -1 is answered and then closes it.
    pub fn acknowledge_context(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
    ) -> Result<(), SessionError> {
        if epoch == INITIAL_EPOCH {
            return Err(SessionError::InvalidEpoch);
        }
        let key = (group.to_owned(), member.to_owned());
        let mut sessions = self.sessions.lock();
        let session = sessions.get_mut(&key).ok_or(SessionError::NotFound)?;
        if epoch == FINAL_EPOCH {
            return Ok(());
        }
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        session.epoch = next_epoch(epoch);
        Ok(())
    }

    /// Closes the member's session; its partitions, to release what the member holds.
    pub fn close(&self, group: &str, member: &str) -> Option<Vec<SessionPartition>> {
        let key = (group.to_owned(), member.to_owned());
        self.sessions.lock().remove(&key).map(|s| s.partitions)
    }

    /// The sessions a closed connection had: (group, member, partitions), now removed.
    pub fn connection_closed(
        &self,
        connection: u64,
    ) -> Vec<(String, String, Vec<SessionPartition>)> {
        let mut sessions = self.sessions.lock();
        let keys: Vec<Key> = sessions
            .iter()
            .filter(|(_, s)| s.connection == connection)
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| sessions.remove(&k).map(|s| (k.0, k.1, s.partitions)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Uuid = Uuid::from_u128(7);

    fn open(s: &ShareSessions, member: &str) -> Result<Context, SessionError> {
        s.fetch_context("g", member, 0, &[(T, 0)], &[], false, 1)
    }

    #[test]
    fn epochs_follow_on_and_the_session_closes() {
        let s = ShareSessions::new(10);
        assert_eq!(open(&s, "m"), Ok(Context::Full(vec![(T, 0)])));
        let next = s.fetch_context("g", "m", 1, &[(T, 1)], &[(T, 0)], true, 1);
        assert_eq!(next, Ok(Context::Incremental(vec![(T, 1)])));
        assert_eq!(
            s.fetch_context("g", "m", 1, &[], &[], false, 1),
            Err(SessionError::InvalidEpoch)
        );
        assert_eq!(s.acknowledge_context("g", "m", 2), Ok(()));
        assert_eq!(
            s.acknowledge_context("g", "m", 0),
            Err(SessionError::InvalidEpoch)
        );
        assert!(matches!(
            s.fetch_context("g", "m", -1, &[], &[], false, 1),
            Ok(Context::Final(_))
        ));
        assert_eq!(s.close("g", "m"), Some(vec![(T, 1)]));
        assert_eq!(
            s.fetch_context("g", "m", 4, &[], &[], false, 1),
            Err(SessionError::NotFound)
        );
    }

    #[test]
    fn the_limit_and_acknowledgements_in_an_initial_fetch() {
        let s = ShareSessions::new(1);
        open(&s, "a").unwrap();
        assert_eq!(open(&s, "b"), Err(SessionError::LimitReached));
        // Reopening one's own session replaces it.
        assert!(open(&s, "a").is_ok());
        assert_eq!(
            s.fetch_context("g", "a", 0, &[], &[], true, 1),
            Err(SessionError::AcknowledgeInInitialFetch)
        );
        assert_eq!(s.connection_closed(2).len(), 0);
        assert_eq!(s.connection_closed(1).len(), 1);
        assert!(s.is_empty());
        open(&s, "b").unwrap();
    }
}
