//! Fixed source addresses (SPEC section 9), as CloudFormation would create `template.yaml`
//! after SAM's transform: with `SubnetIds` and `SecurityGroupIds`, the functions that call
//! receivers (delivery, and the API for `dispatch`) run in the installation's VPC and their
//! roles carry Lambda's VPC access policy; the fan-out, which calls no receiver, stays out.
//! Left empty, every resource is what it was. The template's `Rules` refuse subnets
//! without security groups (and the reverse) before anything is created.
//!
//! cfn-lint checks both cases too (`infra/scripts/check-template.sh`).

use std::collections::HashMap;

use serde_json::{Value, json};
use webhooks_tests::stack::{Physical, Stack, transformed};

const SUBNETS: &str = "subnet-0123456789abcdef0,subnet-0fedcba9876543210";
const GROUPS: &str = "sg-0123456789abcdef0";
/// A stack needs a way to verify tokens (the `TokensCanBeVerified` rule).
const JWT: (&str, &str) = ("JwtSecret", "a-shared-secret-of-at-least-32-characters");
const VPC_POLICY: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole";
/// The functions that call receivers.
const CALLERS: [&str; 2] = ["ApiFunction", "DeliveryFunction"];

/// The template for these parameters, every resource standing for itself.
fn stack(parameters: &[(&str, &str)]) -> Stack {
    let resources = transformed()["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .map(|logical| {
            let physical = Physical {
                reference: logical.clone(),
                attributes: HashMap::from([
                    ("Arn".to_owned(), format!("arn:aws:test:::{logical}")),
                    ("QueueName".to_owned(), logical.clone()),
                ]),
            };
            (logical.clone(), physical)
        })
        .collect();
    let mut all = vec![JWT];
    all.extend_from_slice(parameters);
    Stack::new(&all, resources)
}

fn in_vpc() -> Stack {
    stack(&[("SubnetIds", SUBNETS), ("SecurityGroupIds", GROUPS)])
}

/// Every resource as created (`None`: not created), by logical id.
fn created(stack: &Stack) -> HashMap<String, Option<Value>> {
    transformed()["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .map(|logical| (logical.clone(), stack.created(logical)))
        .collect()
}

fn managed_policies(stack: &Stack, function: &str) -> Vec<String> {
    let role = stack.created(&format!("{function}Role")).unwrap();
    role["ManagedPolicyArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arn| arn.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn with_subnets_the_functions_that_call_receivers_run_in_the_vpc() {
    let stack = in_vpc();
    for function in CALLERS {
        let props = stack.created(function).unwrap();
        assert_eq!(
            props["VpcConfig"],
            json!({
                "SubnetIds": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
                "SecurityGroupIds": ["sg-0123456789abcdef0"],
            }),
            "{function}"
        );
        assert!(
            managed_policies(&stack, function).contains(&VPC_POLICY.to_owned()),
            "{function}'s role lets Lambda make its network interfaces"
        );
        let grants: Vec<String> = stack
            .role(function)
            .managed
            .iter()
            .flat_map(|s| s.actions.clone())
            .collect();
        assert!(
            grants.contains(&"ec2:CreateNetworkInterface".to_owned()),
            "{grants:?}"
        );
    }
    // The fan-out calls no receiver.
    assert!(
        stack
            .created("FanoutFunction")
            .unwrap()
            .get("VpcConfig")
            .is_none()
    );
    assert!(!managed_policies(&stack, "FanoutFunction").contains(&VPC_POLICY.to_owned()));
}

#[test]
fn without_subnets_no_function_is_in_a_vpc_or_may_make_network_interfaces() {
    let stack = stack(&[]);
    for function in ["ApiFunction", "FanoutFunction", "DeliveryFunction"] {
        assert!(
            stack.created(function).unwrap().get("VpcConfig").is_none(),
            "{function}"
        );
        assert!(
            !managed_policies(&stack, function).contains(&VPC_POLICY.to_owned()),
            "{function}"
        );
        let role = stack.role(function);
        assert!(
            !role
                .inline
                .iter()
                .chain(&role.managed)
                .flat_map(|s| &s.actions)
                .any(|a| a.starts_with("ec2:")),
            "{function}: {role:?}"
        );
    }
}

/// Subnets add the callers' `VpcConfig` and their roles' VPC policy, and nothing else:
/// taken away, every resource is exactly the one made without subnets.
#[test]
fn subnets_change_nothing_but_the_vpc_config_and_its_policy() {
    let mut with = created(&in_vpc());
    let without = created(&stack(&[]));
    for function in CALLERS {
        let props = with.get_mut(function).unwrap().as_mut().unwrap();
        assert!(props.as_object_mut().unwrap().remove("VpcConfig").is_some());
        let role = with.get_mut(&format!("{function}Role")).unwrap();
        let arns = role.as_mut().unwrap()["ManagedPolicyArns"]
            .as_array_mut()
            .unwrap();
        let before = arns.len();
        arns.retain(|arn| arn != VPC_POLICY);
        assert_eq!(arns.len(), before - 1, "{function}Role");
    }
    assert_eq!(with.len(), without.len());
    for (logical, resource) in &without {
        assert_eq!(&with[logical], resource, "{logical}");
    }
}

/// SAM attaches `AWSLambdaVPCAccessExecutionRole` to a function whose `VpcConfig` is an
/// `Fn::If`, whatever the condition says, so the two callers' roles are written in the
/// template. They must stay what SAM makes: the same trust policy, tag and managed
/// policies as the fan-out's role, which SAM makes (the API's without the SQS poller's).
#[test]
fn the_callers_roles_are_the_roles_sam_would_make() {
    let stack = stack(&[]);
    let sam = stack.created("FanoutFunctionRole").unwrap();
    let sam_managed = managed_policies(&stack, "FanoutFunction");
    for function in CALLERS {
        let role = stack.created(&format!("{function}Role")).unwrap();
        for property in ["AssumeRolePolicyDocument", "Tags"] {
            assert_eq!(role[property], sam[property], "{function}Role {property}");
        }
        let policies = role["Policies"].as_array().unwrap();
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0]["PolicyName"], format!("{function}RolePolicy0"));
        let function_props = stack.created(function).unwrap();
        assert_eq!(
            function_props["Role"],
            format!("arn:aws:test:::{function}Role")
        );
    }
    assert_eq!(managed_policies(&stack, "DeliveryFunction"), sam_managed);
    let without_poller: Vec<String> = sam_managed
        .into_iter()
        .filter(|arn| !arn.ends_with("/AWSLambdaSQSQueueExecutionRole"))
        .collect();
    assert_eq!(managed_policies(&stack, "ApiFunction"), without_poller);
}

#[test]
fn the_rules_refuse_subnets_without_security_groups_and_the_reverse() {
    assert!(in_vpc().refused_by_rules().is_empty());
    assert!(stack(&[]).refused_by_rules().is_empty());

    let refused = stack(&[("SubnetIds", SUBNETS)]).refused_by_rules();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("SubnetIds needs SecurityGroupIds"),
        "{refused:?}"
    );

    let refused = stack(&[("SecurityGroupIds", GROUPS)]).refused_by_rules();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("SecurityGroupIds applies only with SubnetIds"),
        "{refused:?}"
    );
}

/// The evaluator reads the template's other rules too (so the one above does not pass by
/// reading none).
#[test]
fn the_rules_still_refuse_a_stack_that_can_verify_no_token() {
    let refused = stack(&[
        ("JwtSecret", ""),
        ("SubnetIds", SUBNETS),
        ("SecurityGroupIds", GROUPS),
    ])
    .refused_by_rules();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains("no bearer token can be verified"),
        "{refused:?}"
    );
}
