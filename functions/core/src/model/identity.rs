//! Who is calling: a user of a deployment (tenant), with the claims the spec names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A deployment (tenant) name such as `hq` or `acme`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Deployment(String);

#[derive(Debug, thiserror::Error)]
#[error("a deployment is 1 to 63 characters of lowercase letters, digits, '-' and '_'")]
pub struct InvalidDeployment;

impl Deployment {
    pub fn parse(s: &str) -> Result<Self, InvalidDeployment> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidDeployment)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Deployment {
    type Error = InvalidDeployment;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Deployment> for String {
    fn from(d: Deployment) -> String {
        d.0
    }
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's numeric id within a deployment.
pub type UserId = u64;

/// The owner of a subscription: a user of one deployment. Every store key starts with it,
/// so no lookup can cross users or deployments by accident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    pub deployment: Deployment,
    pub user_id: UserId,
}

/// The scope that lets a service publish events.
pub const PUBLISH_SCOPE: &str = "webhooks:publish";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub deployment: Deployment,
    pub name: String,
    pub email: String,
    pub pro: bool,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn owner(&self) -> Owner {
        Owner {
            deployment: self.deployment.clone(),
            user_id: self.user_id,
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}
