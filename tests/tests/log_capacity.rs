//! The delivery log table's billing (`DeliveryLogCapacity`), as CloudFormation would
//! create it from `template.yaml` after SAM's transform: on demand by default, or
//! provisioned capacity that Application Auto Scaling keeps at 70 % use between the
//! parameters' bounds. The cost of each is in `docs/cost.md`.

use std::collections::HashMap;

use serde_json::{Value, json};
use webhooks_tests::stack::{Physical, Stack};

const SCALING: [&str; 4] = [
    "DeliveryLogWriteScaling",
    "DeliveryLogWriteScalingPolicy",
    "DeliveryLogReadScaling",
    "DeliveryLogReadScalingPolicy",
];

fn stack(parameters: &[(&str, &str)]) -> Stack {
    let resources = HashMap::from([
        ("DeliveryLogTable".to_owned(), Physical::table("log")),
        (
            "DeliveryLogWriteScaling".to_owned(),
            Physical::id("write-target"),
        ),
        (
            "DeliveryLogReadScaling".to_owned(),
            Physical::id("read-target"),
        ),
    ]);
    Stack::new(parameters, resources)
}

#[test]
fn the_log_is_billed_on_demand_by_default_with_nothing_to_scale() {
    let stack = stack(&[]);
    let table = stack.created("DeliveryLogTable").unwrap();
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert!(table.get("ProvisionedThroughput").is_none(), "{table}");
    for name in SCALING {
        assert!(stack.created(name).is_none(), "{name} is created on demand");
    }
}

#[test]
fn a_provisioned_log_starts_at_its_minimums_and_scales_to_70_percent_use() {
    let stack = stack(&[
        ("DeliveryLogCapacity", "provisioned"),
        ("DeliveryLogWriteUnitsMin", "40"),
        ("DeliveryLogWriteUnitsMax", "4000"),
        ("DeliveryLogReadUnitsMin", "10"),
        ("DeliveryLogReadUnitsMax", "300"),
    ]);
    let table = stack.created("DeliveryLogTable").unwrap();
    assert_eq!(table["BillingMode"], "PROVISIONED");
    assert_eq!(
        table["ProvisionedThroughput"],
        json!({"ReadCapacityUnits": "10", "WriteCapacityUnits": "40"})
    );
    for (dimension, target, policy, min, max, metric) in [
        (
            "WriteCapacityUnits",
            "DeliveryLogWriteScaling",
            "DeliveryLogWriteScalingPolicy",
            "40",
            "4000",
            "DynamoDBWriteCapacityUtilization",
        ),
        (
            "ReadCapacityUnits",
            "DeliveryLogReadScaling",
            "DeliveryLogReadScalingPolicy",
            "10",
            "300",
            "DynamoDBReadCapacityUtilization",
        ),
    ] {
        let scaling = stack.created(target).unwrap();
        assert_eq!(scaling["ServiceNamespace"], "dynamodb");
        assert_eq!(scaling["ResourceId"], "table/log");
        assert_eq!(
            scaling["ScalableDimension"],
            format!("dynamodb:table:{dimension}")
        );
        assert_eq!(
            (&scaling["MinCapacity"], &scaling["MaxCapacity"]),
            (&Value::from(min), &Value::from(max))
        );
        let policy = stack.created(policy).unwrap();
        assert_eq!(policy["PolicyType"], "TargetTrackingScaling");
        let physical = if dimension.starts_with("Write") {
            "write-target"
        } else {
            "read-target"
        };
        assert_eq!(policy["ScalingTargetId"], physical);
        let tracking = &policy["TargetTrackingScalingPolicyConfiguration"];
        assert_eq!(tracking["TargetValue"], 70);
        assert_eq!(
            tracking["PredefinedMetricSpecification"]["PredefinedMetricType"],
            metric
        );
    }
}
