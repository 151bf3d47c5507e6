//! The error types every `trellis.contract.v1` manifest knows without
//! declaring them (`UnexpectedError`, `ValidationError`, `AuthError`,
//! `TransferError`).
//!
//! Client stubs use [`BuiltinError`] for an RPC whose error list names one
//! of them when the manifest does not declare it under `errors`. The
//! format gives these errors no schema, so the wire shape read here is
//! lenient: an object tagged by `type` (the error's name), an optional
//! `message`, and any other fields kept in `details`.

use serde::{Deserialize, Serialize};

/// Fields of a built-in error besides its `type` tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuiltinErrorBody {
    /// A human-readable explanation, if the service sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Every other field of the error object.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A built-in error of the published format, tagged by `type` on the wire
/// (`{"type": "AuthError", "message": "..."}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BuiltinError {
    /// `UnexpectedError`: the service failed in a way it did not plan for.
    UnexpectedError(BuiltinErrorBody),
    /// `ValidationError`: the request did not satisfy the input schema.
    ValidationError(BuiltinErrorBody),
    /// `AuthError`: the caller is not allowed to make this call.
    AuthError(BuiltinErrorBody),
    /// `TransferError`: a transfer the call depends on failed.
    TransferError(BuiltinErrorBody),
}

impl BuiltinError {
    /// The error's type name as manifests spell it (`AuthError`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            BuiltinError::UnexpectedError(_) => "UnexpectedError",
            BuiltinError::ValidationError(_) => "ValidationError",
            BuiltinError::AuthError(_) => "AuthError",
            BuiltinError::TransferError(_) => "TransferError",
        }
    }

    /// The fields besides the tag.
    pub fn body(&self) -> &BuiltinErrorBody {
        match self {
            BuiltinError::UnexpectedError(b)
            | BuiltinError::ValidationError(b)
            | BuiltinError::AuthError(b)
            | BuiltinError::TransferError(b) => b,
        }
    }

    /// The message, if the service sent one.
    pub fn message(&self) -> Option<&str> {
        self.body().message.as_deref()
    }
}

impl std::fmt::Display for BuiltinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.message() {
            Some(message) => write!(f, "{}: {message}", self.type_name()),
            None => f.write_str(self.type_name()),
        }
    }
}

impl std::error::Error for BuiltinError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_by_type_with_message_and_details() {
        let e: BuiltinError =
            serde_json::from_str(r#"{"type":"ValidationError","message":"bad","path":"/a"}"#)
                .expect("decodes");
        assert_eq!(e.type_name(), "ValidationError");
        assert_eq!(e.message(), Some("bad"));
        assert_eq!(e.body().details.get("path"), Some(&serde_json::json!("/a")));
        assert_eq!(e.to_string(), "ValidationError: bad");
        let back = serde_json::to_value(&e).expect("encodes");
        assert_eq!(
            back,
            serde_json::json!({"type":"ValidationError","message":"bad","path":"/a"})
        );
        let bare: BuiltinError = serde_json::from_str(r#"{"type":"AuthError"}"#).expect("bare");
        assert_eq!(bare, BuiltinError::AuthError(BuiltinErrorBody::default()));
        assert!(serde_json::from_str::<BuiltinError>(r#"{"type":"Other"}"#).is_err());
    }
}
