//! The registry's errors and the one place they become Confluent's error codes and HTTP
//! statuses (`{"error_code":40401,"message":"Subject 'x' not found."}`): the status is the
//! code's first three digits, except 409 which is its own code.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotFound(String),
    #[error("{0}")]
    Incompatible(String),
    #[error("{0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    #[error("Invalid mode. Valid values are READWRITE, READONLY, IMPORT")]
    InvalidMode,
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={0},version={1}}}.")]
    ReferenceExists(String, i32),
    #[error("Unrecognized field: {0}")]
    BadRequest(String),
    #[error("Error while storing the schema: {0}")]
    Store(String),
    #[error("Write to the Kafka store timed out while waiting for it to be read back")]
    Timeout,
    /// A write reached a node that does not lead `_schemas`: the HTTP layer forwards it to
    /// the leader, and answers 421 only for a request that was already forwarded once.
    #[error("This node does not lead the schemas topic; send writes to broker {0}'s registry")]
    NotLeader(i32),
    #[error("Unknown leader for the schemas topic")]
    UnknownLeader,
    #[error("The schema registry has not finished reading the schemas topic")]
    NotReady,
}

impl RegistryError {
    /// Confluent's `error_code`.
    pub fn code(&self) -> u32 {
        use RegistryError::*;
        match self {
            SubjectNotFound(_) => 40401,
            VersionNotFound(_) => 40402,
            SchemaNotFound(_) => 40403,
            SubjectSoftDeleted(_) => 40404,
            VersionNotSoftDeleted(..) => 40405,
            VersionSoftDeleted(..) => 40406,
            SubjectNotSoftDeleted(_) => 40407,
            SubjectConfigNotFound(_) => 40408,
            SubjectModeNotFound(_) => 40409,
            Incompatible(_) => 409,
            InvalidSchema(_) => 42201,
            InvalidVersion(_) => 42202,
            InvalidCompatibilityLevel => 42203,
            InvalidMode => 42204,
            OperationNotPermitted(_) => 42205,
            ReferenceExists(..) => 42206,
            BadRequest(_) => 422,
            Store(_) => 50001,
            Timeout => 50002,
            NotLeader(_) => 42101,
            UnknownLeader => 50004,
            NotReady => 50002,
        }
    }

    pub fn status(&self) -> u16 {
        match self.code() {
            code if code < 1000 => code as u16,
            code => (code / 100) as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_codes() {
        assert_eq!(RegistryError::SubjectNotFound("s".into()).status(), 404);
        assert_eq!(RegistryError::Incompatible("x".into()).status(), 409);
        assert_eq!(RegistryError::InvalidSchema("x".into()).status(), 422);
        assert_eq!(RegistryError::Store("x".into()).status(), 500);
        assert_eq!(RegistryError::NotLeader(2).status(), 421);
    }
}
