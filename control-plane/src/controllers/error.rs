//! Why a reconcile failed; the key is retried with backoff.

use drover_proto::client::ClientError;

/// One reconcile's failure. Messages read well in a log line or an Event.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// An API call failed; the reconcile is retried.
    #[error("{action} {object}: {source}")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: ClientError,
    },
    /// The object cannot be acted on as written (e.g. a bad selector).
    #[error("{object}: {message}")]
    Invalid { object: String, message: String },
}

impl ControllerError {
    pub fn api(action: &'static str, object: impl Into<String>, source: ClientError) -> Self {
        ControllerError::Api {
            action,
            object: object.into(),
            source,
        }
    }
}
