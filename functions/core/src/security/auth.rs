//! Bearer tokens: JWTs verified here (HS256 with a shared secret, RS256 with public keys),
//! or claims that an API Gateway authorizer already verified. Both paths read the claims
//! with the same rules.
//!
//! A verified token is signed by a configured key with an accepted algorithm, carries
//! `exp` in the future and, when it has `nbf`, `nbf` in the past (both with 30 s of
//! leeway for clock skew), and the issuer and audience when those are configured.

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde_json::{Map, Value};

use crate::model::identity::{Caller, Deployment, UserId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("an Authorization: Bearer token is required")]
    Missing,
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("the bearer token has expired; request a new one")]
    Expired,
    #[error("the bearer token is not valid yet (its nbf lies in the future)")]
    NotYetValid,
    #[error("the bearer token's signature does not verify")]
    BadSignature,
    #[error("the bearer token is signed with an algorithm this installation does not accept")]
    WrongAlgorithm,
    #[error("the bearer token's claims are invalid: {0}")]
    InvalidClaims(&'static str),
    #[error("the bearer token is for a deployment this installation does not serve")]
    UnknownDeployment,
}

/// Verifies bearer tokens for one installation.
#[derive(Clone)]
pub struct TokenVerifier {
    hs256: Option<DecodingKey>,
    rs256: Vec<DecodingKey>,
    deployments: Option<Vec<Deployment>>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("hs256", &self.hs256.is_some())
            .field("rs256_keys", &self.rs256.len())
            .field("deployments", &self.deployments)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a configured RS256 public key is not a PEM RSA public key")]
pub struct BadPublicKey;

impl TokenVerifier {
    pub fn new(hs256_secret: Option<&[u8]>) -> Self {
        Self {
            hs256: hs256_secret.map(DecodingKey::from_secret),
            rs256: Vec::new(),
            deployments: None,
            issuer: None,
            audience: None,
        }
    }

    /// Adds RS256 public keys; `pems` may hold several PEM blocks one after another.
    pub fn with_rs256_pems(mut self, pems: &str) -> Result<Self, BadPublicKey> {
        for block in pems.split_inclusive("-----END PUBLIC KEY-----") {
            if block.trim().is_empty() {
                continue;
            }
            self.rs256.push(
                DecodingKey::from_rsa_pem(block.trim().as_bytes()).map_err(|_| BadPublicKey)?,
            );
        }
        Ok(self)
    }

    /// Serve only these deployments; tokens of any other are refused.
    pub fn restrict_deployments(mut self, deployments: Vec<Deployment>) -> Self {
        self.deployments = Some(deployments);
        self
    }

    pub fn expect_issuer(mut self, iss: Option<String>) -> Self {
        self.issuer = iss;
        self
    }

    pub fn expect_audience(mut self, aud: Option<String>) -> Self {
        self.audience = aud;
        self
    }

    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        let keys: Vec<&DecodingKey> = match header.alg {
            Algorithm::HS256 => self.hs256.iter().collect(),
            Algorithm::RS256 => self.rs256.iter().collect(),
            _ => Vec::new(),
        };
        if keys.is_empty() {
            return Err(AuthError::WrongAlgorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        let mut last = AuthError::BadSignature;
        for key in keys {
            match decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => return self.admit(caller_from_claims(&data.claims)?),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind::*;
                    last = match e.kind() {
                        ExpiredSignature => return Err(AuthError::Expired),
                        InvalidSignature => AuthError::BadSignature,
                        MissingRequiredClaim(_) => {
                            return Err(AuthError::InvalidClaims("exp is required"));
                        }
                        InvalidAudience => return Err(AuthError::InvalidClaims("wrong audience")),
                        InvalidIssuer => return Err(AuthError::InvalidClaims("wrong issuer")),
                        ImmatureSignature => return Err(AuthError::NotYetValid),
                        Json(_) | Base64(_) | Utf8(_) | InvalidToken => AuthError::Malformed,
                        _ => AuthError::BadSignature,
                    };
                }
            }
        }
        Err(last)
    }

    /// Claims an upstream authorizer verified (string-valued, as API Gateway passes them).
    pub fn admit_verified_claims(&self, claims: &Map<String, Value>) -> Result<Caller, AuthError> {
        self.admit(caller_from_claims(claims)?)
    }

    fn admit(&self, caller: Caller) -> Result<Caller, AuthError> {
        match &self.deployments {
            Some(list) if !list.contains(&caller.deployment) => Err(AuthError::UnknownDeployment),
            _ => Ok(caller),
        }
    }
}

/// Reads the spec's claims. Values may be strings where JSON would have numbers or bools:
/// API Gateway's JWT authorizer hands every claim over as a string.
///
/// A claim that is present but unreadable is refused with its name, never read as absent
/// or as a default: an array `sub` is not "no sub", a `pro` of `"yes"` is not "not pro",
/// a numeric `scope` is not "no scopes". `null` counts as absent.
pub fn caller_from_claims(claims: &Map<String, Value>) -> Result<Caller, AuthError> {
    // Some(Ok(text)) for a scalar, Some(Err(())) for an array or object, None when absent.
    let text = |k: &str| match claims.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Ok(s.clone())),
        Some(Value::Number(n)) => Some(Ok(n.to_string())),
        Some(Value::Bool(b)) => Some(Ok(b.to_string())),
        Some(Value::Array(_) | Value::Object(_)) => Some(Err(())),
    };
    let user_id: UserId = match text("sub") {
        None => return Err(AuthError::InvalidClaims("sub is required")),
        Some(t) => t
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(AuthError::InvalidClaims("sub must be a numeric user id"))?,
    };
    let deployment = match text("deployment") {
        None => return Err(AuthError::InvalidClaims("deployment is required")),
        Some(t) => t
            .ok()
            .and_then(|d| Deployment::parse(&d).ok())
            .ok_or(AuthError::InvalidClaims("deployment is malformed"))?,
    };
    let pro = match text("pro") {
        None => false,
        Some(Ok(t)) if matches!(t.as_str(), "true" | "1") => true,
        Some(Ok(t)) if matches!(t.as_str(), "false" | "0") => false,
        Some(_) => return Err(AuthError::InvalidClaims("pro must be true or false")),
    };
    let scope_error =
        AuthError::InvalidClaims("scope must be a space-separated string or a list of strings");
    let scope = match claims.get("scope") {
        None | Some(Value::Null) => claims.get("scp"),
        given => given,
    };
    let scopes = match scope {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(scope_error)?,
        Some(_) => return Err(scope_error),
    };
    let name = text("name")
        .transpose()
        .map_err(|()| AuthError::InvalidClaims("name must be a string"))?;
    let email = text("email")
        .transpose()
        .map_err(|()| AuthError::InvalidClaims("email must be a string"))?;
    Ok(Caller {
        user_id,
        deployment,
        name: name.unwrap_or_default(),
        email: email.unwrap_or_default(),
        pro,
        scopes,
    })
}

/// The claims of a token to mint (for the local runner and tests).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenClaims {
    pub sub: String,
    pub deployment: String,
    pub name: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pro: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub exp: i64,
}

/// Signs an HS256 token.
pub fn mint_hs256(secret: &[u8], claims: &TokenClaims) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing of plain claims cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> TokenClaims {
        TokenClaims {
            sub: "17".into(),
            deployment: "hq".into(),
            name: "Ada".into(),
            email: "ada@example.com".into(),
            pro: Some(true),
            scope: Some("webhooks:publish other".into()),
            exp,
        }
    }

    fn future() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64 + 3600
    }

    #[test]
    fn hs256_tokens_verify_into_callers() {
        let v = TokenVerifier::new(Some(b"secret"));
        let caller = v.verify(&mint_hs256(b"secret", &claims(future()))).unwrap();
        assert_eq!(caller.user_id, 17);
        assert_eq!(caller.deployment.as_str(), "hq");
        assert!(caller.pro);
        assert!(caller.has_scope("webhooks:publish"));
    }

    #[test]
    fn bad_tokens_say_why() {
        let v = TokenVerifier::new(Some(b"secret"));
        assert_eq!(v.verify("not-a-jwt"), Err(AuthError::Malformed));
        assert_eq!(
            v.verify(&mint_hs256(b"other", &claims(future()))),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.verify(&mint_hs256(b"secret", &claims(1_000))),
            Err(AuthError::Expired)
        );
        let mut c = claims(future());
        c.sub = "ada".into();
        assert!(matches!(
            v.verify(&mint_hs256(b"secret", &c)),
            Err(AuthError::InvalidClaims(_))
        ));
        assert_eq!(
            TokenVerifier::new(None).verify(&mint_hs256(b"secret", &claims(future()))),
            Err(AuthError::WrongAlgorithm)
        );
    }

    #[test]
    fn tokens_not_valid_yet_are_refused() {
        let v = TokenVerifier::new(Some(b"secret"));
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let with_nbf = |nbf: i64| {
            let mut claims = serde_json::to_value(claims(future())).unwrap();
            claims["nbf"] = nbf.into();
            encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap()
        };
        assert_eq!(v.verify(&with_nbf(now + 3600)), Err(AuthError::NotYetValid));
        assert_eq!(v.verify(&with_nbf(now - 60)).unwrap().user_id, 17);
    }

    #[test]
    fn deployments_can_be_restricted() {
        let v = TokenVerifier::new(Some(b"secret"))
            .restrict_deployments(vec![Deployment::parse("acme").unwrap()]);
        assert_eq!(
            v.verify(&mint_hs256(b"secret", &claims(future()))),
            Err(AuthError::UnknownDeployment)
        );
    }

    /// Found by `tests/tests/fuzz_parsers.rs`: claims present with a value that cannot be
    /// read were taken as absent or as a default (`sub: []` "is required", `pro: "yes"`
    /// not pro, a numeric scope no scopes, an object name an empty name).
    #[test]
    fn unreadable_claims_are_refused_by_name() {
        let base = serde_json::json!({"sub": "3", "deployment": "hq"});
        let with = |k: &str, v: Value| {
            let mut c = base.as_object().unwrap().clone();
            c.insert(k.into(), v);
            caller_from_claims(&c)
        };
        let refused = |k: &str, v: Value| match with(k, v.clone()) {
            Err(AuthError::InvalidClaims(m)) => m,
            other => panic!("{k} = {v} gave {other:?}"),
        };
        assert_eq!(
            refused("sub", serde_json::json!([])),
            "sub must be a numeric user id"
        );
        assert_eq!(
            refused("deployment", serde_json::json!({})),
            "deployment is malformed"
        );
        assert_eq!(
            refused("pro", serde_json::json!("yes")),
            "pro must be true or false"
        );
        assert_eq!(
            refused("pro", serde_json::json!(2)),
            "pro must be true or false"
        );
        assert!(refused("scope", serde_json::json!(5)).starts_with("scope must be"));
        assert!(refused("scp", serde_json::json!(["a", 1])).starts_with("scope must be"));
        assert_eq!(
            refused("name", serde_json::json!(["x"])),
            "name must be a string"
        );
        assert_eq!(
            refused("email", serde_json::json!({})),
            "email must be a string"
        );
        // What is readable still reads: strings for bools, null for absent.
        assert!(with("pro", serde_json::json!("false")).is_ok_and(|c| !c.pro));
        assert!(with("pro", serde_json::json!(true)).is_ok_and(|c| c.pro));
        assert!(with("name", Value::Null).is_ok_and(|c| c.name.is_empty()));
        assert!(with("scope", Value::Null).is_ok_and(|c| c.scopes.is_empty()));
    }

    #[test]
    fn authorizer_claims_are_strings() {
        let map: Map<String, Value> = serde_json::from_str(
            r#"{"sub":"12","deployment":"acme","name":"B","email":"b@x","pro":"true","scope":"a b","exp":"1"}"#,
        )
        .unwrap();
        let caller = caller_from_claims(&map).unwrap();
        assert_eq!(
            (caller.user_id, caller.pro, caller.scopes.len()),
            (12, true, 2)
        );
    }
}

#[cfg(test)]
mod rs256_tests {
    use super::*;

    const PRIVATE: &str = include_str!("../../testdata/rs256-test-private.pem");
    const PUBLIC: &str = include_str!("../../testdata/rs256-test-public.pem");

    #[test]
    fn rs256_tokens_verify_against_configured_public_keys() {
        let claims = serde_json::json!({
            "sub": "5", "deployment": "hq", "name": "R", "email": "r@x",
            "exp": jsonwebtoken::get_current_timestamp() + 600,
        });
        let key = EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap();
        let token = encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
        let v = TokenVerifier::new(None).with_rs256_pems(PUBLIC).unwrap();
        assert_eq!(v.verify(&token).unwrap().user_id, 5);
        // An HS256 verifier alone must not accept an RS256 token, and vice versa.
        assert_eq!(
            TokenVerifier::new(Some(b"k")).verify(&token),
            Err(AuthError::WrongAlgorithm)
        );
        let tampered = format!("{}x", &token[..token.len() - 1]);
        assert!(v.verify(&tampered).is_err());
    }
}
