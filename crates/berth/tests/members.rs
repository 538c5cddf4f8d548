//! Every input member of every operation Berth implements is accounted for (issue 18):
//! it acts, it is refused, or it is accepted and listed in docs/compatibility.md.
//!
//! The tables are `docs/members/{ecs,elbv2,ecr,ec2}.txt`, one line per member path
//! (`Operation.member.member...` in the model's names; lists and maps are transparent)
//! and a word: `acts`, `refused` or `listed`. A line covers the members below it that
//! have no line of their own. This test reads each shipped model, finds the operations
//! the service implements by calling each one with `{}` (an operation Berth does not
//! implement answers `NotImplemented` naming it before looking at its input), walks
//! their input shapes and fails on every member path no line covers, on lines naming a
//! path the model or the implemented operations lack, and on `listed` lines whose member
//! name the service's "Accepted, not yet acted on" list in docs/compatibility.md does not
//! mention.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_store::{SqliteStore, Store};
use berth_wire::{Clock, RequestContext, Service};
use serde_json::{json, Value};

const WORDS: [&str; 3] = ["acts", "refused", "listed"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_model(name: &str) -> Value {
    let path = root().join(format!("crates/berth-wire/models/{name}.json.gz"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The name of a shape reference: a plain string or `{"shape": NAME}`.
fn shape_name(r: &Value) -> Option<&str> {
    r.as_str()
        .or_else(|| r.get("shape").and_then(Value::as_str))
}

/// Every member path under `shape`, `prefix.member...`, lists and maps transparent.
/// A shape already on the way down (a recursive shape) is not entered again.
fn walk(shapes: &Value, shape: &str, prefix: &str, stack: &mut Vec<String>, out: &mut Vec<String>) {
    let s = &shapes[shape];
    let enter = |name: &str, path: &str, stack: &mut Vec<String>, out: &mut Vec<String>| {
        if stack.iter().any(|s| s == name) {
            return;
        }
        stack.push(name.to_string());
        walk(shapes, name, path, stack, out);
        stack.pop();
    };
    match s["type"].as_str() {
        Some("structure") | Some("union") => {
            let Some(members) = s["members"].as_object() else {
                return;
            };
            for (name, member) in members {
                let path = format!("{prefix}.{name}");
                out.push(path.clone());
                if let Some(sub) = shape_name(member) {
                    enter(sub, &path, stack, out);
                }
            }
        }
        Some("list") => {
            if let Some(sub) = shape_name(&s["member"]) {
                enter(sub, prefix, stack, out);
            }
        }
        Some("map") => {
            if let Some(sub) = shape_name(&s["value"]) {
                enter(sub, prefix, stack, out);
            }
        }
        _ => {}
    }
}

/// The operations `service` implements: those that do not answer `NotImplemented` naming
/// themselves when called with an empty input (a refusal of the input, a success or a
/// panic all mean a handler was reached).
fn implemented(service: &dyn Service, operations: &[String]) -> BTreeSet<String> {
    let ctx = RequestContext {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        request_id: "members".into(),
    };
    let mut out = BTreeSet::new();
    for op in operations {
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            service.call(&ctx, op, json!({}))
        }));
        let not_implemented = matches!(
            &answer,
            Ok(Err(e)) if e.code == "NotImplemented" && e.message.contains(op.as_str())
        );
        if !not_implemented {
            out.insert(op.clone());
        }
    }
    out
}

struct Line {
    number: usize,
    path: String,
    word: String,
}

fn read_table(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let mut words = content.split_whitespace();
        let (Some(p), Some(w), None) = (words.next(), words.next(), words.next()) else {
            panic!(
                "{}:{}: expected `Operation.member.path acts|refused|listed`, got {raw:?}",
                path.display(),
                i + 1
            );
        };
        lines.push(Line {
            number: i + 1,
            path: p.to_string(),
            word: w.to_string(),
        });
    }
    lines
}

/// The "Accepted, not yet acted on:" paragraphs of the section of docs/compatibility.md
/// whose heading starts with `## {heading}`: from that line to the next paragraph heading
/// (a line such as `Refused:`) or section.
fn accepted_list(compatibility: &str, heading: &str) -> String {
    let start = format!("## {heading}");
    let mut out = String::new();
    let (mut in_section, mut in_list) = (false, false);
    for line in compatibility.lines() {
        if line.starts_with("## ") {
            in_section = line.starts_with(&start);
            in_list = false;
        } else if in_section && !line.starts_with([' ', '-']) && line.ends_with(':') {
            in_list = line == "Accepted, not yet acted on:";
        } else if in_list {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `name` appears in `text` as a word of its own (not inside a longer identifier).
fn mentions(text: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// `heading`: the start of the service's section heading in docs/compatibility.md.
fn check(model_name: &str, heading: &str, service: &dyn Service) {
    let model = read_model(model_name);
    let shapes = &model["shapes"];
    let operations: Vec<String> = model["operations"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let implemented = implemented(service, &operations);
    assert!(
        !implemented.is_empty(),
        "{model_name}: no operation found implemented"
    );

    // Every member path of the implemented operations, and the operations themselves.
    let mut paths: Vec<String> = Vec::new();
    let mut known: BTreeSet<String> = BTreeSet::new();
    for op in &implemented {
        known.insert(op.clone());
        let Some(input) = model["operations"][op].get("input").and_then(shape_name) else {
            continue;
        };
        let mut out = Vec::new();
        walk(shapes, input, op, &mut vec![input.to_string()], &mut out);
        known.extend(out.iter().cloned());
        paths.extend(out);
    }

    let table_name = format!("docs/members/{model_name}.txt");
    let table = read_table(&root().join(&table_name));
    let compatibility = std::fs::read_to_string(root().join("docs/compatibility.md")).unwrap();
    let accepted = accepted_list(&compatibility, heading);
    assert!(
        !accepted.is_empty(),
        "docs/compatibility.md: no \"Accepted, not yet acted on:\" list under ## {heading}"
    );
    let mut problems: Vec<String> = Vec::new();
    let mut words: BTreeMap<&str, &str> = BTreeMap::new();
    for line in &table {
        let at = format!("{table_name}:{}", line.number);
        if !WORDS.contains(&line.word.as_str()) {
            problems.push(format!(
                "{at}: {} has {:?}, not one of {WORDS:?}",
                line.path, line.word
            ));
        }
        if words.insert(&line.path, &line.word).is_some() {
            problems.push(format!("{at}: {} has a second line", line.path));
        }
        let op = line.path.split('.').next().unwrap();
        if !known.contains(&line.path) {
            if model["operations"].get(op).is_none() {
                problems.push(format!("{at}: {op} is not an operation of the model"));
            } else if !implemented.contains(op) {
                problems.push(format!("{at}: {op} is not implemented (a stale line)"));
            } else {
                problems.push(format!(
                    "{at}: {} is not a member path of the model (a stale line)",
                    line.path
                ));
            }
        }
        let member = line.path.rsplit('.').next().unwrap();
        if line.word == "listed" && line.path.contains('.') && !mentions(&accepted, member) {
            problems.push(format!(
                "{at}: {} is `listed` but docs/compatibility.md does not name {member} in \
                 {heading}'s \"Accepted, not yet acted on\" list",
                line.path
            ));
        }
    }

    // Each path's covering line: its own, else its nearest ancestor's.
    let mut uncovered = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for path in &paths {
        let mut p = path.as_str();
        let word = loop {
            if let Some(w) = words.get(p) {
                break Some(*w);
            }
            match p.rfind('.') {
                Some(dot) => p = &p[..dot],
                None => break None,
            }
        };
        match word {
            Some(w) => *counts.entry(w).or_default() += 1,
            None => uncovered.push(path.as_str()),
        }
    }
    for path in &uncovered {
        problems.push(format!(
            "{table_name}: {path} has no line (acts, refused or listed)"
        ));
    }
    let lines: BTreeMap<&str, usize> = table.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l.word.as_str()).or_default() += 1;
        m
    });
    println!(
        "{model_name}: {} operations implemented, {} member paths; paths covered {counts:?}; \
         lines {lines:?}",
        implemented.len(),
        paths.len()
    );
    assert!(
        problems.is_empty(),
        "{model_name}: {} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.join("state.db")).unwrap())
}

#[test]
fn ecs_members_are_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let ecs = berth_ecs::Ecs::new(store(dir.path()), Clock::default());
    check("ecs", "ECS", &ecs);
}

#[test]
fn elbv2_members_are_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let elbv2 = berth_elbv2::Elbv2::new(store(dir.path()), Clock::default());
    check("elbv2", "ELBv2", &elbv2);
}

#[test]
fn ec2_members_are_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let ec2 = berth_ec2::Ec2::new(store(dir.path()), Clock::default());
    check("ec2", "EC2", &ec2);
}

#[test]
fn ecr_members_are_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let registry = berth_registry::Registry {
        store: store(dir.path()),
        blobs: Arc::new(berth_registry::FsBlobs::open(&dir.path().join("registry")).unwrap()),
        clock: Clock::default(),
        default_account: "000000000000".into(),
        registry_host: "localhost:4566".into(),
        token_secret: "s".into(),
        require_auth: false,
        hashers: Default::default(),
        blob_writes: Default::default(),
    };
    let ecr = berth_ecr::Ecr::new(Arc::new(registry));
    check("ecr", "ECR", &ecr);
}
