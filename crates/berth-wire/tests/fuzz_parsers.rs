//! Property tests: whatever bytes or documents arrive, the wire layer answers with a
//! response (never a panic), and client mistakes are 4xx.

use berth_wire::model::Model;
use berth_wire::query::{self, Flavor, Params};
use berth_wire::service::{handle_json, handle_query};
use berth_wire::{ApiResult, RequestContext, Service, ValidationCodes};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::OnceLock;

fn ecs() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| Model::from_gzip(include_bytes!("../models/ecs.json.gz")))
}
fn ec2() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| Model::from_gzip(include_bytes!("../models/ec2.json.gz")))
}

/// A service that accepts everything validation lets through.
struct Echo(&'static Model);
impl Service for Echo {
    fn model(&self) -> &'static Model {
        self.0
    }
    fn metadata(&self) -> &'static berth_wire::model::Metadata {
        &self.0.metadata
    }
    fn codes(&self) -> ValidationCodes {
        ValidationCodes::json("InvalidParameterException", "SerializationException")
    }
    fn call(&self, _: &RequestContext, _: &str, _: Value) -> ApiResult<Value> {
        Ok(Value::Object(Default::default()))
    }
}

fn ctx() -> RequestContext {
    RequestContext {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        request_id: "r".into(),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("cluster".to_string()),
                    Just("family".to_string()),
                    Just("containerDefinitions".to_string()),
                    Just("maxResults".to_string()),
                    Just("name".to_string()),
                    Just("tags".to_string()),
                    "[a-zA-Z]{1,12}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn ecs_operation() -> impl Strategy<Value = String> {
    let mut ops: Vec<String> = ecs().operations.keys().cloned().collect();
    ops.sort();
    ops.push("NotAnOperation".into());
    prop::sample::select(ops)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_get_a_client_error(op in ecs_operation(), body in prop::collection::vec(any::<u8>(), 0..300)) {
        let r = handle_json(&Echo(ecs()), &ctx(), &op, &body);
        prop_assert!(r.status == 200 || (400..500).contains(&r.status), "status {}", r.status);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        if r.status != 200 {
            prop_assert!(v["__type"].is_string() && v["message"].is_string());
        }
    }

    #[test]
    fn arbitrary_documents_validate_or_fail_cleanly(op in ecs_operation(), doc in json_value()) {
        let body = serde_json::to_vec(&doc).unwrap();
        let r = handle_json(&Echo(ecs()), &ctx(), &op, &body);
        prop_assert!(r.status == 200 || (400..500).contains(&r.status));
        if r.status == 200 && op != "NotAnOperation" {
            // Whatever got through is an object with every required member present.
            prop_assert!(doc.is_object());
            if let Some(shape) = ecs().input_shape(&op) {
                for req in &shape.required {
                    prop_assert!(doc.get(req).is_some_and(|v| !v.is_null()));
                }
            }
        }
    }

    #[test]
    fn arbitrary_form_parameters_decode_or_fail_cleanly(
        action in prop::sample::select(vec!["DescribeVpcs", "CreateSubnet", "AuthorizeSecurityGroupIngress", "RunInstances", "Nope"]),
        params in prop::collection::btree_map(
            prop_oneof![
                Just("VpcId".to_string()), Just("CidrBlock".to_string()), Just("Filter.1.Name".to_string()),
                Just("Filter.1.Value.1".to_string()), Just("IpPermissions.1.FromPort".to_string()),
                Just("MaxResults".to_string()), Just("DryRun".to_string()), "[A-Za-z.0-9]{1,20}"
            ],
            ".{0,20}",
            0..8,
        ),
    ) {
        let mut p: Params = params.into_iter().collect();
        p.insert("Action".into(), action.to_string());
        let r = handle_query(&Echo(ec2()), &ctx(), &p);
        prop_assert!(r.status == 200 || (400..500).contains(&r.status), "status {}", r.status);
        prop_assert!(std::str::from_utf8(&r.body).unwrap().starts_with("<?xml"));
    }

    #[test]
    fn credential_parsing_never_panics(s in ".{0,200}") {
        let _ = berth_wire::sigv4::parse_authorization(&s);
        let _ = berth_wire::sigv4::parse_credential(&s);
    }
}

#[test]
fn ec2_lists_decode_from_flattened_names() {
    let m = ec2();
    let shape = m.input_shape("DescribeVpcs").unwrap();
    let p: Params = [
        ("Filter.1.Name", "is-default"),
        ("Filter.1.Value.1", "true"),
        ("VpcId.1", "vpc-1"),
        ("VpcId.2", "vpc-2"),
        ("MaxResults", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let doc = query::decode(m, shape, &p, Flavor::Ec2, "X").unwrap();
    assert_eq!(doc["VpcIds"], serde_json::json!(["vpc-1", "vpc-2"]));
    assert_eq!(doc["Filters"][0]["Values"], serde_json::json!(["true"]));
    assert_eq!(doc["MaxResults"], 5);
}

#[test]
fn xml_output_uses_location_names_and_escapes() {
    let m = ec2();
    let shape = m.output_shape("DescribeVpcs").unwrap();
    let mut out = String::new();
    let doc =
        serde_json::json!({"Vpcs": [{"VpcId": "vpc-1", "IsDefault": true, "CidrBlock": "a<b"}]});
    query::encode_members(m, shape, &doc, &mut out);
    assert!(out.contains("<vpcSet><item>"), "{out}");
    assert!(out.contains("<isDefault>true</isDefault>"), "{out}");
    assert!(out.contains("<cidrBlock>a&lt;b</cidrBlock>"), "{out}");
}
