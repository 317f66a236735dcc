//! The subscription store port. Every key starts with the owner (deployment and user), so a
//! lookup for one user can never return another's subscription.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::identity::{Deployment, Owner};
use crate::model::ids::SubscriptionId;
use crate::model::subscription::{Subscription, SubscriptionRef};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store holds a record it cannot read: {0}")]
    Corrupt(String),
    #[error("the pagination cursor is not one this store issued")]
    BadCursor,
}

/// One page of a paginated query, and where to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; `None` when this was the last page.
    pub next: Option<String>,
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Stores a new subscription (ids are unique; an existing one is replaced).
    async fn put(&self, subscription: &Subscription) -> Result<(), StoreError>;

    /// Writes a changed subscription over the stored one; `false` (and nothing written)
    /// when it no longer exists, so a deleted subscription is never brought back.
    async fn replace(&self, subscription: &Subscription) -> Result<bool, StoreError>;

    /// One subscription of this owner, or `None` (also when it belongs to someone else).
    async fn get(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError>;

    /// Several subscriptions at once, by owner and id; those that no longer exist are
    /// simply absent from the answer.
    async fn get_many(&self, keys: &[SubscriptionRef]) -> Result<Vec<Subscription>, StoreError>;

    /// All subscriptions of this owner, oldest first.
    async fn list_by_owner(&self, owner: &Owner) -> Result<Vec<Subscription>, StoreError>;

    /// Deletes and returns the subscription, or `None` when this owner has no such one.
    async fn delete(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError>;

    /// The active subscriptions of one owner to one event, in id order: the fan-out's audience
    /// path, for an event only a few users may see. Its cost follows that owner's
    /// subscriptions to the event, not every subscription to it.
    async fn list_by_owner_event(
        &self,
        owner: &Owner,
        event_id: &str,
    ) -> Result<Vec<SubscriptionRef>, StoreError>;

    /// A page of the active subscriptions of a deployment to one event, in id order.
    async fn page_by_event(
        &self,
        deployment: &Deployment,
        event_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SubscriptionRef>, StoreError>;
}
