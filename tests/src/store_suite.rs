//! The store contract: every adapter of `SubscriptionStore` must pass it.

use webhooks_core::model::clock::ManualClock;
use webhooks_core::model::identity::{Deployment, Owner};
use webhooks_core::model::ids::{IdGenerator, SubscriptionId};
use webhooks_core::model::receiver::{Auth, OAuthClient, RateLimit, RetrySchedule};
use webhooks_core::model::subscription::{
    ContentType, PreviousSecret, Subscription, SubscriptionRef,
};
use webhooks_core::model::url::TriggerUrl;
use webhooks_core::ports::store::{Page, StoreError, SubscriptionStore};

fn owner(deployment: &str, user_id: u64) -> Owner {
    Owner {
        deployment: Deployment::parse(deployment).unwrap(),
        user_id,
    }
}

struct Maker {
    ids: IdGenerator,
    clock: ManualClock,
}

impl Maker {
    fn sub(&self, owner: &Owner, event_id: &str) -> Subscription {
        self.clock.advance(1000);
        Subscription {
            id: self.ids.next(&self.clock),
            owner: owner.clone(),
            owner_name: format!("user {}", owner.user_id),
            owner_email: format!("u{}@example.com", owner.user_id),
            event_id: event_id.to_owned(),
            trigger_url: TriggerUrl::from_stored(format!("https://example.com/{event_id}")),
            content_type: ContentType::Json,
            sealed_secret: Some("v1:sealed".to_owned()),
            created_at: 42,
            active: true,
            disabled_reason: None,
            previous_secret: None,
            sealed_headers: Some("v2:sealed-headers".to_owned()),
            retry_schedule: Some(RetrySchedule::from_stored(vec![1, 3, 86_400])),
            auth: Some(Auth {
                client: OAuthClient {
                    token_url: TriggerUrl::from_stored("https://idp.example/token".into()),
                    client_id: "client-1".into(),
                    scope: Some("read write".into()),
                    audience: (owner.user_id == 1).then(|| "https://api.example/".into()),
                },
                sealed_client_secret: "v2:sealed-client-secret".into(),
            }),
            rate_limit: Some(RateLimit::from_stored(1_000)),
        }
    }
}

/// Runs the whole contract against `store`, which must be empty.
pub async fn run(store: &dyn SubscriptionStore) {
    let m = Maker {
        ids: IdGenerator::default(),
        clock: ManualClock::at(1_700_000_000_000),
    };
    let alice = owner("hq", 1);
    let bob = owner("hq", 2);
    let alice_elsewhere = owner("acme", 1);

    // put and get, with every field kept.
    let a1 = m.sub(&alice, "assign_task");
    store.put(&a1).await.unwrap();
    assert_eq!(store.get(&alice, &a1.id).await.unwrap(), Some(a1.clone()));

    // Nobody else reaches it by id: not another user, not the same user id elsewhere.
    assert_eq!(store.get(&bob, &a1.id).await.unwrap(), None);
    assert_eq!(store.get(&alice_elsewhere, &a1.id).await.unwrap(), None);
    assert_eq!(store.delete(&bob, &a1.id).await.unwrap(), None);
    assert!(
        store.get(&alice, &a1.id).await.unwrap().is_some(),
        "a foreign delete changes nothing"
    );

    // list by owner: only the owner's, oldest first.
    let a2 = m.sub(&alice, "create_task");
    let b1 = m.sub(&bob, "assign_task");
    let e1 = m.sub(&alice_elsewhere, "assign_task");
    for s in [&a2, &b1, &e1] {
        store.put(s).await.unwrap();
    }
    let listed: Vec<_> = store
        .list_by_owner(&alice)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![a1.id.clone(), a2.id.clone()]);
    assert_eq!(store.list_by_owner(&owner("hq", 99)).await.unwrap(), vec![]);

    // by event: the deployment's subscriptions to one event, all owners, nothing else.
    let page = store
        .page_by_event(&alice.deployment, "assign_task", None, 100)
        .await
        .unwrap();
    let refs: Vec<_> = page
        .items
        .iter()
        .map(|r| (r.id.clone(), r.owner.clone()))
        .collect();
    assert_eq!(
        refs,
        vec![(a1.id.clone(), alice.clone()), (b1.id.clone(), bob.clone())]
    );
    assert_eq!(page.next, None);

    // by owner and event: one user's subscriptions to one event, nothing of other users,
    // other events or other deployments.
    let a3 = m.sub(&alice, "assign_task");
    store.put(&a3).await.unwrap();
    let mine: Vec<_> = store
        .list_by_owner_event(&alice, "assign_task")
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.owner))
        .collect();
    assert_eq!(
        mine,
        vec![
            (a1.id.clone(), alice.clone()),
            (a3.id.clone(), alice.clone())
        ]
    );
    let bobs = store
        .list_by_owner_event(&bob, "assign_task")
        .await
        .unwrap();
    assert_eq!(bobs.iter().map(|r| &r.id).collect::<Vec<_>>(), vec![&b1.id]);
    assert_eq!(
        store
            .list_by_owner_event(&owner("hq", 99), "assign_task")
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        store
            .list_by_owner_event(&alice, "delete_task")
            .await
            .unwrap(),
        vec![]
    );
    store.delete(&alice, &a3.id).await.unwrap();
    assert_eq!(
        store
            .list_by_owner_event(&alice, "assign_task")
            .await
            .unwrap()
            .len(),
        1,
        "a deleted subscription leaves the index"
    );

    // replace: a changed subscription reads back as written; a paused one leaves the
    // fan-out's indexes and comes back when resumed; a deleted one is not brought back.
    let mut changed = store.get(&alice, &a1.id).await.unwrap().unwrap();
    changed.trigger_url = TriggerUrl::from_stored("https://new.example.com/hook".into());
    changed.content_type = ContentType::Json;
    changed.active = false;
    changed.disabled_reason = Some("the receiver answered 410 Gone".into());
    changed.previous_secret = Some(PreviousSecret {
        sealed: "v2:OLD".into(),
        until: 1_700_000_000_123,
    });
    assert!(store.replace(&changed).await.unwrap());
    assert_eq!(
        store.get(&alice, &a1.id).await.unwrap(),
        Some(changed.clone())
    );
    let in_index = |page: Page<SubscriptionRef>| page.items.iter().any(|r| r.id == a1.id);
    assert!(!in_index(
        store
            .page_by_event(&alice.deployment, "assign_task", None, 100)
            .await
            .unwrap()
    ));
    assert!(
        store
            .list_by_owner_event(&alice, "assign_task")
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != a1.id)
    );
    assert_eq!(
        store.list_by_owner(&alice).await.unwrap().len(),
        2,
        "still listed"
    );
    changed.active = true;
    changed.disabled_reason = None;
    changed.previous_secret = None;
    changed.sealed_headers = None;
    changed.retry_schedule = None;
    changed.auth = None;
    changed.rate_limit = None;
    assert!(store.replace(&changed).await.unwrap());
    assert_eq!(
        store.get(&alice, &a1.id).await.unwrap(),
        Some(changed.clone())
    );
    assert!(in_index(
        store
            .page_by_event(&alice.deployment, "assign_task", None, 100)
            .await
            .unwrap()
    ));
    let ghost_change = Subscription {
        id: m.ids.next(&m.clock),
        ..changed.clone()
    };
    assert!(!store.replace(&ghost_change).await.unwrap());
    assert_eq!(store.get(&alice, &ghost_change.id).await.unwrap(), None);

    // get_many: what still exists, ignoring what does not and duplicates.
    let ghost = SubscriptionRef {
        id: m.ids.next(&m.clock),
        owner: alice.clone(),
    };
    let keys = vec![
        SubscriptionRef {
            id: a1.id.clone(),
            owner: alice.clone(),
        },
        SubscriptionRef {
            id: b1.id.clone(),
            owner: bob.clone(),
        },
        ghost,
        SubscriptionRef {
            id: a1.id.clone(),
            owner: alice.clone(),
        },
        SubscriptionRef {
            id: e1.id.clone(),
            owner: bob.clone(),
        }, // wrong owner
    ];
    let mut got: Vec<SubscriptionId> = store
        .get_many(&keys)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    got.sort();
    assert_eq!(got, vec![a1.id.clone(), b1.id.clone()]);

    // delete returns the subscription once, and then it is gone everywhere.
    assert_eq!(
        store.delete(&alice, &a1.id).await.unwrap().map(|s| s.id),
        Some(a1.id.clone())
    );
    assert_eq!(store.delete(&alice, &a1.id).await.unwrap(), None);
    assert_eq!(store.get(&alice, &a1.id).await.unwrap(), None);
    let page = store
        .page_by_event(&alice.deployment, "assign_task", None, 100)
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![b1.id.clone()]
    );

    // Pagination walks every subscription exactly once, in id order.
    let mut expected = Vec::new();
    for i in 0..25u64 {
        let s = m.sub(&owner("paged", i % 4), "create_quote");
        store.put(&s).await.unwrap();
        expected.push(s.id);
    }
    store
        .put(&m.sub(&owner("paged", 1), "create_task"))
        .await
        .unwrap();
    let deployment = Deployment::parse("paged").unwrap();
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = store
            .page_by_event(&deployment, "create_quote", cursor.as_deref(), 10)
            .await
            .unwrap();
        assert!(page.items.len() <= 10);
        pages += 1;
        seen.extend(page.items.into_iter().map(|r| r.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert!(
        pages >= 3,
        "25 items in pages of 10 take at least 3 pages, took {pages}"
    );

    // A cursor the store did not issue is refused, not misread.
    let bad = store
        .page_by_event(&deployment, "create_quote", Some("not-a-cursor"), 10)
        .await;
    assert!(matches!(bad, Err(StoreError::BadCursor)), "{bad:?}");
}
