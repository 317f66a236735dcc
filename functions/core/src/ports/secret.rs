//! The secret port: an installation secret read when it is first needed (the access
//! check's, SPEC section 5), from the environment or from Secrets Manager.
//!
//! Guarantees of every adapter: the value is never logged or put in an error; a failed
//! read says where it failed, with its cause as the error's source.

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[error("the secret {name} could not be read")]
pub struct SecretReadError {
    pub name: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secret's text, trimmed.
    async fn read(&self) -> Result<String, SecretReadError>;
}

/// A secret given as a value (an environment variable, the local runner).
pub struct GivenSecret(String);

impl GivenSecret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
}

#[async_trait]
impl SecretSource for GivenSecret {
    async fn read(&self) -> Result<String, SecretReadError> {
        Ok(self.0.trim().to_owned())
    }
}
