//! Fixed source addresses (SPEC section 9), as CloudFormation would create `template.yaml`
//! after SAM's transform: with `SubnetIds` and `SecurityGroupIds`, the functions that call
//! out of AWS (delivery, the API for `dispatch`, and the fan-out when the access check of
//! SPEC section 5 is set, since it then asks the product's endpoint) run in the
//! installation's VPC and their roles carry Lambda's VPC access policy; the fan-out
//! without an access check calls nothing outside AWS and stays out. Left empty, every
//! resource is what it was. The template's `Rules` refuse subnets without security groups
//! (and the reverse) before anything is created.
//!
//! cfn-lint checks both cases too (`infra/scripts/check-template.sh`).

use serde_json::{Value, json};
use webhooks_tests::stack::{Stack, transform};

const SUBNETS: &str = "subnet-0123456789abcdef0,subnet-0fedcba9876543210";
const GROUPS: &str = "sg-0123456789abcdef0";
/// A stack needs a way to verify tokens (the `TokensCanBeVerified` rule).
const JWT: (&str, &str) = ("JwtSecret", "a-shared-secret-of-at-least-32-characters");
/// The product's access check (both parameters, as the Rules want).
const ACCESS_CHECK: [(&str, &str); 2] = [
    ("AccessCheckUrl", "https://hq.example.com/webhooks/access"),
    (
        "AccessCheckSecret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
];
const VPC_POLICY: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole";
/// The functions that call receivers.
const CALLERS: [&str; 2] = ["ApiFunction", "DeliveryFunction"];
/// With an access check, the fan-out calls out too.
const CALLERS_WITH_CHECK: [&str; 3] = ["ApiFunction", "DeliveryFunction", "FanoutFunction"];
/// Every function, each with a role written in the template.
const FUNCTIONS: [&str; 3] = ["ApiFunction", "FanoutFunction", "DeliveryFunction"];

/// The template for these parameters, every resource standing for itself.
fn stack(parameters: &[(&str, &str)]) -> Stack {
    let mut all = vec![JWT];
    all.extend_from_slice(parameters);
    Stack::symbolic(&all)
}

fn with_subnets(parameters: &[(&str, &str)]) -> Stack {
    let mut all = vec![("SubnetIds", SUBNETS), ("SecurityGroupIds", GROUPS)];
    all.extend_from_slice(parameters);
    stack(&all)
}

fn in_vpc() -> Stack {
    with_subnets(&[])
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

fn assert_in_vpc(stack: &Stack, function: &str) {
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
        managed_policies(stack, function).contains(&VPC_POLICY.to_owned()),
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

fn assert_outside_any_vpc(stack: &Stack, function: &str) {
    assert!(
        stack.created(function).unwrap().get("VpcConfig").is_none(),
        "{function}"
    );
    assert!(
        !managed_policies(stack, function).contains(&VPC_POLICY.to_owned()),
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

#[test]
fn with_subnets_the_functions_that_call_receivers_run_in_the_vpc() {
    let stack = in_vpc();
    for function in CALLERS {
        assert_in_vpc(&stack, function);
    }
    // Without an access check, the fan-out calls nothing outside AWS.
    assert_outside_any_vpc(&stack, "FanoutFunction");
}

#[test]
fn with_subnets_and_an_access_check_the_fanout_runs_in_the_vpc_too() {
    let stack = with_subnets(&ACCESS_CHECK);
    for function in CALLERS_WITH_CHECK {
        assert_in_vpc(&stack, function);
    }
}

#[test]
fn without_subnets_no_function_is_in_a_vpc_or_may_make_network_interfaces() {
    for stack in [stack(&[]), stack(&ACCESS_CHECK)] {
        for function in FUNCTIONS {
            assert_outside_any_vpc(&stack, function);
        }
    }
}

/// Subnets add the callers' `VpcConfig` and their roles' VPC policy, and nothing else:
/// taken away, every resource is exactly the one made without subnets (with and without
/// an access check).
#[test]
fn subnets_change_nothing_but_the_vpc_config_and_its_policy() {
    /// Parameters besides the subnets, and the functions the subnets then put in the VPC.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 2] = [(&[], &CALLERS), (&ACCESS_CHECK, &CALLERS_WITH_CHECK)];
    for (parameters, callers) in cases {
        let mut with = with_subnets(parameters).all_created();
        let without = stack(parameters).all_created();
        for function in callers {
            let props = with.get_mut(*function).unwrap().as_mut().unwrap();
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
            assert_eq!(&with[logical], resource, "{logical} ({parameters:?})");
        }
    }
}

/// What SAM makes for a function of its own (no `Role`) with the template's tracing and,
/// when `sqs`, an SQS event source: its role's properties, evaluated.
fn role_sam_makes(sqs: bool) -> Value {
    let events = if sqs {
        json!({"Jobs": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Jobs", "Arn"]}}}})
    } else {
        json!({})
    };
    let template = json!({
        "Transform": "AWS::Serverless-2016-10-31",
        "Parameters": {"TracingMode": {"Type": "String", "Default": "PassThrough"}},
        "Resources": {
            "Jobs": {"Type": "AWS::SQS::Queue"},
            "Function": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Runtime": "provided.al2023",
                    "Handler": "bootstrap",
                    "CodeUri": ".",
                    "Tracing": {"Ref": "TracingMode"},
                    "Policies": [{"Statement": [
                        {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "*"}
                    ]}],
                    "Events": events,
                },
            },
        },
    });
    let path = std::env::temp_dir().join(format!("{}.json", webhooks_tests::unique("sam-role")));
    std::fs::write(&path, template.to_string()).unwrap();
    let transformed = transform(&path);
    std::fs::remove_file(&path).unwrap();
    let role = &transformed["Resources"]["FunctionRole"];
    assert_eq!(role["Type"], "AWS::IAM::Role", "{transformed}");
    let mut props = role["Properties"].clone();
    let arns: Vec<Value> = props["ManagedPolicyArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arn| match arn.get("Fn::Sub").and_then(Value::as_str) {
            Some(sub) => Value::from(sub.replace("${AWS::Partition}", "aws")),
            None => arn.clone(),
        })
        .collect();
    props["ManagedPolicyArns"] = Value::from(arns);
    props
}

/// SAM attaches `AWSLambdaVPCAccessExecutionRole` to a function whose `VpcConfig` is an
/// `Fn::If`, whatever the condition says, so the three functions' roles are written in
/// the template. Without subnets they must stay what SAM would make: the same trust
/// policy, tag, managed policies and policy name as SAM gives a function of its own with
/// the same tracing and event source (an SQS one for the fan-out and delivery).
#[test]
fn the_written_roles_are_the_roles_sam_would_make() {
    let stack = stack(&[]);
    let (with_sqs, without_sqs) = (role_sam_makes(true), role_sam_makes(false));
    for function in FUNCTIONS {
        let sam = if function == "ApiFunction" {
            &without_sqs
        } else {
            &with_sqs
        };
        let role = stack.created(&format!("{function}Role")).unwrap();
        for property in ["AssumeRolePolicyDocument", "Tags", "ManagedPolicyArns"] {
            assert_eq!(role[property], sam[property], "{function}Role {property}");
        }
        assert_eq!(sam["Policies"][0]["PolicyName"], "FunctionRolePolicy0");
        let policies = role["Policies"].as_array().unwrap();
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0]["PolicyName"], format!("{function}RolePolicy0"));
        let function_props = stack.created(function).unwrap();
        assert_eq!(
            function_props["Role"],
            format!("arn:aws:test:::{function}Role")
        );
    }
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
