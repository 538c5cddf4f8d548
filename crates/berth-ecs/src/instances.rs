//! Container instances: RegisterContainerInstance, DeregisterContainerInstance,
//! DescribeContainerInstances, ListContainerInstances (with the attribute part of the
//! cluster query language), UpdateContainerInstancesState, and `register_local_instance`
//! for the binary. Also what placement needs: each instance as a [`Host`] whose remaining
//! resources are computed from the tasks placed on it (never stored, so a task that stops
//! gives its share back at once), and [`choose`], the one place a host is picked.
//!
//! Records live at `container-instance/{cluster}/{id}`. A task placed on an instance
//! carries its `containerInstanceArn` and, under `_berth.reservation`, what it takes.

use crate::common::*;
use crate::Ecs;
use berth_store::{Cond, Op, Record};
use berth_wire::page::paginate;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The ports ECS reserves on every instance (SSH, Docker, the agent's introspection).
pub(crate) const DEFAULT_PORTS: [&str; 5] = ["22", "2376", "2375", "51678", "51679"];

fn busy() -> ApiError {
    ApiError::new(
        500,
        "ServerException",
        "The container instance is being modified concurrently; try again.",
    )
}

/// The instance id of an ARN (`container-instance/CLUSTER/ID`, or the old
/// `container-instance/ID`) or of a bare id.
pub(crate) fn instance_id(ctx: &RequestContext, id: &str) -> Option<String> {
    let rest = name_from(ctx, id, "container-instance")?;
    let id = rest.rsplit('/').next().unwrap_or_default();
    (!id.is_empty()).then(|| id.to_string())
}

fn resource_int(resources: &[Value], name: &str) -> i64 {
    resources
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| {
            r.get("integerValue")
                .and_then(Value::as_i64)
                .filter(|v| *v != 0)
                .or_else(|| {
                    r.get("longValue")
                        .and_then(Value::as_i64)
                        .filter(|v| *v != 0)
                })
                .or_else(|| {
                    r.get("doubleValue")
                        .and_then(Value::as_f64)
                        .map(|d| d as i64)
                })
        })
        .unwrap_or(0)
}

fn resource_set(resources: &[Value], name: &str) -> BTreeSet<String> {
    resources
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| {
            arr_of(r, "stringSetValue")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn int_resource(name: &str, v: i64) -> Value {
    json!({"name": name, "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": v})
}

fn set_resource(name: &str, v: &BTreeSet<String>) -> Value {
    json!({"name": name, "type": "STRINGSET", "doubleValue": 0.0, "longValue": 0, "integerValue": 0, "stringSetValue": v})
}

/// `totalResources` as ECS records them: CPU and MEMORY as INTEGER, PORTS (default: the
/// reserved ports) and PORTS_UDP as STRINGSET, anything else as given.
fn registered_resources(total: &[Value]) -> ApiResult<Vec<Value>> {
    let mut seen = BTreeSet::new();
    let (mut cpu, mut memory) = (0, 0);
    let mut ports: BTreeSet<String> = DEFAULT_PORTS.iter().map(|p| p.to_string()).collect();
    let mut udp = BTreeSet::new();
    let mut others = vec![];
    for r in total {
        let name = str_of(r, "name")
            .ok_or_else(|| invalid("Every resource in totalResources must have a name."))?;
        if !seen.insert(name) {
            return Err(invalid(format!(
                "Resource {name} is specified more than once."
            )));
        }
        match name {
            "CPU" | "MEMORY" => {
                let v = resource_int(std::slice::from_ref(r), name);
                if v < 0 {
                    return Err(invalid(format!("Resource {name} must not be negative.")));
                }
                if name == "CPU" {
                    cpu = v
                } else {
                    memory = v
                }
            }
            "PORTS" | "PORTS_UDP" => {
                let set = resource_set(std::slice::from_ref(r), name);
                if let Some(bad) = set.iter().find(|p| p.parse::<u16>().is_err()) {
                    return Err(invalid(format!(
                        "Resource {name} has an invalid port: {bad}."
                    )));
                }
                if name == "PORTS" {
                    ports = set
                } else {
                    udp = set
                }
            }
            _ => others.push(r.clone()),
        }
    }
    let mut out = vec![
        int_resource("CPU", cpu),
        int_resource("MEMORY", memory),
        set_resource("PORTS", &ports),
        set_resource("PORTS_UDP", &udp),
    ];
    out.extend(others);
    Ok(out)
}

/// The attributes ECS's agent reports for a Linux host, plus those of the identity document.
fn default_attributes(doc: &Value, region: &str) -> Vec<Value> {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        a => a,
    };
    let az = str_of(doc, "availabilityZone")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{region}a"));
    let mut out = vec![
        json!({"name": "ecs.os-type", "value": "linux"}),
        json!({"name": "ecs.os-family", "value": "LINUX"}),
        json!({"name": "ecs.cpu-architecture", "value": arch}),
        json!({"name": "ecs.availability-zone", "value": az}),
    ];
    for (attr, field) in [
        ("ecs.instance-type", "instanceType"),
        ("ecs.ami-id", "imageId"),
    ] {
        if let Some(v) = str_of(doc, field) {
            out.push(json!({"name": attr, "value": v}));
        }
    }
    for cap in [
        "com.amazonaws.ecs.capability.logging-driver.awslogs",
        "com.amazonaws.ecs.capability.logging-driver.none",
        "com.amazonaws.ecs.capability.task-iam-role",
        "com.amazonaws.ecs.capability.task-iam-role-network-host",
        "com.amazonaws.ecs.capability.task-eni",
        "ecs.capability.task-eni",
        "ecs.capability.execution-role-awslogs",
        "ecs.capability.container-health-check",
        "ecs.capability.container-ordering",
        "ecs.capability.task-cpu-mem-limit",
    ] {
        out.push(json!({"name": cap}));
    }
    out
}

/// What a task takes from its instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Demand {
    pub cpu: i64,
    pub memory: i64,
    pub tcp: Vec<String>,
    pub udp: Vec<String>,
}

impl Demand {
    /// Task-level cpu and memory when the task has them, else the sum of its containers'
    /// cpu and memoryReservation (or memory); the fixed host ports of bridge and host
    /// mode port mappings (hostPort 0 or absent in bridge mode is a dynamic port).
    pub(crate) fn of(task: &Value, td: &Value) -> Demand {
        let containers = arr_of(task, "containers");
        let num = |v: &Value| {
            v.as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .or_else(|| v.as_i64())
        };
        let cpu = str_of(task, "cpu")
            .and_then(crate::taskdef::parse_cpu)
            .map(i64::from)
            .unwrap_or_else(|| containers.iter().filter_map(|c| num(&c["cpu"])).sum());
        let memory = str_of(task, "memory")
            .and_then(crate::taskdef::parse_memory)
            .map(i64::from)
            .unwrap_or_else(|| {
                containers
                    .iter()
                    .filter_map(|c| num(&c["memoryReservation"]).or_else(|| num(&c["memory"])))
                    .sum()
            });
        let mode = str_of(td, "networkMode").unwrap_or("bridge");
        let (mut tcp, mut udp) = (vec![], vec![]);
        if mode == "bridge" || mode == "host" {
            for c in arr_of(td, "containerDefinitions") {
                for pm in arr_of(c, "portMappings") {
                    let host = pm
                        .get("hostPort")
                        .and_then(Value::as_i64)
                        .or(if mode == "host" {
                            pm.get("containerPort").and_then(Value::as_i64)
                        } else {
                            None
                        });
                    let Some(p) = host.filter(|p| *p > 0) else {
                        continue;
                    };
                    match str_of(pm, "protocol") {
                        Some("udp") => udp.push(p.to_string()),
                        _ => tcp.push(p.to_string()),
                    }
                }
            }
        }
        Demand {
            cpu,
            memory,
            tcp,
            udp,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({"cpu": self.cpu, "memory": self.memory, "ports": self.tcp, "portsUdp": self.udp})
    }

    fn from_json(v: &Value) -> Option<Demand> {
        let strings = |k: &str| {
            arr_of(v, k)
                .iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        };
        Some(Demand {
            cpu: v.get("cpu")?.as_i64()?,
            memory: v.get("memory")?.as_i64()?,
            tcp: strings("ports"),
            udp: strings("portsUdp"),
        })
    }
}

/// A container instance as placement and DescribeContainerInstances see it.
pub(crate) struct Host {
    pub record: Record,
    pub arn: String,
    pub id: String,
    pub status: String,
    /// Remaining CPU units and MiB.
    pub cpu: i64,
    pub memory: i64,
    /// Host ports not available: the registered (reserved) ones and those tasks hold.
    pub tcp: BTreeSet<String>,
    pub udp: BTreeSet<String>,
    pub running: i64,
    pub pending: i64,
    /// Tasks not yet stopped on it (spread counts them).
    pub tasks: i64,
    /// Groups of its tasks whose desiredStatus is not STOPPED (distinctInstance).
    pub groups: BTreeSet<String>,
    /// The instance's attributes and the custom ones of PutAttributes: (name, value).
    pub attributes: Vec<(String, Option<String>)>,
    /// Tasks this request placed on it.
    pub placed: usize,
}

impl Host {
    /// The first resource the host lacks for `d`, as ECS names it in failures.
    pub(crate) fn lacks(&self, d: &Demand) -> Option<&'static str> {
        if d.cpu > self.cpu {
            Some("RESOURCE:CPU")
        } else if d.memory > self.memory {
            Some("RESOURCE:MEMORY")
        } else if d.tcp.iter().any(|p| self.tcp.contains(p)) {
            Some("RESOURCE:PORTS")
        } else if d.udp.iter().any(|p| self.udp.contains(p)) {
            Some("RESOURCE:PORTS_UDP")
        } else {
            None
        }
    }

    fn take(&mut self, d: &Demand) {
        self.cpu -= d.cpu;
        self.memory -= d.memory;
        self.tcp.extend(d.tcp.iter().cloned());
        self.udp.extend(d.udp.iter().cloned());
    }

    /// Record a task placed by this request.
    pub(crate) fn place(&mut self, d: &Demand, group: &str) {
        self.take(d);
        self.tasks += 1;
        self.pending += 1;
        self.groups.insert(group.to_string());
        self.placed += 1;
    }

    pub(crate) fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// The instance record with its version moved on, for the transaction that places
    /// tasks on it (so that concurrent placements and state changes conflict).
    pub(crate) fn bumped(&self) -> Value {
        let mut v = (*self.record.value).clone();
        v["version"] = json!(v["version"].as_i64().unwrap_or(1) + 1);
        v
    }

    fn remaining(&self) -> Vec<Value> {
        arr_of(&self.record.value, "registeredResources")
            .iter()
            .map(|r| match str_of(r, "name") {
                Some("CPU") => int_resource("CPU", self.cpu),
                Some("MEMORY") => int_resource("MEMORY", self.memory),
                Some("PORTS") => set_resource("PORTS", &self.tcp),
                Some("PORTS_UDP") => set_resource("PORTS_UDP", &self.udp),
                _ => r.clone(),
            })
            .collect()
    }
}

/// Which of `candidates` (indexes into `hosts`, all with room) takes the next task,
/// following `strategy` (ECS's placementStrategy: each rule breaks the ties of the one
/// before): binpack on cpu or memory takes the host with the least left; spread on
/// instanceId/host takes the host with the fewest tasks, spread on `attribute:NAME` the
/// host whose attribute value has the fewest tasks; random keeps the order. With no
/// strategy, tasks spread over hosts. The last tie-break is key order.
pub(crate) fn choose(hosts: &[Host], candidates: &[usize], strategy: &[Value]) -> Option<usize> {
    let default = [json!({"type": "spread", "field": "instanceId"})];
    let strategy = if strategy.is_empty() {
        &default[..]
    } else {
        strategy
    };
    let score = |i: usize| -> Vec<i64> {
        let h = &hosts[i];
        strategy
            .iter()
            .map(|s| {
                let field = str_of(s, "field").unwrap_or_default().to_ascii_lowercase();
                match (str_of(s, "type").unwrap_or_default(), field.as_str()) {
                    ("binpack", "cpu") => h.cpu,
                    ("binpack", _) => h.memory,
                    ("spread", f) if f.starts_with("attribute:") => {
                        let name = &str_of(s, "field").unwrap_or_default()["attribute:".len()..];
                        let value = h.attribute(name).flatten();
                        hosts
                            .iter()
                            .filter(|o| o.attribute(name).flatten() == value)
                            .map(|o| o.tasks)
                            .sum()
                    }
                    ("spread", _) => h.tasks,
                    _ => 0,
                }
            })
            .collect()
    };
    candidates.iter().copied().min_by_key(|&i| score(i))
}

/// The cluster query language, the part Berth evaluates: `attribute:NAME` with `exists`,
/// `not exists`, `==`, `!=`, `in [..]`, `not in [..]`; `ec2InstanceId` with the same
/// tests; `and`, `or` and parentheses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Query {
    And(Box<Query>, Box<Query>),
    Or(Box<Query>, Box<Query>),
    Attribute(String, Test),
    InstanceId(Test),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Exists,
    NotExists,
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
}

#[derive(Debug, PartialEq)]
pub(crate) enum QueryError {
    /// Not a valid expression.
    Invalid(String),
    /// Valid cluster query language that Berth does not evaluate yet.
    Unsupported(String),
}

impl QueryError {
    /// As the API answers it: InvalidParameterException, or 501 naming what is missing.
    pub(crate) fn api(self, operation: &str) -> ApiError {
        match self {
            QueryError::Invalid(m) => invalid(format!("Invalid expression: {m}")),
            QueryError::Unsupported(m) => ApiError::new(
                501,
                "NotImplemented",
                format!("{operation}: the cluster query language term '{m}' is not implemented in Berth yet; only attribute:NAME and ec2InstanceId with exists, ==, != and in are."),
            ),
        }
    }
}

const SUBJECTS_NOT_EVALUATED: [&str; 7] = [
    "agentconnected",
    "agentversion",
    "dockerversion",
    "registeredat",
    "runningtaskscount",
    "task:group",
    "ec2instancetype",
];

fn tokenize(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() || "()[],".contains(c) || "=!<>~&|".contains(c) {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if "()[],".contains(c) {
                out.push(c.to_string());
            } else if "=!<>~&|".contains(c) {
                let mut op = c.to_string();
                while let Some(&n) = chars.peek() {
                    if !"=!<>~&|".contains(n) {
                        break;
                    }
                    op.push(n);
                    chars.next();
                }
                out.push(op);
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Query {
    pub(crate) fn parse(s: &str) -> Result<Query, QueryError> {
        let tokens = tokenize(s);
        if tokens.is_empty() {
            return Err(QueryError::Invalid("the expression is empty".into()));
        }
        let mut p = Parser { tokens, at: 0 };
        let q = p.or()?;
        if let Some(t) = p.peek() {
            return Err(QueryError::Invalid(format!("unexpected '{t}'")));
        }
        Ok(q)
    }

    pub(crate) fn matches(&self, h: &Host) -> bool {
        match self {
            Query::And(a, b) => a.matches(h) && b.matches(h),
            Query::Or(a, b) => a.matches(h) || b.matches(h),
            Query::Attribute(name, t) => t.matches(h.attribute(name)),
            Query::InstanceId(t) => t.matches(Some(str_of(&h.record.value, "ec2InstanceId"))),
        }
    }
}

impl Test {
    /// `v`: None when the subject is absent, Some(None) when present without a value.
    fn matches(&self, v: Option<Option<&str>>) -> bool {
        let value = v.flatten();
        match self {
            Test::Exists => v.is_some(),
            Test::NotExists => v.is_none(),
            Test::Eq(x) => value == Some(x.as_str()),
            Test::Ne(x) => value != Some(x.as_str()),
            Test::In(xs) => value.is_some_and(|v| xs.iter().any(|x| x == v)),
            Test::NotIn(xs) => !value.is_some_and(|v| xs.iter().any(|x| x == v)),
        }
    }
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }
    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn keyword(&self, k: &str) -> bool {
        self.peek().is_some_and(|t| t.eq_ignore_ascii_case(k))
    }
    fn or(&mut self) -> Result<Query, QueryError> {
        let mut q = self.and()?;
        while self.keyword("or") || self.keyword("||") {
            self.at += 1;
            q = Query::Or(Box::new(q), Box::new(self.and()?));
        }
        Ok(q)
    }
    fn and(&mut self) -> Result<Query, QueryError> {
        let mut q = self.term()?;
        while self.keyword("and") || self.keyword("&&") {
            self.at += 1;
            q = Query::And(Box::new(q), Box::new(self.term()?));
        }
        Ok(q)
    }
    fn term(&mut self) -> Result<Query, QueryError> {
        let t = self
            .next()
            .ok_or_else(|| QueryError::Invalid("the expression ends too early".into()))?;
        if t == "(" {
            let q = self.or()?;
            if self.next().as_deref() != Some(")") {
                return Err(QueryError::Invalid("a '(' is not closed".into()));
            }
            return Ok(q);
        }
        let lower = t.to_ascii_lowercase();
        if let Some(name) = lower
            .strip_prefix("attribute:")
            .map(|_| &t["attribute:".len()..])
        {
            if name.is_empty() {
                return Err(QueryError::Invalid("attribute: needs a name".into()));
            }
            let name = name.to_string();
            return Ok(Query::Attribute(name, self.test()?));
        }
        if lower == "ec2instanceid" {
            return Ok(Query::InstanceId(self.test()?));
        }
        if SUBJECTS_NOT_EVALUATED.contains(&lower.as_str()) || lower == "not" {
            return Err(QueryError::Unsupported(t));
        }
        Err(QueryError::Invalid(format!("unknown subject '{t}'")))
    }
    fn test(&mut self) -> Result<Test, QueryError> {
        let op = self
            .next()
            .ok_or_else(|| QueryError::Invalid("an operator is missing".into()))?;
        match op.to_ascii_lowercase().as_str() {
            "exists" => Ok(Test::Exists),
            "==" => Ok(Test::Eq(self.value()?)),
            "!=" => Ok(Test::Ne(self.value()?)),
            "in" => Ok(Test::In(self.list()?)),
            "not" => match self.next().map(|t| t.to_ascii_lowercase()).as_deref() {
                Some("exists") => Ok(Test::NotExists),
                Some("in") => Ok(Test::NotIn(self.list()?)),
                _ => Err(QueryError::Invalid(
                    "'not' must be followed by exists or in".into(),
                )),
            },
            "=~" | ">" | "<" | ">=" | "<=" => Err(QueryError::Unsupported(op)),
            _ => Err(QueryError::Invalid(format!("unknown operator '{op}'"))),
        }
    }
    fn value(&mut self) -> Result<String, QueryError> {
        match self.next() {
            Some(v) if !"()[],".contains(v.as_str()) => Ok(v),
            _ => Err(QueryError::Invalid("a value is missing".into())),
        }
    }
    fn list(&mut self) -> Result<Vec<String>, QueryError> {
        if self.next().as_deref() != Some("[") {
            return Err(QueryError::Invalid("'in' needs a list: [a, b]".into()));
        }
        let mut out = vec![self.value()?];
        loop {
            match self.next().as_deref() {
                Some(",") => out.push(self.value()?),
                Some("]") => return Ok(out),
                _ => return Err(QueryError::Invalid("a list is not closed".into())),
            }
        }
    }
}

impl Ecs {
    /// Every container instance of the cluster with what its tasks take from it: tasks whose
    /// `containerInstanceArn` is the instance and whose lastStatus is not STOPPED.
    pub(crate) fn hosts(&self, ctx: &RequestContext, cluster: &str) -> Vec<Host> {
        let mut custom: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
        let prefix = key(ctx, &format!("attribute/{cluster}/"));
        for r in self.store.list(&prefix) {
            // attribute/{cluster}/{id}/{name}: names may contain slashes, ids do not.
            let rest = r.key.strip_prefix(&prefix).unwrap_or_default();
            let id = rest
                .split_once('/')
                .map(|(id, _)| id)
                .unwrap_or_default()
                .to_string();
            if let Some(name) = str_of(&r.value, "name") {
                custom.entry(id).or_default().push((
                    name.to_string(),
                    str_of(&r.value, "value").map(str::to_string),
                ));
            }
        }
        let mut hosts: Vec<Host> = self
            .store
            .list(&key(ctx, &format!("container-instance/{cluster}/")))
            .into_iter()
            .map(|r| {
                let v = r.value.clone();
                let registered = arr_of(&v, "registeredResources");
                let id = r.key.rsplit('/').next().unwrap_or_default().to_string();
                let mut attributes: Vec<(String, Option<String>)> = arr_of(&v, "attributes")
                    .iter()
                    .filter_map(|a| {
                        Some((
                            str_of(a, "name")?.to_string(),
                            str_of(a, "value").map(str::to_string),
                        ))
                    })
                    .collect();
                for (n, val) in custom.remove(&id).unwrap_or_default() {
                    match attributes.iter_mut().find(|(an, _)| *an == n) {
                        Some(a) => a.1 = val,
                        None => attributes.push((n, val)),
                    }
                }
                Host {
                    arn: str_of(&v, "containerInstanceArn")
                        .unwrap_or_default()
                        .to_string(),
                    id,
                    status: str_of(&v, "status").unwrap_or_default().to_string(),
                    cpu: resource_int(registered, "CPU"),
                    memory: resource_int(registered, "MEMORY"),
                    tcp: resource_set(registered, "PORTS"),
                    udp: resource_set(registered, "PORTS_UDP"),
                    running: 0,
                    pending: 0,
                    tasks: 0,
                    groups: BTreeSet::new(),
                    attributes,
                    placed: 0,
                    record: r,
                }
            })
            .collect();
        if hosts.is_empty() {
            return hosts;
        }
        let by_arn: HashMap<String, usize> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.arn.clone(), i))
            .collect();
        let mut tds: HashMap<String, Option<Arc<Value>>> = HashMap::new();
        for r in self.store.list(&key(ctx, &format!("task/{cluster}/"))) {
            let t = &r.value;
            let Some(&i) = str_of(t, "containerInstanceArn").and_then(|a| by_arn.get(a)) else {
                continue;
            };
            let last = str_of(t, "lastStatus").unwrap_or_default();
            if last == "STOPPED" {
                continue;
            }
            let demand = t
                .pointer("/_berth/reservation")
                .and_then(Demand::from_json)
                .unwrap_or_else(|| {
                    let arn = str_of(t, "taskDefinitionArn").unwrap_or_default();
                    let td = tds
                        .entry(arn.to_string())
                        .or_insert_with(|| self.find_task_definition(ctx, arn).map(|r| r.value))
                        .clone()
                        .unwrap_or_default();
                    Demand::of(t, &td)
                });
            let h = &mut hosts[i];
            h.take(&demand);
            h.tasks += 1;
            match last {
                "RUNNING" => h.running += 1,
                "PROVISIONING" | "PENDING" | "ACTIVATING" => h.pending += 1,
                _ => {}
            }
            if t["desiredStatus"] != "STOPPED" {
                if let Some(g) = str_of(t, "group") {
                    h.groups.insert(g.to_string());
                }
            }
        }
        hosts
    }

    /// The instance as the API shows it.
    fn render_instance(&self, h: &Host, with_tags: bool, with_health: bool) -> Value {
        let mut v = (*h.record.value).clone();
        let o = v.as_object_mut().expect("container instance is an object");
        o.remove("_berth");
        if !with_tags {
            o.remove("tags");
        }
        o.insert("remainingResources".into(), json!(h.remaining()));
        o.insert("runningTasksCount".into(), json!(h.running));
        o.insert("pendingTasksCount".into(), json!(h.pending));
        o.insert(
            "attributes".into(),
            json!(h
                .attributes
                .iter()
                .map(|(n, val)| match val {
                    Some(val) => json!({"name": n, "value": val}),
                    None => json!({"name": n}),
                })
                .collect::<Vec<_>>()),
        );
        if with_health {
            let at = o.get("registeredAt").cloned().unwrap_or(Value::Null);
            o.insert(
                "healthStatus".into(),
                json!({"overallStatus": "OK", "details": [{"type": "CONTAINER_RUNTIME", "status": "OK", "lastUpdated": self.clock.now(), "lastStatusChange": at}]}),
            );
        }
        v
    }

    fn find_host(&self, ctx: &RequestContext, cluster: &str, id: &str) -> Option<Host> {
        let id = instance_id(ctx, id)?;
        self.hosts(ctx, cluster).into_iter().find(|h| h.id == id)
    }

    pub(crate) fn register_container_instance(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName")
            .unwrap_or_default()
            .to_string();
        check_tags(arr_of(input, "tags"))?;
        let doc = match str_of(input, "instanceIdentityDocument") {
            Some(s) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| invalid("The instance identity document is not valid."))?,
            None => json!({}),
        };
        let attrs = arr_of(input, "attributes");
        if attrs.len() > 10 {
            return Err(invalid(
                "You can specify up to 10 attributes when registering a container instance.",
            ));
        }
        for a in attrs {
            let n = str_of(a, "name").unwrap_or_default();
            if n.is_empty() || n.len() > 128 {
                return Err(invalid(
                    "Attribute names must be between 1 and 128 characters.",
                ));
            }
        }
        let resources = match input.get("totalResources") {
            Some(t) => Some(registered_resources(
                t.as_array().map(Vec::as_slice).unwrap_or(&[]),
            )?),
            None => None,
        };
        let platform_devices = input.get("platformDevices").cloned();

        if let Some(existing) = str_of(input, "containerInstanceArn") {
            // Re-registration (the agent restarting): same ARN, fresh resources and versions.
            berth_toolkit::commit(self.store.as_ref(), busy, || {
                let r = instance_id(ctx, existing)
                    .and_then(|id| {
                        self.store
                            .get(&key(ctx, &format!("container-instance/{cluster_name}/{id}")))
                    })
                    .filter(|r| r.value["status"] != "INACTIVE")
                    .ok_or_else(|| {
                        invalid(format!(
                            "The container instance {existing} is not registered in the cluster or is inactive."
                        ))
                    })?;
                let mut v = (*r.value).clone();
                if let Some(id) = str_of(&doc, "instanceId") {
                    v["ec2InstanceId"] = json!(id);
                }
                if let Some(res) = &resources {
                    v["registeredResources"] = json!(res);
                }
                if let Some(vi) = input.get("versionInfo") {
                    v["versionInfo"] = vi.clone();
                }
                let mut merged = arr_of(&v, "attributes").to_vec();
                for a in attrs {
                    match merged.iter_mut().find(|m| m["name"] == a["name"]) {
                        Some(m) => *m = json!({"name": a["name"], "value": a.get("value")}),
                        None => merged.push(json!({"name": a["name"], "value": a.get("value")})),
                    }
                }
                v["attributes"] = json!(strip_null_values(merged));
                v["tags"] = json!(merge_tags(arr_of(&v, "tags"), arr_of(input, "tags")));
                if let Some(pd) = &platform_devices {
                    v["_berth"]["platformDevices"] = pd.clone();
                }
                v["agentConnected"] = json!(true);
                v["version"] = json!(v["version"].as_i64().unwrap_or(1) + 1);
                let mut plan = Plan::new(());
                plan.put(&r, v);
                Ok(plan)
            })?;
            let h = self
                .find_host(ctx, &cluster_name, existing)
                .ok_or_else(busy)?;
            return Ok(json!({"containerInstance": self.render_instance(&h, true, false)}));
        }

        let id = uuid::Uuid::new_v4().simple().to_string();
        let instance_arn = arn(ctx, &format!("container-instance/{cluster_name}/{id}"));
        let ec2_id = str_of(&doc, "instanceId")
            .map(str::to_string)
            .unwrap_or_else(|| format!("i-{}", &uuid::Uuid::new_v4().simple().to_string()[..17]));
        let mut attributes = default_attributes(&doc, &ctx.region);
        for a in attrs {
            let a = json!({"name": a["name"], "value": a.get("value")});
            match attributes.iter_mut().find(|m| m["name"] == a["name"]) {
                Some(m) => *m = a,
                None => attributes.push(a),
            }
        }
        let mut record = json!({
            "containerInstanceArn": instance_arn,
            "ec2InstanceId": ec2_id,
            "version": 1,
            "versionInfo": input.get("versionInfo").cloned().unwrap_or_else(|| json!({})),
            "registeredResources": resources.unwrap_or(registered_resources(&[])?),
            "status": "ACTIVE",
            "agentConnected": true,
            "attributes": strip_null_values(attributes),
            "registeredAt": self.clock.now(),
            "attachments": [],
            "tags": arr_of(input, "tags"),
        });
        if let Some(pd) = platform_devices {
            record["_berth"] = json!({"platformDevices": pd});
        }
        let k = key(ctx, &format!("container-instance/{cluster_name}/{id}"));
        self.store
            .txn(&[Cond::Absent(k.clone())], vec![Op::Put(k, record)])
            .map_err(store_err)?;
        let h = self.find_host(ctx, &cluster_name, &id).ok_or_else(busy)?;
        Ok(json!({"containerInstance": self.render_instance(&h, true, false)}))
    }

    pub(crate) fn deregister_container_instance(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let id = str_of(input, "containerInstance").unwrap_or_default();
        let force = input.get("force").and_then(Value::as_bool).unwrap_or(false);
        berth_toolkit::commit(self.store.as_ref(), busy, || {
            let h = self
                .find_host(ctx, cluster_name, id)
                .ok_or_else(|| invalid("The referenced container instance was not found."))?;
            if h.status == "INACTIVE" {
                return Ok(Plan::new(())); // already deregistered: answered as it is
            }
            // Tasks keep running when forced: ECS orphans them, it does not stop them.
            if h.tasks > 0 && !force {
                return Err(invalid("Found running tasks on the instance."));
            }
            let mut v = h.bumped();
            v["status"] = json!("INACTIVE");
            v["agentConnected"] = json!(false);
            let mut plan = Plan::new(());
            plan.put(&h.record, v);
            Ok(plan)
        })?;
        let h = self.find_host(ctx, cluster_name, id).ok_or_else(busy)?;
        Ok(json!({"containerInstance": self.render_instance(&h, false, false)}))
    }

    pub(crate) fn describe_container_instances(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let ids = arr_of(input, "containerInstances");
        if ids.len() > 100 {
            return Err(invalid(
                "containerInstances cannot have more than 100 elements.",
            ));
        }
        let with_tags = include_has(input, "TAGS");
        let with_health = include_has(input, "CONTAINER_INSTANCE_HEALTH");
        let hosts = self.hosts(ctx, cluster_name);
        let mut found = vec![];
        let mut failures = vec![];
        for id in ids.iter().filter_map(Value::as_str) {
            let short = instance_id(ctx, id);
            match hosts.iter().find(|h| Some(&h.id) == short.as_ref()) {
                Some(h) => found.push(self.render_instance(h, with_tags, with_health)),
                None => failures.push(json!({"arn": id, "reason": "MISSING"})),
            }
        }
        Ok(json!({"containerInstances": found, "failures": failures}))
    }

    pub(crate) fn list_container_instances(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let filter = match str_of(input, "filter") {
            Some(f) => Some(Query::parse(f).map_err(|e| e.api("ListContainerInstances"))?),
            None => None,
        };
        let status = str_of(input, "status");
        let arns: Vec<(String, String)> = self
            .hosts(ctx, cluster_name)
            .into_iter()
            .filter(|h| match status {
                Some(s) => h.status == s,
                // Without a status: every state but INACTIVE.
                None => h.status != "INACTIVE",
            })
            .filter(|h| filter.as_ref().is_none_or(|q| q.matches(h)))
            .map(|h| (h.record.key.clone(), h.arn.clone()))
            .collect();
        let page = paginate(arns, |(k, _)| k.clone(), input, 100, 100, INVALID)?;
        Ok(
            json!({"containerInstanceArns": page.items.into_iter().map(|(_, a)| a).collect::<Vec<_>>(), "nextToken": page.next_token}),
        )
    }

    pub(crate) fn update_container_instances_state(
        &self,
        ctx: &RequestContext,
        input: &Value,
    ) -> ApiResult<Value> {
        let cluster = active_cluster(self.store.as_ref(), ctx, input, "cluster")?;
        let cluster_name = str_of(&cluster.value, "clusterName").unwrap_or_default();
        let status = str_of(input, "status").unwrap_or_default();
        if status != "ACTIVE" && status != "DRAINING" {
            return Err(invalid(
                "Container instances can only be set to ACTIVE or DRAINING.",
            ));
        }
        let ids: Vec<&str> = arr_of(input, "containerInstances")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if ids.is_empty() || ids.len() > 10 {
            return Err(invalid(
                "containerInstances must list between 1 and 10 container instances.",
            ));
        }
        let (chosen, failures) = berth_toolkit::commit(self.store.as_ref(), busy, || {
            let hosts = self.hosts(ctx, cluster_name);
            let mut failures = vec![];
            let mut chosen: Vec<String> = vec![];
            let mut conds = vec![];
            let mut ops = vec![];
            for id in &ids {
                let short = instance_id(ctx, id);
                match hosts.iter().position(|h| Some(&h.id) == short.as_ref()) {
                    None => failures.push(json!({"arn": id, "reason": "MISSING"})),
                    Some(i) if hosts[i].status == "INACTIVE" => failures.push(
                        json!({"arn": hosts[i].arn, "reason": "INACTIVE", "detail": "The container instance is deregistered."}),
                    ),
                    Some(i) if chosen.contains(&hosts[i].id) => {}
                    Some(i) => {
                        let h = &hosts[i];
                        chosen.push(h.id.clone());
                        if h.status != status {
                            let mut v = h.bumped();
                            v["status"] = json!(status);
                            conds.push(Cond::Revision(h.record.key.clone(), h.record.revision));
                            ops.push(Op::Put(h.record.key.clone(), v));
                        }
                    }
                }
            }
            Ok(Plan {
                conds,
                ops,
                result: (chosen, failures),
            })
        })?;
        let hosts = self.hosts(ctx, cluster_name);
        let out: Vec<Value> = chosen
            .iter()
            .filter_map(|id| hosts.iter().find(|h| &h.id == id))
            .map(|h| self.render_instance(h, false, false))
            .collect();
        Ok(json!({"containerInstances": out, "failures": failures}))
    }

    /// Register this host as a container instance of `cluster` (a name or ARN), as the ECS
    /// agent does when it starts, so that EC2 launch type tasks can be placed on it.
    ///
    /// `cpu_units` is 1024 per core; `memory_mib` is what tasks may use;
    /// `ec2_instance_id` names the host (stable across restarts, e.g. from the data
    /// directory). Returns `Ok(None)` when the cluster does not exist (or is INACTIVE): call
    /// again once it does. Otherwise `Ok(Some(arn))`: an instance of that cluster not yet
    /// deregistered (ACTIVE, or DRAINING, which stays so) with the same `ec2InstanceId` is
    /// reused, re-registered only when its CPU or memory changed; else a new ACTIVE one is
    /// registered. Idempotent.
    pub fn register_local_instance(
        &self,
        ctx: &RequestContext,
        cluster: &str,
        cpu_units: i64,
        memory_mib: i64,
        ec2_instance_id: &str,
    ) -> ApiResult<Option<String>> {
        let c = match active_cluster(
            self.store.as_ref(),
            ctx,
            &json!({"cluster": cluster}),
            "cluster",
        ) {
            Ok(c) => c,
            Err(e) if e.code == "ClusterNotFoundException" => return Ok(None),
            Err(e) => return Err(e),
        };
        let cluster_name = str_of(&c.value, "clusterName").unwrap_or_default();
        let existing = self
            .store
            .list(&key(ctx, &format!("container-instance/{cluster_name}/")))
            .into_iter()
            .find(|r| {
                r.value["status"] != "INACTIVE" && r.value["ec2InstanceId"] == ec2_instance_id
            });
        let doc = json!({
            "instanceId": ec2_instance_id,
            "region": ctx.region,
            "availabilityZone": format!("{}a", ctx.region),
        });
        let mut input = json!({
            "cluster": cluster_name,
            "instanceIdentityDocument": doc.to_string(),
            "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": cpu_units},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": memory_mib},
            ],
            "versionInfo": {"agentVersion": env!("CARGO_PKG_VERSION"), "agentHash": "berth", "dockerVersion": "berth"},
        });
        if let Some(r) = existing {
            let arn = str_of(&r.value, "containerInstanceArn")
                .unwrap_or_default()
                .to_string();
            let registered = arr_of(&r.value, "registeredResources");
            if resource_int(registered, "CPU") == cpu_units
                && resource_int(registered, "MEMORY") == memory_mib
            {
                return Ok(Some(arn));
            }
            // Keep the ports it was registered with; only the sizes change.
            let mut total = arr_of(&input, "totalResources").to_vec();
            total.extend(
                registered
                    .iter()
                    .filter(|x| x["name"] != "CPU" && x["name"] != "MEMORY")
                    .cloned(),
            );
            input["totalResources"] = json!(total);
            input["containerInstanceArn"] = json!(arn);
        }
        let out = self.register_container_instance(ctx, &input)?;
        Ok(out
            .pointer("/containerInstance/containerInstanceArn")
            .and_then(Value::as_str)
            .map(str::to_string))
    }
}

/// Attributes without a value are written without the member, as ECS shows them.
fn strip_null_values(attrs: Vec<Value>) -> Vec<Value> {
    attrs
        .into_iter()
        .map(|mut a| {
            if a.get("value").is_some_and(Value::is_null) {
                a.as_object_mut().map(|o| o.remove("value"));
            }
            a
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use berth_wire::{Clock, Service};

    pub(crate) fn setup() -> (tempfile::TempDir, Ecs, RequestContext) {
        let dir = tempfile::tempdir().unwrap();
        let store = berth_store::SqliteStore::open(&dir.path().join("db")).unwrap();
        let ecs = Ecs::new(Arc::new(store), Clock::default());
        let ctx = RequestContext {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            request_id: "r".into(),
        };
        (dir, ecs, ctx)
    }

    fn call(ecs: &Ecs, ctx: &RequestContext, op: &str, input: Value) -> ApiResult<Value> {
        ecs.call(ctx, op, input)
    }

    pub(crate) fn register(ecs: &Ecs, ctx: &RequestContext, cpu: i64, mem: i64) -> String {
        let out = call(
            ecs,
            ctx,
            "RegisterContainerInstance",
            json!({"cluster": "c1", "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": mem}],
                "attributes": [{"name": "stack", "value": "blue"}]}),
        )
        .unwrap();
        out["containerInstance"]["containerInstanceArn"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn remaining(ecs: &Ecs, ctx: &RequestContext, arn: &str) -> Value {
        let out = call(
            ecs,
            ctx,
            "DescribeContainerInstances",
            json!({"cluster": "c1", "containerInstances": [arn]}),
        )
        .unwrap();
        out["containerInstances"][0].clone()
    }

    #[test]
    fn register_describe_deregister() {
        let (_d, ecs, ctx) = setup();
        assert_eq!(
            call(
                &ecs,
                &ctx,
                "RegisterContainerInstance",
                json!({"cluster": "c1"})
            )
            .unwrap_err()
            .code,
            "ClusterNotFoundException"
        );
        call(&ecs, &ctx, "CreateCluster", json!({"clusterName": "c1"})).unwrap();
        let arn = register(&ecs, &ctx, 2048, 4096);
        assert!(arn.starts_with("arn:aws:ecs:us-east-1:000000000000:container-instance/c1/"));
        assert_eq!(arn.rsplit('/').next().unwrap().len(), 32);
        let ci = remaining(&ecs, &ctx, &arn);
        assert_eq!(ci["status"], "ACTIVE");
        assert!(ci["ec2InstanceId"].as_str().unwrap().starts_with("i-"));
        assert_eq!(ci["ec2InstanceId"].as_str().unwrap().len(), 19);
        assert_eq!(ci["remainingResources"][1]["integerValue"], 4096);
        assert_eq!(
            ci["registeredResources"][2]["stringSetValue"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
        assert!(ci.get("tags").is_none());
        assert!(ci["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "ecs.os-type" && a["value"] == "linux"));
        let c = call(&ecs, &ctx, "DescribeClusters", json!({"clusters": ["c1"]})).unwrap();
        assert_eq!(c["clusters"][0]["registeredContainerInstancesCount"], 1);
        let missing = call(
            &ecs,
            &ctx,
            "DescribeContainerInstances",
            json!({"cluster": "c1", "containerInstances": ["nope"]}),
        )
        .unwrap();
        assert_eq!(missing["failures"][0]["reason"], "MISSING");
        let out = call(
            &ecs,
            &ctx,
            "DeregisterContainerInstance",
            json!({"cluster": "c1", "containerInstance": arn}),
        )
        .unwrap();
        assert_eq!(out["containerInstance"]["status"], "INACTIVE");
        let list = call(
            &ecs,
            &ctx,
            "ListContainerInstances",
            json!({"cluster": "c1"}),
        )
        .unwrap();
        assert_eq!(list["containerInstanceArns"], json!([]));
        assert_eq!(remaining(&ecs, &ctx, &arn)["status"], "INACTIVE");
        call(&ecs, &ctx, "DeleteCluster", json!({"cluster": "c1"})).unwrap();
    }

    #[test]
    fn identity_document_and_reregistration() {
        let (_d, ecs, ctx) = setup();
        call(&ecs, &ctx, "CreateCluster", json!({"clusterName": "c1"})).unwrap();
        let doc = json!({"instanceId": "i-0123456789abcdef0", "instanceType": "m5.large", "availabilityZone": "us-east-1b"});
        let out = call(
            &ecs,
            &ctx,
            "RegisterContainerInstance",
            json!({"cluster": "c1", "instanceIdentityDocument": doc.to_string(),
                   "totalResources": [{"name": "CPU", "type": "INTEGER", "integerValue": 1024}]}),
        )
        .unwrap();
        let ci = &out["containerInstance"];
        assert_eq!(ci["ec2InstanceId"], "i-0123456789abcdef0");
        assert!(ci["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "ecs.instance-type" && a["value"] == "m5.large"));
        let arn = ci["containerInstanceArn"].as_str().unwrap();
        let again = call(
            &ecs,
            &ctx,
            "RegisterContainerInstance",
            json!({"cluster": "c1", "containerInstanceArn": arn,
                   "totalResources": [{"name": "CPU", "type": "INTEGER", "integerValue": 4096}]}),
        )
        .unwrap();
        assert_eq!(again["containerInstance"]["containerInstanceArn"], arn);
        assert_eq!(again["containerInstance"]["version"], 2);
        assert_eq!(
            again["containerInstance"]["registeredResources"][0]["integerValue"],
            4096
        );
        assert_eq!(
            call(
                &ecs,
                &ctx,
                "RegisterContainerInstance",
                json!({"cluster": "c1", "instanceIdentityDocument": "not json"})
            )
            .unwrap_err()
            .code,
            INVALID
        );
    }

    #[test]
    fn local_instance_is_reused() {
        let (_d, ecs, ctx) = setup();
        assert_eq!(
            ecs.register_local_instance(&ctx, "default", 2048, 1000, "i-local")
                .unwrap(),
            None
        );
        call(&ecs, &ctx, "CreateCluster", json!({})).unwrap();
        let a = ecs
            .register_local_instance(&ctx, "default", 2048, 1000, "i-local")
            .unwrap()
            .unwrap();
        let b = ecs
            .register_local_instance(&ctx, "default", 2048, 1000, "i-local")
            .unwrap()
            .unwrap();
        assert_eq!(a, b);
        let c = ecs
            .register_local_instance(&ctx, "default", 4096, 1000, "i-local")
            .unwrap()
            .unwrap();
        assert_eq!(a, c);
        let list = call(&ecs, &ctx, "ListContainerInstances", json!({})).unwrap();
        assert_eq!(list["containerInstanceArns"], json!([a]));
        let ci = call(
            &ecs,
            &ctx,
            "DescribeContainerInstances",
            json!({"containerInstances": [a]}),
        )
        .unwrap()["containerInstances"][0]
            .clone();
        assert_eq!(ci["registeredResources"][0]["integerValue"], 4096);
        assert_eq!(ci["ec2InstanceId"], "i-local");
        // A deregistered host registers anew.
        call(
            &ecs,
            &ctx,
            "DeregisterContainerInstance",
            json!({"containerInstance": a}),
        )
        .unwrap();
        let d = ecs
            .register_local_instance(&ctx, "default", 4096, 1000, "i-local")
            .unwrap()
            .unwrap();
        assert_ne!(a, d);
    }

    #[test]
    fn state_and_filters() {
        let (_d, ecs, ctx) = setup();
        call(&ecs, &ctx, "CreateCluster", json!({"clusterName": "c1"})).unwrap();
        let a = register(&ecs, &ctx, 1024, 1024);
        let b = register(&ecs, &ctx, 1024, 1024);
        ecs.store
            .put(
                &key(
                    &ctx,
                    &format!("attribute/c1/{}/zone", b.rsplit('/').next().unwrap()),
                ),
                json!({"name": "zone", "value": "east", "targetType": "container-instance"}),
            )
            .unwrap();
        let list = |input: Value| {
            let mut out: Vec<String> = call(&ecs, &ctx, "ListContainerInstances", input).unwrap()
                ["containerInstanceArns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            out.sort();
            out
        };
        let mut both = vec![a.clone(), b.clone()];
        both.sort();
        assert_eq!(
            list(json!({"cluster": "c1", "filter": "attribute:zone exists"})),
            vec![b.clone()]
        );
        assert_eq!(
            list(json!({"cluster": "c1", "filter": "attribute:zone == east"})),
            vec![b.clone()]
        );
        assert_eq!(
            list(json!({"cluster": "c1", "filter": "attribute:zone != east"})),
            vec![a.clone()]
        );
        assert_eq!(
            list(
                json!({"cluster": "c1", "filter": "attribute:stack == blue and attribute:zone not exists"})
            ),
            vec![a.clone()]
        );
        assert_eq!(
            list(
                json!({"cluster": "c1", "filter": "attribute:zone in [west, east] or attribute:ecs.os-type == linux"})
            ),
            both
        );
        assert_eq!(
            call(
                &ecs,
                &ctx,
                "ListContainerInstances",
                json!({"cluster": "c1", "filter": "runningTasksCount > 1"})
            )
            .unwrap_err()
            .status,
            501
        );
        assert_eq!(
            call(
                &ecs,
                &ctx,
                "ListContainerInstances",
                json!({"cluster": "c1", "filter": "attribute:zone =="})
            )
            .unwrap_err()
            .code,
            INVALID
        );
        let out = call(
            &ecs,
            &ctx,
            "UpdateContainerInstancesState",
            json!({"cluster": "c1", "containerInstances": [a, "ghost"], "status": "DRAINING"}),
        )
        .unwrap();
        assert_eq!(out["containerInstances"][0]["status"], "DRAINING");
        assert_eq!(out["failures"][0]["reason"], "MISSING");
        assert_eq!(
            list(json!({"cluster": "c1", "status": "DRAINING"})),
            vec![a.clone()]
        );
        assert_eq!(
            list(json!({"cluster": "c1", "status": "ACTIVE"})),
            vec![b.clone()]
        );
        assert_eq!(list(json!({"cluster": "c1"})), both);
        let page = call(
            &ecs,
            &ctx,
            "ListContainerInstances",
            json!({"cluster": "c1", "maxResults": 1}),
        )
        .unwrap();
        assert_eq!(page["containerInstanceArns"].as_array().unwrap().len(), 1);
        assert!(page["nextToken"].is_string());
        assert_eq!(
            call(
                &ecs,
                &ctx,
                "UpdateContainerInstancesState",
                json!({"cluster": "c1", "containerInstances": [a], "status": "REGISTERING"})
            )
            .unwrap_err()
            .code,
            INVALID
        );
    }

    #[test]
    fn queries_parse() {
        assert_eq!(
            Query::parse("attribute:ecs.instance-type == t2.micro").unwrap(),
            Query::Attribute("ecs.instance-type".into(), Test::Eq("t2.micro".into()))
        );
        assert_eq!(
            Query::parse("(attribute:a exists)").unwrap(),
            Query::Attribute("a".into(), Test::Exists)
        );
        assert_eq!(
            Query::parse("attribute:a not in [x,y]").unwrap(),
            Query::Attribute("a".into(), Test::NotIn(vec!["x".into(), "y".into()]))
        );
        assert!(matches!(
            Query::parse("attribute:a =~ t2.*"),
            Err(QueryError::Unsupported(_))
        ));
        assert!(matches!(
            Query::parse("task:group == x"),
            Err(QueryError::Unsupported(_))
        ));
        assert!(matches!(
            Query::parse("attribute:a exists and"),
            Err(QueryError::Invalid(_))
        ));
        assert!(matches!(
            Query::parse("bogus == 1"),
            Err(QueryError::Invalid(_))
        ));
        assert!(matches!(Query::parse(""), Err(QueryError::Invalid(_))));
    }

    #[test]
    fn demand_of_tasks() {
        let td = json!({"networkMode": "bridge", "containerDefinitions": [
            {"name": "a", "portMappings": [{"containerPort": 80, "hostPort": 8080, "protocol": "tcp"},
                                           {"containerPort": 53, "hostPort": 5353, "protocol": "udp"},
                                           {"containerPort": 81, "hostPort": 0}]}]});
        let task = json!({"containers": [
            {"cpu": "128", "memory": "512"},
            {"cpu": "0", "memory": "512", "memoryReservation": "256"}]});
        assert_eq!(
            Demand::of(&task, &td),
            Demand {
                cpu: 128,
                memory: 768,
                tcp: vec!["8080".into()],
                udp: vec!["5353".into()]
            }
        );
        let task = json!({"cpu": "1 vCPU", "memory": "2 GB", "containers": [{"cpu": "128", "memory": "512"}]});
        let awsvpc =
            json!({"networkMode": "awsvpc", "containerDefinitions": td["containerDefinitions"]});
        assert_eq!(
            Demand::of(&task, &awsvpc),
            Demand {
                cpu: 1024,
                memory: 2048,
                tcp: vec![],
                udp: vec![]
            }
        );
        let d = Demand::of(&task, &td);
        assert_eq!(Demand::from_json(&d.to_json()), Some(d));
    }
}
