//! Access tokens for subscriptions with `auth` (SPEC section 9): obtained through the
//! HTTP sender port (the address rules and pinning of a delivery, with the token
//! request's own 10 s limit and 64 KB cap, `policy::token`) and cached.
//!
//! Guarantees: one cache per deliverer, so per process: shared by the deliveries of a
//! batch and by the warm invocations of an instance. Its key is a SHA-256 of the token
//! URL, client id, scope, audience and client secret (no secret is kept in clear in it).
//! One token request is in flight per key at a time: concurrent deliveries wait for it
//! and share its token, or its failure. A token is reused until `policy::token::reuse_until`;
//! [`Tokens::discard`] drops it (after a 401 from the receiver). A token or an answer
//! never reaches a log line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::digest;

use crate::model::clock::{Clock, Millis};
use crate::model::receiver::OAuthClient;
use crate::policy::token::{self, AccessToken, TokenError};
use crate::ports::http::HttpSender;

/// The cache key of an `auth`.
type Key = [u8; 32];

fn key(client: &OAuthClient, secret: &str) -> Key {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [
        Some(client.token_url.as_str()),
        Some(client.client_id.as_str()),
        client.scope.as_deref(),
        client.audience.as_deref(),
        Some(secret),
    ] {
        // Length-prefixed, and absent apart from empty, so no two `auth`s share a key.
        match part {
            None => ctx.update(&[0]),
            Some(p) => {
                ctx.update(&[1]);
                ctx.update(&(p.len() as u64).to_be_bytes());
                ctx.update(p.as_bytes());
            }
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// One key's token while it lasts, and the last failure.
#[derive(Default)]
struct Slot {
    token: Option<(AccessToken, Millis)>,
    failure: Option<TokenError>,
}

#[derive(Default)]
struct Entry {
    /// Held while a token request is in flight: the single flight.
    slot: tokio::sync::Mutex<Slot>,
    /// Token requests answered so far; a waiter that sees it moved shares the outcome.
    requests: AtomicU64,
}

/// The token cache of a deliverer.
#[derive(Default)]
pub struct Tokens {
    entries: Mutex<HashMap<Key, Arc<Entry>>>,
}

impl Tokens {
    fn entry(&self, key: Key) -> Arc<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone()
    }

    /// The access token of `client`: the cached one while it lasts, or a new one.
    pub async fn get(
        &self,
        sender: &dyn HttpSender,
        clock: &dyn Clock,
        client: &OAuthClient,
        secret: &str,
    ) -> Result<AccessToken, TokenError> {
        let entry = self.entry(key(client, secret));
        let before = entry.requests.load(Ordering::SeqCst);
        let mut slot = entry.slot.lock().await;
        let now = clock.now_millis();
        if let Some((token, until)) = &slot.token
            && now < *until
        {
            return Ok(token.clone());
        }
        // A request made while this one waited failed: share its outcome rather than
        // asking again at once.
        if entry.requests.load(Ordering::SeqCst) != before
            && let Some(failure) = &slot.failure
        {
            return Err(failure.clone());
        }
        let answer = sender.post(&token::request(client, secret)).await;
        entry.requests.fetch_add(1, Ordering::SeqCst);
        match token::read_answer(answer) {
            Ok(granted) => {
                let until = token::reuse_until(clock.now_millis(), granted.expires_in);
                slot.token = Some((granted.token.clone(), until));
                slot.failure = None;
                Ok(granted.token)
            }
            Err(e) => {
                tracing::info!(error_kind = %e.kind(), reason = %e, "token request failed");
                slot.token = None;
                slot.failure = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Drops `token` from the cache, if it is still the one cached for `client`: the next
    /// delivery fetches a new one.
    pub async fn discard(&self, client: &OAuthClient, secret: &str, token: &AccessToken) {
        let entry = self.entry(key(client, secret));
        let mut slot = entry.slot.lock().await;
        if slot.token.as_ref().is_some_and(|(t, _)| t == token) {
            slot.token = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::ManualClock;
    use crate::model::url::TriggerUrl;
    use crate::ports::http::{HttpResponse, OutgoingRequest, SendError};
    use async_trait::async_trait;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A token endpoint that counts its calls and answers after a pause.
    #[derive(Default)]
    struct Endpoint {
        calls: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl HttpSender for Endpoint {
        async fn post(&self, _: &OutgoingRequest) -> Result<HttpResponse, SendError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(SendError::ConnectionRefused);
            }
            Ok(HttpResponse {
                status: 200,
                retry_after: None,
                body: format!(
                    r#"{{"access_token":"t{n}","token_type":"Bearer","expires_in":120}}"#
                ),
            })
        }
    }

    fn client(id: &str) -> OAuthClient {
        OAuthClient {
            token_url: TriggerUrl::from_stored("https://idp.example/token".into()),
            client_id: id.into(),
            scope: None,
            audience: None,
        }
    }

    #[tokio::test]
    async fn one_request_in_flight_per_key_and_the_token_shared_until_it_expires() {
        let (tokens, endpoint, clock) =
            (Tokens::default(), Endpoint::default(), ManualClock::at(0));
        let c = client("a");
        let got =
            futures::future::join_all((0..8).map(|_| tokens.get(&endpoint, &clock, &c, "s"))).await;
        assert!(got.iter().all(|t| t.as_ref().unwrap().expose() == "t1"));
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
        // Another secret, scope or client is another key.
        tokens.get(&endpoint, &clock, &c, "s2").await.unwrap();
        let scoped = OAuthClient {
            scope: Some("x".into()),
            ..c.clone()
        };
        tokens.get(&endpoint, &clock, &scoped, "s").await.unwrap();
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 3);
        // 120 s lifetime: reused for 60 s.
        clock.advance(59_999);
        assert_eq!(
            tokens
                .get(&endpoint, &clock, &c, "s")
                .await
                .unwrap()
                .expose(),
            "t1"
        );
        clock.advance(1);
        assert_eq!(
            tokens
                .get(&endpoint, &clock, &c, "s")
                .await
                .unwrap()
                .expose(),
            "t4"
        );
        let t4 = tokens.get(&endpoint, &clock, &c, "s").await.unwrap();
        tokens.discard(&c, "s", &t4).await;
        assert_eq!(
            tokens
                .get(&endpoint, &clock, &c, "s")
                .await
                .unwrap()
                .expose(),
            "t5"
        );
        tokens.discard(&c, "s", &t4).await;
        assert_eq!(
            tokens
                .get(&endpoint, &clock, &c, "s")
                .await
                .unwrap()
                .expose(),
            "t5",
            "discarding an older token keeps the newer one"
        );
    }

    #[tokio::test]
    async fn waiters_share_a_failure_and_the_next_call_asks_again() {
        let (tokens, endpoint, clock) =
            (Tokens::default(), Endpoint::default(), ManualClock::at(0));
        endpoint.fail.store(true, Ordering::SeqCst);
        let c = client("a");
        let got =
            futures::future::join_all((0..5).map(|_| tokens.get(&endpoint, &clock, &c, "s"))).await;
        assert!(
            got.iter()
                .all(|r| r.as_ref().unwrap_err().kind() == "token_connection")
        );
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1);
        endpoint.fail.store(false, Ordering::SeqCst);
        assert!(tokens.get(&endpoint, &clock, &c, "s").await.is_ok());
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 2);
    }
}
