//! Receiver URLs: an absolute http(s) URL that passed the installation's rules, for a
//! subscription's `trigger_url`, its `auth`'s `token_url` and the product's access check.
//! Parsed at the edge; a refusal names the field and the rule.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::model::network::NetworkPolicy;

pub const MAX_URL_LEN: usize = 2048;

/// Why a URL was refused: a sentence naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(String),
}

/// The rule for trigger URLs, set per installation.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    /// Accept `http://` as well as `https://`.
    pub allow_http: bool,
    pub network: NetworkPolicy,
}

/// An absolute http(s) URL that passed the installation's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TriggerUrl(String);

impl TriggerUrl {
    pub fn parse(raw: &str, policy: &UrlPolicy) -> Result<Self, UrlError> {
        Self::parse_field(raw, policy, "trigger_url")
    }

    /// The same rules for another field's URL (`auth`'s `token_url`), named in the refusals.
    pub fn parse_field(
        raw: &str,
        policy: &UrlPolicy,
        field: &'static str,
    ) -> Result<Self, UrlError> {
        use UrlError::*;
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(Missing(field));
        }
        if raw.len() > MAX_URL_LEN {
            return Err(Invalid(format!(
                "{field} must be at most {MAX_URL_LEN} characters"
            )));
        }
        let scheme_rule = if policy.allow_http {
            format!("{field} must be an absolute http or https URL")
        } else {
            format!("{field} must be an absolute https URL")
        };
        let url = Url::parse(raw).map_err(|_| Invalid(scheme_rule.clone()))?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            _ => return Err(Invalid(scheme_rule)),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid(format!(
                "{field} must not carry a user name or password"
            )));
        }
        let literal: Option<IpAddr> = match url.host() {
            None => return Err(Invalid(scheme_rule)),
            Some(Host::Ipv4(v4)) => Some(v4.into()),
            Some(Host::Ipv6(v6)) => Some(v6.into()),
            Some(Host::Domain(d))
                if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") =>
            {
                Some(IpAddr::from([127, 0, 0, 1]))
            }
            Some(Host::Domain(_)) => None,
        };
        if let Some(ip) = literal {
            policy.network.check(ip).map_err(|refused| {
                Invalid(format!(
                    "{field} must not point at {}",
                    refused.class.describe()
                ))
            })?;
        }
        Ok(Self(url.into()))
    }

    /// For values read back from the store, which were validated when written.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::IpRange;

    fn strict() -> UrlPolicy {
        UrlPolicy::default()
    }

    #[test]
    fn https_urls_pass_and_others_explain_why_not() {
        assert!(TriggerUrl::parse("https://example.com/hook", &strict()).is_ok());
        let err = TriggerUrl::parse("http://example.com/hook", &strict()).unwrap_err();
        assert_eq!(err.to_string(), "trigger_url must be an absolute https URL");
        assert!(TriggerUrl::parse("/relative", &strict()).is_err());
        assert!(TriggerUrl::parse("ftp://example.com", &strict()).is_err());
        assert!(TriggerUrl::parse("https://user:pw@example.com", &strict()).is_err());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(
            TriggerUrl::parse(&long, &strict())
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
    }

    #[test]
    fn literal_private_targets_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/x",
            "https://10.0.0.5/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:192.168.0.1]/x",
            "https://localhost/x",
        ] {
            let err = TriggerUrl::parse(url, &strict()).unwrap_err();
            assert!(
                err.to_string().starts_with("trigger_url must not point at"),
                "{url}: {err}"
            );
        }
        let local = UrlPolicy {
            allow_http: true,
            network: NetworkPolicy::allowing(IpRange::loopback()),
        };
        assert!(TriggerUrl::parse("http://127.0.0.1:9000/hook", &local).is_ok());
        assert!(TriggerUrl::parse("http://10.0.0.1/hook", &local).is_err());
    }
}
