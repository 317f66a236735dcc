//! `template.yaml` as CloudFormation would deploy it: the SAM transform's output (made by
//! `infra/scripts/sam-transform.py`, the SAM CLI's own offline translation), its
//! intrinsic functions evaluated for chosen parameters and for physical resources the
//! test made in moto. Tests read each function's environment and role from here, so a
//! binary runs with exactly the configuration and permissions the template gives it, and
//! check the template's `Rules` for those parameters as CloudFormation would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Map, Value};

pub const REGION: &str = "us-east-1";
/// moto's account.
pub const ACCOUNT: &str = "123456789012";

/// The transformed template, made once per test process.
pub fn transformed() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        transform(&root.join("template.yaml"))
    })
}

/// What SAM makes of the template at `path`.
pub fn transform(path: &Path) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var("SAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/sam/bin/python"));
    let out = Command::new(&python)
        .arg(root.join("infra/scripts/sam-transform.py"))
        .arg(path)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {python:?} ({e}); run infra/scripts/test.sh, which installs the SAM CLI"
            )
        });
    assert!(
        out.status.success(),
        "the SAM transform failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the transform prints JSON")
}

/// A resource the test made, as `Ref` and `Fn::GetAtt` see it.
#[derive(Debug, Clone, Default)]
pub struct Physical {
    pub reference: String,
    pub attributes: HashMap<String, String>,
}

impl Physical {
    pub fn table(name: &str) -> Self {
        let arn = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}");
        Self {
            reference: name.to_owned(),
            attributes: HashMap::from([("Arn".to_owned(), arn)]),
        }
    }

    /// A resource known by its id alone (an HTTP API).
    pub fn id(reference: &str) -> Self {
        Self {
            reference: reference.to_owned(),
            attributes: HashMap::new(),
        }
    }

    pub fn queue(url: &str) -> Self {
        let name = url.rsplit('/').next().unwrap_or_default();
        Self {
            reference: url.to_owned(),
            attributes: HashMap::from([
                (
                    "Arn".to_owned(),
                    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
                ),
                ("QueueName".to_owned(), name.to_owned()),
            ]),
        }
    }

    /// A Secrets Manager secret: its `Ref` is its ARN.
    pub fn secret(arn: &str) -> Self {
        Self {
            reference: arn.to_owned(),
            attributes: HashMap::new(),
        }
    }
}

/// One IAM policy statement, intrinsics evaluated.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sid: Option<String>,
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// A function's execution role: its inline statements (the template's `Policies`) and
/// those of the AWS managed policies it carries.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub inline: Vec<Statement>,
    pub managed: Vec<Statement>,
}

/// The template, evaluated for these parameters and resources.
pub struct Stack {
    template: &'static Value,
    parameters: HashMap<String, String>,
    /// The `CommaDelimitedList` parameters: a `Ref` to one is a list.
    lists: Vec<String>,
    resources: HashMap<String, Physical>,
}

/// Marks `AWS::NoValue`: the property or list item is dropped.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

impl Stack {
    pub fn new(parameters: &[(&str, &str)], resources: HashMap<String, Physical>) -> Stack {
        let template = transformed();
        let mut values = HashMap::new();
        let mut lists = Vec::new();
        if let Some(Value::Object(params)) = template.get("Parameters") {
            for (name, p) in params {
                if let Some(default) = p.get("Default") {
                    values.insert(name.clone(), scalar(default));
                }
                if p["Type"] == "CommaDelimitedList" {
                    lists.push(name.clone());
                }
            }
        }
        for (k, v) in parameters {
            assert!(
                template["Parameters"].get(*k).is_some(),
                "the template has no parameter {k}"
            );
            values.insert(k.to_string(), v.to_string());
        }
        Stack {
            template,
            parameters: values,
            lists,
            resources,
        }
    }

    /// The template for these parameters with every resource standing for itself, for
    /// tests of what parameters change: a resource's `Ref` is its logical id, its `Arn`
    /// `arn:aws:test:::{logical}` and its `QueueName` its logical id.
    pub fn symbolic(parameters: &[(&str, &str)]) -> Stack {
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
        Stack::new(parameters, resources)
    }

    /// Every resource as created (`None`: not created), by logical id.
    pub fn all_created(&self) -> HashMap<String, Option<Value>> {
        self.template["Resources"]
            .as_object()
            .unwrap()
            .keys()
            .map(|logical| (logical.clone(), self.created(logical)))
            .collect()
    }

    /// The `AssertDescription` of every assertion of the template's `Rules` that these
    /// parameters fail, as CloudFormation checks them before it creates anything: empty
    /// when the stack may be made.
    pub fn refused_by_rules(&self) -> Vec<String> {
        let mut refused = Vec::new();
        for rule in self.template["Rules"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values())
        {
            if let Some(condition) = rule.get("RuleCondition")
                && !truthy(&self.eval(condition))
            {
                continue;
            }
            for assertion in rule["Assertions"].as_array().into_iter().flatten() {
                if !truthy(&self.eval(&assertion["Assert"])) {
                    refused.push(scalar(&assertion["AssertDescription"]));
                }
            }
        }
        refused
    }

    fn resource(&self, logical: &str) -> &Value {
        self.template["Resources"]
            .get(logical)
            .unwrap_or_else(|| panic!("the template has no resource {logical}"))
    }

    /// A resource's properties as CloudFormation would create it, or `None` when its
    /// `Condition` is false and it is not created at all.
    pub fn created(&self, logical: &str) -> Option<Value> {
        let resource = self.resource(logical);
        if let Some(condition) = resource.get("Condition").and_then(Value::as_str)
            && !self.condition(condition)
        {
            return None;
        }
        Some(self.eval(&resource["Properties"]))
    }

    /// The environment variables of a function, as Lambda would set them.
    pub fn environment(&self, function: &str) -> Vec<(String, String)> {
        let vars = self.eval(&self.resource(function)["Properties"]["Environment"]["Variables"]);
        vars.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
            .unwrap_or_default()
    }

    /// A function's execution role, `{function}Role`, written in the template (see
    /// `template.yaml` for why) or made by SAM.
    pub fn role(&self, function: &str) -> Role {
        let name = format!("{function}Role");
        let props = self.eval(&self.resource(&name)["Properties"]);
        let mut inline = Vec::new();
        for policy in props["Policies"].as_array().into_iter().flatten() {
            for s in policy["PolicyDocument"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
            {
                inline.push(statement(s));
            }
        }
        let managed = props["ManagedPolicyArns"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|arn| managed_policy(arn.as_str().unwrap_or_default()))
            .collect();
        Role {
            name,
            inline,
            managed,
        }
    }

    fn condition(&self, name: &str) -> bool {
        let c = self.template["Conditions"]
            .get(name)
            .unwrap_or_else(|| panic!("the template has no condition {name}"));
        truthy(&self.eval(c))
    }

    /// Evaluates the intrinsic functions of `v`.
    pub fn eval(&self, v: &Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.eval(i))
                    .filter(|i| i.as_str() != Some(NO_VALUE))
                    .collect(),
            ),
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().unwrap();
                match k.as_str() {
                    "Ref" => {
                        let name = arg.as_str().unwrap();
                        let value = self.reference(name);
                        if self.lists.iter().any(|l| l == name) {
                            // CloudFormation's split: "" is [""], not [].
                            Value::Array(value.split(',').map(Value::from).collect())
                        } else {
                            Value::String(value)
                        }
                    }
                    "Fn::GetAtt" => {
                        let (logical, attr) = match arg {
                            Value::Array(a) => (scalar(&a[0]), scalar(&a[1])),
                            other => {
                                let s = scalar(other);
                                let (l, a) = s.split_once('.').unwrap();
                                (l.to_owned(), a.to_owned())
                            }
                        };
                        Value::String(self.attribute(&logical, &attr))
                    }
                    "Fn::Sub" => Value::String(self.sub(arg)),
                    "Fn::If" => {
                        let a = arg.as_array().unwrap();
                        if self.condition(a[0].as_str().unwrap()) {
                            self.eval(&a[1])
                        } else {
                            self.eval(&a[2])
                        }
                    }
                    "Fn::Join" => {
                        let a = arg.as_array().unwrap();
                        let parts = self.eval(&a[1]);
                        Value::String(
                            parts
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(scalar)
                                .collect::<Vec<_>>()
                                .join(a[0].as_str().unwrap()),
                        )
                    }
                    "Fn::Equals" => {
                        let a = self.eval(arg);
                        Value::Bool(scalar(&a[0]) == scalar(&a[1]))
                    }
                    "Fn::Not" => Value::Bool(!truthy(&self.eval(&arg[0]))),
                    "Fn::And" => Value::Bool(self.eval(arg).as_array().unwrap().iter().all(truthy)),
                    "Fn::Or" => Value::Bool(self.eval(arg).as_array().unwrap().iter().any(truthy)),
                    "Condition" => Value::Bool(self.condition(arg.as_str().unwrap())),
                    // A function of Rules alone: [list, string].
                    "Fn::EachMemberEquals" => {
                        let a = self.eval(arg);
                        let want = scalar(&a[1]);
                        Value::Bool(strings(&a[0]).iter().all(|m| *m == want))
                    }
                    other if other.starts_with("Fn::") => {
                        panic!("the test's evaluator does not know {other}; teach it")
                    }
                    _ => Value::Object(self.eval_map(m)),
                }
            }
            Value::Object(m) => Value::Object(self.eval_map(m)),
            other => other.clone(),
        }
    }

    fn eval_map(&self, m: &Map<String, Value>) -> Map<String, Value> {
        m.iter()
            .map(|(k, v)| (k.clone(), self.eval(v)))
            .filter(|(_, v)| v.as_str() != Some(NO_VALUE))
            .collect()
    }

    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::NoValue" => return NO_VALUE.to_owned(),
            "AWS::Region" => return REGION.to_owned(),
            "AWS::AccountId" => return ACCOUNT.to_owned(),
            "AWS::Partition" => return "aws".to_owned(),
            "AWS::URLSuffix" => return "amazonaws.com".to_owned(),
            "AWS::StackName" => return "webhooks-test".to_owned(),
            _ => {}
        }
        if let Some(v) = self.parameters.get(name) {
            return v.clone();
        }
        self.resources
            .get(name)
            .unwrap_or_else(|| panic!("the test made no physical resource for {name}"))
            .reference
            .clone()
    }

    fn attribute(&self, logical: &str, attr: &str) -> String {
        self.resources
            .get(logical)
            .and_then(|p| p.attributes.get(attr))
            .unwrap_or_else(|| panic!("the test gave no {logical}.{attr}"))
            .clone()
    }

    fn sub(&self, arg: &Value) -> String {
        let (text, vars) = match arg {
            Value::Array(a) => (a[0].as_str().unwrap().to_owned(), Some(self.eval(&a[1]))),
            other => (other.as_str().unwrap().to_owned(), None),
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("a closed ${...}") + start;
            let name = &rest[start + 2..end];
            let value = match vars.as_ref().and_then(|v| v.get(name)) {
                Some(v) => scalar(v),
                None => match name.split_once('.') {
                    Some((logical, attr)) if !logical.starts_with("AWS::") => {
                        self.attribute(logical, attr)
                    }
                    _ => self.reference(name),
                },
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        other => panic!("not a condition value: {other}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(scalar).collect(),
        Value::Null => Vec::new(),
        other => vec![scalar(other)],
    }
}

fn statement(s: &Value) -> Statement {
    for unsupported in ["NotAction", "NotResource", "Condition", "Principal"] {
        assert!(
            s.get(unsupported).is_none(),
            "the IAM gate does not evaluate {unsupported}: {s}"
        );
    }
    Statement {
        sid: s.get("Sid").map(scalar),
        allow: s["Effect"] == "Allow",
        actions: strings(&s["Action"]),
        resources: strings(&s["Resource"]),
    }
}

/// The statements of the AWS managed policies the function roles carry (as AWS publishes
/// them). An unknown one fails the test: add its document here.
fn managed_policy(arn: &str) -> Vec<Statement> {
    let allow = |actions: &[&str]| Statement {
        sid: None,
        allow: true,
        actions: actions.iter().map(|a| a.to_string()).collect(),
        resources: vec!["*".to_owned()],
    };
    let logs = [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ];
    match arn.rsplit('/').next().unwrap_or_default() {
        "AWSLambdaBasicExecutionRole" => vec![allow(&logs)],
        "AWSLambdaSQSQueueExecutionRole" => vec![
            allow(&[
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
            ]),
            allow(&logs),
        ],
        "AWSXrayWriteOnlyAccess" => vec![allow(&[
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:GetSamplingStatisticSummaries",
        ])],
        // With SubnetIds: Lambda, not the function's code, makes and removes the
        // function's network interfaces in the VPC under its role.
        "AWSLambdaVPCAccessExecutionRole" => vec![allow(&[
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
        ])],
        other => panic!("the test does not know the managed policy {other} ({arn})"),
    }
}
