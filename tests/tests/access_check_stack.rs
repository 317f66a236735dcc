//! The access check of SPEC section 5 in `template.yaml`, as CloudFormation would create
//! it after SAM's transform: with `AccessCheckUrl` and `AccessCheckSecret`, the secret is
//! kept in Secrets Manager, the fan-out and the API get the URL and the secret's ARN
//! (never the secret itself) and a grant to read exactly that secret, and nothing else
//! changes; left empty, nothing of it exists. The `Rules` refuse one parameter without
//! the other. (Whether the fan-out joins the VPC with it: `source_addresses.rs`.)

use serde_json::Value;
use webhooks_tests::stack::Stack;

/// A stack needs a way to verify tokens (the `TokensCanBeVerified` rule).
const JWT: (&str, &str) = ("JwtSecret", "a-shared-secret-of-at-least-32-characters");
const URL: &str = "https://hq.example.com/webhooks/access";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The secret's resource; standing for itself, its `Ref` (its ARN) is its logical id.
const SECRET_RESOURCE: &str = "AccessCheckSigningSecret";
/// The functions that ask the access check.
const ASKERS: [&str; 2] = ["FanoutFunction", "ApiFunction"];
const VARIABLES: [&str; 2] = [
    "WEBHOOKS_ACCESS_CHECK_URL",
    "WEBHOOKS_ACCESS_CHECK_SECRET_ARN",
];

fn stack(parameters: &[(&str, &str)]) -> Stack {
    let mut all = vec![JWT];
    all.extend_from_slice(parameters);
    Stack::symbolic(&all)
}

fn with_check() -> Stack {
    stack(&[("AccessCheckUrl", URL), ("AccessCheckSecret", SECRET)])
}

fn variable(stack: &Stack, function: &str, name: &str) -> Option<String> {
    stack
        .environment(function)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The (action, resource) pairs of a role's own statements that name the secret.
fn grants_on_secret(stack: &Stack, function: &str) -> Vec<(String, String)> {
    let mut grants = Vec::new();
    for s in stack.role(function).inline.iter().filter(|s| s.allow) {
        for resource in s.resources.iter().filter(|r| *r == SECRET_RESOURCE) {
            for action in &s.actions {
                grants.push((action.clone(), resource.clone()));
            }
        }
    }
    grants
}

#[test]
fn with_an_access_check_the_fanout_and_the_api_get_its_url_and_its_secret_arn() {
    let stack = with_check();
    let secret = stack
        .created(SECRET_RESOURCE)
        .expect("the secret is created");
    assert_eq!(secret["SecretString"], SECRET);
    for function in ASKERS {
        assert_eq!(
            variable(&stack, function, "WEBHOOKS_ACCESS_CHECK_URL").as_deref(),
            Some(URL),
            "{function}"
        );
        assert_eq!(
            variable(&stack, function, "WEBHOOKS_ACCESS_CHECK_SECRET_ARN").as_deref(),
            Some(SECRET_RESOURCE),
            "{function}"
        );
        // The secret itself never becomes an environment variable.
        assert!(
            stack
                .environment(function)
                .iter()
                .all(|(k, v)| k != "WEBHOOKS_ACCESS_CHECK_SECRET" && v != SECRET),
            "{function}"
        );
    }
    for name in VARIABLES {
        assert_eq!(variable(&stack, "DeliveryFunction", name), None);
    }
}

#[test]
fn without_an_access_check_there_is_no_secret_no_variable_and_no_grant() {
    let stack = stack(&[]);
    assert_eq!(stack.created(SECRET_RESOURCE), None);
    for function in ["FanoutFunction", "ApiFunction", "DeliveryFunction"] {
        for name in VARIABLES {
            assert_eq!(variable(&stack, function, name), None, "{function}");
        }
        assert!(grants_on_secret(&stack, function).is_empty(), "{function}");
    }
}

#[test]
fn the_fanout_and_the_api_may_read_the_secret_and_nothing_more_on_it() {
    let stack = with_check();
    for function in ASKERS {
        assert_eq!(
            grants_on_secret(&stack, function),
            [(
                "secretsmanager:GetSecretValue".to_owned(),
                SECRET_RESOURCE.to_owned()
            )],
            "{function}"
        );
    }
    assert!(grants_on_secret(&stack, "DeliveryFunction").is_empty());
}

/// The access check adds its secret, the two variables and the two grants on the
/// secret, and nothing else: taken away, every resource is exactly the one made without
/// it (so neither role gains any other grant).
#[test]
fn the_access_check_changes_nothing_else() {
    let mut with = with_check().all_created();
    let without = stack(&[]).all_created();
    assert!(with.get_mut(SECRET_RESOURCE).unwrap().take().is_some());
    for function in ASKERS {
        let props = with.get_mut(function).unwrap().as_mut().unwrap();
        let vars = props["Environment"]["Variables"].as_object_mut().unwrap();
        for name in VARIABLES {
            assert!(vars.remove(name).is_some(), "{function} {name}");
        }
    }
    let secret = Value::from(SECRET_RESOURCE);
    let statements = |resource: &mut Option<Value>| -> Vec<Value> {
        resource.as_mut().unwrap()["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .clone()
    };
    // The fan-out: one statement of its own, on the secret alone.
    let role = with.get_mut("FanoutFunctionRole").unwrap();
    let mut kept = statements(role);
    let before = kept.len();
    kept.retain(|s| s["Resource"] != secret);
    assert_eq!(kept.len(), before - 1);
    role.as_mut().unwrap()["Policies"][0]["PolicyDocument"]["Statement"] = Value::from(kept);
    // The API: the secret beside the others it reads.
    let role = with.get_mut("ApiFunctionRole").unwrap();
    let mut kept = statements(role);
    let reads = kept.iter_mut().find(|s| s["Sid"] == "SecretsRead").unwrap();
    let resources = reads["Resource"].as_array_mut().unwrap();
    let before = resources.len();
    resources.retain(|r| *r != secret);
    assert_eq!(resources.len(), before - 1);
    role.as_mut().unwrap()["Policies"][0]["PolicyDocument"]["Statement"] = Value::from(kept);

    assert_eq!(with.len(), without.len());
    for (logical, resource) in &without {
        assert_eq!(&with[logical], resource, "{logical}");
    }
}

#[test]
fn the_rules_refuse_half_an_access_check() {
    assert!(with_check().refused_by_rules().is_empty());
    assert!(stack(&[]).refused_by_rules().is_empty());

    let refused = stack(&[("AccessCheckUrl", URL)]).refused_by_rules();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("AccessCheckUrl needs AccessCheckSecret"),
        "{refused:?}"
    );

    let refused = stack(&[("AccessCheckSecret", SECRET)]).refused_by_rules();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("AccessCheckSecret applies only with AccessCheckUrl"),
        "{refused:?}"
    );
}
