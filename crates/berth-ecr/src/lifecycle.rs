//! Lifecycle policies: the policy document validated as ECR validates it, its evaluation
//! as ECR documents it, the Put/Get/Delete and preview operations, and the controller
//! that expires images and then collects their unreferenced blobs.
//!
//! Evaluation (ECR's "lifecycle policy evaluation rules"):
//! - Rules apply in rulePriority order, lowest first. Each rule first selects images by
//!   tag: `untagged` (no tags), `any` (all), or `tagged` with a tagPrefixList or
//!   tagPatternList, where every entry of the list must match one of the image's tags
//!   (a prefix, or a pattern with `*` wildcards matching the whole tag).
//! - `imageCountMoreThan N`: of the selected images, newest pushed first, those after the
//!   first N expire. `sinceImagePushed N days`: selected images pushed more than N days ago
//!   (by the injectable clock) expire.
//! - An image is expired by at most one rule, and an image selected by a rule's tag
//!   selection cannot be expired by a later rule; later rules still count it.
//! - Berth adds one safety rule: an image that a kept index (manifest list) references is
//!   never expired, so a kept multi-platform image stays pullable.

use crate::types::*;
use crate::{invalid, scope, server_err, Ecr};
use berth_registry::{gc, Image, Registry, RegistryError, Scope};
use berth_store::{Cond, Event, EventKind, Op, StoreError};
use berth_wire::typed::Timestamp;
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn lifecycle_key(scope: &Scope, repo: &str) -> String {
    format!("/{}/{}/ecr/lifecycle/{repo}", scope.account, scope.region)
}

fn preview_key(scope: &Scope, repo: &str) -> String {
    format!(
        "/{}/{}/ecr/lifecycle-preview/{repo}",
        scope.account, scope.region
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountType {
    ImageCountMoreThan,
    SinceImagePushed,
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub priority: i64,
    pub tag_status: TagStatus,
    pub prefixes: Vec<String>,
    pub patterns: Vec<String>,
    pub count_type: CountType,
    pub count: i64,
}

/// Why a policy document is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyError {
    /// Not a valid ECR lifecycle policy: `InvalidParameterException` with this message.
    Invalid(String),
    /// Valid, but needs something Berth does not have (the archive storage class, pull times).
    NotImplemented(String),
}

impl PolicyError {
    fn api(self, operation: &str) -> ApiError {
        match self {
            PolicyError::Invalid(m) => invalid(m),
            PolicyError::NotImplemented(what) => ApiError::new(
                501,
                "NotImplemented",
                format!(
                    "{operation}: lifecycle rules with {what} are not implemented in Berth yet"
                ),
            ),
        }
    }
}

fn fail(detail: impl std::fmt::Display) -> PolicyError {
    PolicyError::Invalid(format!(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: {detail}'"
    ))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn names(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

fn want<'a>(v: &'a Value, ty: &str) -> Result<&'a Value, PolicyError> {
    if json_type(v) == ty {
        Ok(v)
    } else {
        Err(fail(format!(
            "instance type ({}) does not match any allowed primitive type (allowed: [\"{ty}\"])",
            json_type(v)
        )))
    }
}

fn object<'a>(
    v: &'a Value,
    required: &[&str],
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, PolicyError> {
    let o = want(v, "object")?.as_object().expect("an object");
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| !o.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(fail(format!(
            "object has missing required properties ({})",
            names(&missing)
        )));
    }
    let extra: Vec<&str> = o
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if !extra.is_empty() {
        return Err(fail(format!(
            "object instance has properties which are not allowed by the schema: ({})",
            names(&extra)
        )));
    }
    Ok(o)
}

fn one_of<'a>(v: &'a Value, values: &[&str]) -> Result<&'a str, PolicyError> {
    let s = want(v, "string")?.as_str().expect("a string");
    if values.contains(&s) {
        Ok(s)
    } else {
        Err(fail(format!(
            "instance value ({v}) not found in enum (possible values: {})",
            names(values)
        )))
    }
}

fn positive(v: &Value) -> Result<i64, PolicyError> {
    let n = want(v, "integer")?.as_i64().unwrap_or(i64::MAX);
    if n < 1 {
        return Err(fail(format!(
            "numeric instance is lower than the required minimum (minimum: 1, found: {n})"
        )));
    }
    Ok(n)
}

fn strings(v: &Value) -> Result<Vec<String>, PolicyError> {
    let a = want(v, "array")?.as_array().expect("an array");
    if a.is_empty() {
        return Err(fail(
            "array is too short: must have at least 1 elements but instance has 0 elements",
        ));
    }
    a.iter()
        .map(|s| {
            let s = want(s, "string")?.as_str().expect("a string");
            if s.is_empty() {
                return Err(fail(
                    "string \"\" is too short (length: 0, required minimum: 1)",
                ));
            }
            Ok(s.to_string())
        })
        .collect()
}

/// Parse and validate a lifecycle policy document; its rules in priority order.
pub fn parse_policy(text: &str) -> Result<Vec<Rule>, PolicyError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| fail(format!("the policy is not valid JSON ({e})")))?;
    let top = object(&v, &["rules"], &["rules"])?;
    let list = want(&top["rules"], "array")?.as_array().expect("an array");
    if list.is_empty() {
        return Err(fail(
            "array is too short: must have at least 1 elements but instance has 0 elements",
        ));
    }
    let mut rules = vec![];
    let mut unsupported: Option<String> = None;
    for r in list {
        let o = object(
            r,
            &["rulePriority", "selection", "action"],
            &["rulePriority", "description", "selection", "action"],
        )?;
        let priority = positive(&o["rulePriority"])?;
        if let Some(d) = o.get("description") {
            want(d, "string")?;
        }
        let sel = object(
            &o["selection"],
            &["tagStatus", "countType", "countNumber"],
            &[
                "tagStatus",
                "tagPrefixList",
                "tagPatternList",
                "countType",
                "countUnit",
                "countNumber",
                "storageClass",
            ],
        )?;
        let tag_status = one_of(&sel["tagStatus"], &["tagged", "untagged", "any"])?;
        let prefixes = sel.get("tagPrefixList").map(strings).transpose()?;
        let patterns = sel.get("tagPatternList").map(strings).transpose()?;
        let count_type = one_of(
            &sel["countType"],
            &[
                "imageCountMoreThan",
                "sinceImagePushed",
                "sinceImagePulled",
                "sinceImageTransitioned",
            ],
        )?;
        let count_unit = sel
            .get("countUnit")
            .map(|u| one_of(u, &["days"]))
            .transpose()?;
        let count = positive(&sel["countNumber"])?;
        let storage_class = sel
            .get("storageClass")
            .map(|s| one_of(s, &["standard", "archive"]))
            .transpose()?;
        let action = object(&o["action"], &["type"], &["type", "targetStorageClass"])?;
        let action_type = one_of(&action["type"], &["expire", "transition"])?;
        let target = action
            .get("targetStorageClass")
            .map(|t| one_of(t, &["archive"]))
            .transpose()?;

        match (tag_status, &prefixes, &patterns) {
            ("tagged", None, None) => return Err(fail("tagPrefixList or tagPatternList must be specified when tagStatus is 'tagged'")),
            ("tagged", Some(_), Some(_)) => return Err(fail("tagPrefixList and tagPatternList cannot both be specified in one rule")),
            ("tagged", _, _) => {}
            (s, _, _) if prefixes.is_some() || patterns.is_some() => {
                return Err(fail(format!("tagPrefixList and tagPatternList can only be specified when tagStatus is 'tagged', not '{s}'")))
            }
            _ => {}
        }
        for p in patterns.iter().flatten() {
            if p.matches('*').count() > 4 {
                return Err(fail(format!(
                    "the tagPatternList entry '{p}' has more than 4 wildcards (*)"
                )));
            }
        }
        match (count_type, count_unit) {
            ("imageCountMoreThan", Some(_)) => {
                return Err(fail(
                    "countUnit can only be specified when countType is 'sinceImagePushed'",
                ))
            }
            ("imageCountMoreThan", None) | (_, Some(_)) => {}
            (_, None) => {
                return Err(fail(
                    "object has missing required properties ([\"countUnit\"])",
                ))
            }
        }
        match (action_type, target) {
            ("transition", None) => {
                return Err(fail(
                    "object has missing required properties ([\"targetStorageClass\"])",
                ))
            }
            ("expire", Some(_)) => {
                return Err(fail(
                    "targetStorageClass can only be specified when the action type is 'transition'",
                ))
            }
            _ => {}
        }
        if unsupported.is_none() {
            unsupported = if action_type == "transition" {
                Some("action type 'transition' (the archive storage class)".into())
            } else if count_type != "imageCountMoreThan" && count_type != "sinceImagePushed" {
                Some(format!("countType '{count_type}'"))
            } else if storage_class == Some("archive") {
                Some("storageClass 'archive'".into())
            } else {
                None
            };
        }
        rules.push(Rule {
            priority,
            tag_status: match tag_status {
                "tagged" => TagStatus::Tagged,
                "untagged" => TagStatus::Untagged,
                _ => TagStatus::Any,
            },
            prefixes: prefixes.unwrap_or_default(),
            patterns: patterns.unwrap_or_default(),
            count_type: if count_type == "imageCountMoreThan" {
                CountType::ImageCountMoreThan
            } else {
                CountType::SinceImagePushed
            },
            count,
        });
    }
    rules.sort_by_key(|r| r.priority);
    if let Some(w) = rules.windows(2).find(|w| w[0].priority == w[1].priority) {
        return Err(fail(format!("rulePriority {} is used by more than one rule; each rule must have a unique rulePriority", w[0].priority)));
    }
    let highest = rules.last().map(|r| r.priority).unwrap_or_default();
    if let Some(r) = rules
        .iter()
        .find(|r| r.tag_status == TagStatus::Any && r.priority != highest)
    {
        return Err(fail(format!("the rule with rulePriority {} has tagStatus 'any' and must have the highest rulePriority", r.priority)));
    }
    if rules
        .iter()
        .filter(|r| r.tag_status == TagStatus::Untagged)
        .count()
        > 1
    {
        return Err(fail("only one rule can select untagged images"));
    }
    if let Some(what) = unsupported {
        return Err(PolicyError::NotImplemented(what));
    }
    Ok(rules)
}

/// `*` matches any run of characters (also none); everything else matches itself; the
/// whole tag must match.
pub fn wildcard_match(pattern: &str, tag: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), tag.as_bytes());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and how much of the tag it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == t[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

impl Rule {
    /// Whether the rule's tag selection picks an image with these tags.
    pub fn selects(&self, tags: &[String]) -> bool {
        match self.tag_status {
            TagStatus::Any => true,
            TagStatus::Untagged => tags.is_empty(),
            TagStatus::Tagged => {
                !tags.is_empty()
                    && self
                        .prefixes
                        .iter()
                        .all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
                    && self
                        .patterns
                        .iter()
                        .all(|p| tags.iter().any(|t| wildcard_match(p, t)))
            }
        }
    }
}

/// An image a policy expires.
#[derive(Debug, Clone, PartialEq)]
pub struct Expiring {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: f64,
    pub rule_priority: i64,
}

fn digest_of(i: &Image) -> &str {
    i.record["imageDigest"].as_str().unwrap_or_default()
}

fn pushed_at(i: &Image) -> f64 {
    i.record["imagePushedAt"].as_f64().unwrap_or_default()
}

/// The images `rules` expire, in digest order. `children` maps an index's digest to the
/// manifests it references; `now` is the clock's time in seconds.
pub fn evaluate(
    rules: &[Rule],
    images: &[Image],
    children: &HashMap<String, Vec<String>>,
    now: f64,
) -> Vec<Expiring> {
    let mut newest_first: Vec<&Image> = images.iter().collect();
    newest_first.sort_by(|a, b| {
        pushed_at(b)
            .total_cmp(&pushed_at(a))
            .then_with(|| digest_of(a).cmp(digest_of(b)))
    });
    let mut rules: Vec<&Rule> = rules.iter().collect();
    rules.sort_by_key(|r| r.priority);
    // Images some earlier rule selected by tag: later rules count them but never expire them.
    let mut selected_before: HashSet<&str> = HashSet::new();
    let mut expiring: HashMap<&str, i64> = HashMap::new();
    for rule in rules {
        let matched: Vec<&Image> = newest_first
            .iter()
            .copied()
            .filter(|i| rule.selects(&i.tags))
            .collect();
        let expired: Vec<&Image> = match rule.count_type {
            CountType::ImageCountMoreThan => matched
                .iter()
                .copied()
                .skip(usize::try_from(rule.count).unwrap_or(usize::MAX))
                .collect(),
            CountType::SinceImagePushed => matched
                .iter()
                .copied()
                .filter(|i| now - pushed_at(i) > rule.count as f64 * 86_400.0)
                .collect(),
        };
        for i in expired {
            if !selected_before.contains(digest_of(i)) {
                expiring.entry(digest_of(i)).or_insert(rule.priority);
            }
        }
        selected_before.extend(matched.iter().map(|i| digest_of(i)));
    }
    // Kept indexes keep their children (and theirs).
    loop {
        let kept_children: HashSet<&str> = images
            .iter()
            .filter(|i| !expiring.contains_key(digest_of(i)))
            .flat_map(|i| {
                children
                    .get(digest_of(i))
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
            })
            .collect();
        let before = expiring.len();
        expiring.retain(|d, _| !kept_children.contains(d));
        if expiring.len() == before {
            break;
        }
    }
    let mut out: Vec<Expiring> = images
        .iter()
        .filter_map(|i| {
            expiring.get(digest_of(i)).map(|p| Expiring {
                digest: digest_of(i).to_string(),
                tags: i.tags.clone(),
                pushed_at: pushed_at(i),
                rule_priority: *p,
            })
        })
        .collect();
    out.sort_by(|a, b| a.digest.cmp(&b.digest));
    out
}

/// What `rules` would expire in `repo` now.
fn expiring_now(registry: &Registry, scope: &Scope, repo: &str, rules: &[Rule]) -> Vec<Expiring> {
    let images = registry.images(scope, repo);
    evaluate(
        rules,
        &images,
        &registry.index_children(&images),
        registry.clock.now(),
    )
}

/// Enforce `repo`'s lifecycle policy now: delete the images it expires (with their tags)
/// and record lastEvaluatedAt. Returns the expired digests. Their blobs go at the next
/// garbage collection (`berth_registry::gc`).
pub fn apply_lifecycle(
    registry: &Registry,
    scope: &Scope,
    repo: &str,
) -> Result<Vec<String>, RegistryError> {
    apply_lifecycle_settled(registry, scope, repo, 0.0)
}

/// `apply_lifecycle`, but an untagged image pushed less than `settle_secs` ago is left for
/// a later pass: it may be a child manifest of an index still being pushed. (ECR itself
/// expires within 24 hours, so a later pass is still on time.)
pub fn apply_lifecycle_settled(
    registry: &Registry,
    scope: &Scope,
    repo: &str,
    settle_secs: f64,
) -> Result<Vec<String>, RegistryError> {
    let k = lifecycle_key(scope, repo);
    let Some(rec) = registry.store.get(&k) else {
        return Ok(vec![]);
    };
    registry.repository(scope, repo)?;
    let rules = match parse_policy(
        rec.value["lifecyclePolicyText"]
            .as_str()
            .unwrap_or_default(),
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(repo, error = ?e, "stored lifecycle policy no longer parses; not applying it");
            return Ok(vec![]);
        }
    };
    let now = registry.clock.now();
    let mut expired = vec![];
    for e in expiring_now(registry, scope, repo, &rules) {
        if e.tags.is_empty() && now - e.pushed_at < settle_secs {
            continue;
        }
        match registry.delete_manifest(scope, repo, &e.digest) {
            Ok(()) => {
                tracing::info!(account = %scope.account, region = %scope.region, repo, digest = %e.digest, tags = ?e.tags, rule = e.rule_priority, "lifecycle policy expired an image");
                expired.push(e.digest);
            }
            Err(RegistryError { status: 404, .. }) => {}
            Err(err) => return Err(err),
        }
    }
    let mut v = (*rec.value).clone();
    v["lastEvaluatedAt"] = json!(now);
    // A policy changed meanwhile is evaluated again by the controller; keep its record as is.
    match registry.store.txn(
        &[Cond::Revision(k.clone(), rec.revision)],
        vec![Op::Put(k, v)],
    ) {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(expired)
}

/// How the lifecycle controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Full passes (every policy, then garbage collection) this often; `sinceImagePushed`
    /// rules and the collector's grace period need them.
    pub interval: Duration,
    /// How long a push may take, in seconds: the garbage collection grace period
    /// (`berth_registry::gc::collect`), and how long the controller leaves a new untagged
    /// image (perhaps a child of an index still being pushed) before expiring it.
    pub gc_grace_secs: f64,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            interval: Duration::from_secs(60),
            gc_grace_secs: gc::DEFAULT_GRACE_SECS,
        }
    }
}

/// (account, region, repo) of a lifecycle policy key.
fn lifecycle_parts(key: &str) -> Option<(String, String, String)> {
    let mut p = key.strip_prefix('/')?.splitn(4, '/');
    let (account, region) = (p.next()?, p.next()?);
    let repo = p
        .next()
        .filter(|s| *s == "ecr")
        .and(p.next())?
        .strip_prefix("lifecycle/")?;
    Some((account.into(), region.into(), repo.into()))
}

/// (account, region, repo) of an image key.
fn image_parts(key: &str) -> Option<(String, String, String)> {
    let mut p = key.strip_prefix('/')?.splitn(4, '/');
    let (account, region) = (p.next()?, p.next()?);
    let rest = p
        .next()
        .filter(|s| *s == "ecr")
        .and(p.next())?
        .strip_prefix("image/")?;
    Some((
        account.into(),
        region.into(),
        rest.rsplit_once('/')?.0.into(),
    ))
}

type Due = HashSet<(String, String, String)>;

/// Start the controller: it applies a repository's policy when the policy is put or
/// changed and when an image is pushed to it, and every `interval` applies every policy
/// and collects garbage. Collection also follows any pass that expired images.
pub fn spawn_controller(
    registry: Arc<Registry>,
    opts: ControllerOptions,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let mut events = registry.store.watch();
        // Policy text last seen per key, so the controller's own lastEvaluatedAt writes do
        // not wake it again.
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut tick = tokio::time::interval(opts.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut due = Due::new();
            let mut full = false;
            tokio::select! {
                _ = tick.tick() => full = true,
                ev = events.recv() => match ev {
                    Ok(e) => note(&registry, &e, &mut seen, &mut due),
                    Err(RecvError::Lagged(_)) => full = true,
                    Err(RecvError::Closed) => return,
                },
            }
            loop {
                match events.try_recv() {
                    Ok(e) => note(&registry, &e, &mut seen, &mut due),
                    Err(TryRecvError::Lagged(_)) => full = true,
                    Err(_) => break,
                }
            }
            if !full && due.is_empty() {
                continue;
            }
            let reg = registry.clone();
            let grace = opts.gc_grace_secs;
            if let Err(e) = tokio::task::spawn_blocking(move || pass(&reg, full, due, grace)).await
            {
                tracing::error!(error = %e, "lifecycle pass failed");
            }
        }
    })
}

fn note(registry: &Registry, e: &Event, seen: &mut HashMap<String, String>, due: &mut Due) {
    if let Some(parts) = lifecycle_parts(&e.key) {
        match (&e.kind, registry.store.get(&e.key)) {
            (EventKind::Put, Some(r)) => {
                let text = r.value["lifecyclePolicyText"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if seen.get(&e.key) != Some(&text) {
                    seen.insert(e.key.clone(), text);
                    due.insert(parts);
                }
            }
            _ => {
                seen.remove(&e.key);
            }
        }
    } else if let (EventKind::Put, Some((account, region, repo))) = (&e.kind, image_parts(&e.key)) {
        let scope = Scope {
            account: account.clone(),
            region: region.clone(),
        };
        if registry.store.get(&lifecycle_key(&scope, &repo)).is_some() {
            due.insert((account, region, repo));
        }
    }
}

/// One controller pass: apply the due policies (all of them on a full pass), then collect
/// garbage if anything expired or on a full pass.
fn pass(registry: &Registry, full: bool, mut due: Due, gc_grace_secs: f64) {
    if full {
        due.extend(
            registry
                .store
                .list("/")
                .iter()
                .filter_map(|r| lifecycle_parts(&r.key)),
        );
    }
    let mut expired = 0;
    for (account, region, repo) in due {
        let scope = Scope { account, region };
        match apply_lifecycle_settled(registry, &scope, &repo, gc_grace_secs) {
            Ok(d) => expired += d.len(),
            Err(e) if e.status == 404 => {}
            Err(e) => {
                tracing::warn!(repo, error = %e.message, "applying the lifecycle policy failed")
            }
        }
    }
    if full || expired > 0 {
        if let Err(e) = gc::collect(registry, gc_grace_secs) {
            tracing::warn!(error = %e.message, "registry garbage collection failed");
        }
    }
}

fn policy_not_found(scope: &Scope, repo: &str) -> ApiError {
    ApiError::client(
        "LifecyclePolicyNotFoundException",
        format!("Lifecycle policy does not exist for the repository with name '{repo}' in the registry with id '{}'", scope.account),
    )
}

impl Ecr {
    fn write_lifecycle(&self, conds: &[Cond], ops: Vec<Op>) -> ApiResult<bool> {
        match self.registry.store.txn(conds, ops) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(server_err(e)),
        }
    }

    pub(crate) fn put_lifecycle_policy(
        &self,
        ctx: &RequestContext,
        input: PutLifecyclePolicyRequest,
    ) -> ApiResult<PutLifecyclePolicyResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let text = input.lifecycle_policy_text.as_str();
        parse_policy(text).map_err(|e| e.api("PutLifecyclePolicy"))?;
        // Only while the repository stands as it was checked: a policy never outlives it.
        for _ in 0..8 {
            let r = self.repo(&scope, repo)?;
            let ops = vec![Op::Put(
                lifecycle_key(&scope, repo),
                json!({"lifecyclePolicyText": text}),
            )];
            if self.write_lifecycle(&[Cond::Revision(r.key.clone(), r.revision)], ops)? {
                return Ok(PutLifecyclePolicyResponse {
                    registry_id: Some(scope.account.clone()),
                    repository_name: Some(repo.to_string()),
                    lifecycle_policy_text: Some(text.to_string()),
                });
            }
        }
        Err(server_err(
            "The repository is being modified concurrently; try again.",
        ))
    }

    pub(crate) fn get_lifecycle_policy(
        &self,
        ctx: &RequestContext,
        input: GetLifecyclePolicyRequest,
    ) -> ApiResult<GetLifecyclePolicyResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let r = self
            .registry
            .store
            .get(&lifecycle_key(&scope, repo))
            .ok_or_else(|| policy_not_found(&scope, repo))?;
        Ok(GetLifecyclePolicyResponse {
            registry_id: Some(scope.account.clone()),
            repository_name: Some(repo.to_string()),
            lifecycle_policy_text: policy_text_of(&r.value),
            last_evaluated_at: r.value["lastEvaluatedAt"].as_f64().map(Timestamp),
        })
    }

    pub(crate) fn delete_lifecycle_policy(
        &self,
        ctx: &RequestContext,
        input: DeleteLifecyclePolicyRequest,
    ) -> ApiResult<DeleteLifecyclePolicyResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        for _ in 0..8 {
            let r = self
                .registry
                .store
                .get(&lifecycle_key(&scope, repo))
                .ok_or_else(|| policy_not_found(&scope, repo))?;
            if self.write_lifecycle(
                &[Cond::Revision(r.key.clone(), r.revision)],
                vec![Op::Delete(r.key.clone())],
            )? {
                return Ok(DeleteLifecyclePolicyResponse {
                    registry_id: Some(scope.account.clone()),
                    repository_name: Some(repo.to_string()),
                    lifecycle_policy_text: policy_text_of(&r.value),
                    last_evaluated_at: r.value["lastEvaluatedAt"].as_f64().map(Timestamp),
                });
            }
        }
        Err(server_err(
            "The lifecycle policy is being modified concurrently; try again.",
        ))
    }

    /// The preview runs at once: the result is stored COMPLETE before the call returns.
    pub(crate) fn start_lifecycle_policy_preview(
        &self,
        ctx: &RequestContext,
        input: StartLifecyclePolicyPreviewRequest,
    ) -> ApiResult<StartLifecyclePolicyPreviewResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        let r = self.repo(&scope, repo)?;
        let text = match &input.lifecycle_policy_text {
            Some(t) => t.clone(),
            None => {
                let p = self
                    .registry
                    .store
                    .get(&lifecycle_key(&scope, repo))
                    .ok_or_else(|| policy_not_found(&scope, repo))?;
                policy_text_of(&p.value).unwrap_or_default()
            }
        };
        let rules = parse_policy(&text).map_err(|e| e.api("StartLifecyclePolicyPreview"))?;
        let results: Vec<Value> = expiring_now(&self.registry, &scope, repo, &rules)
            .into_iter()
            .map(|e| {
                let mut v = json!({
                    "imageDigest": e.digest,
                    "imagePushedAt": e.pushed_at,
                    "action": {"type": "EXPIRE"},
                    "appliedRulePriority": e.rule_priority,
                    "storageClass": "STANDARD",
                });
                if !e.tags.is_empty() {
                    v["imageTags"] = json!(e.tags);
                }
                v
            })
            .collect();
        let preview = json!({
            "lifecyclePolicyText": text,
            "status": "COMPLETE",
            "previewResults": results,
            "summary": {"expiringImageTotalCount": results.len()},
        });
        if !self.write_lifecycle(
            &[Cond::Revision(r.key.clone(), r.revision)],
            vec![Op::Put(preview_key(&scope, repo), preview)],
        )? {
            return Err(server_err(
                "The repository is being modified concurrently; try again.",
            ));
        }
        Ok(StartLifecyclePolicyPreviewResponse {
            registry_id: Some(scope.account.clone()),
            repository_name: Some(repo.to_string()),
            lifecycle_policy_text: Some(text),
            status: Some(LifecyclePolicyPreviewStatus::Complete),
        })
    }

    pub(crate) fn get_lifecycle_policy_preview(
        &self,
        ctx: &RequestContext,
        input: GetLifecyclePolicyPreviewRequest,
    ) -> ApiResult<GetLifecyclePolicyPreviewResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let ids = input.image_ids.as_ref();
        if ids.is_some() && (input.max_results.is_some() || input.next_token.is_some()) {
            return Err(invalid(
                "maxResults and nextToken cannot be used with imageIds.",
            ));
        }
        let p = self.registry.store.get(&preview_key(&scope, repo)).ok_or_else(|| {
            ApiError::client(
                "LifecyclePolicyPreviewNotFoundException",
                format!("Lifecycle policy preview does not exist for the repository with name '{repo}' in the registry with id '{}'", scope.account),
            )
        })?;
        let status = input.filter.as_ref().and_then(|f| f.tag_status);
        let results: Vec<LifecyclePolicyPreviewResult> = p.value["previewResults"]
            .as_array()
            .into_iter()
            .flatten()
            .map(preview_result_of)
            .filter(|r| {
                let tags = r.image_tags.as_deref().unwrap_or_default();
                let by_id = ids.is_none_or(|ids| {
                    ids.iter().any(|id| {
                        let digest = id.image_digest.as_ref();
                        let tag = id.image_tag.as_ref();
                        digest.is_none_or(|d| r.image_digest.as_ref() == Some(d))
                            && tag.is_none_or(|t| tags.contains(t))
                            && (digest.is_some() || tag.is_some())
                    })
                });
                crate::tag_status_keeps(status, !tags.is_empty()) && by_id
            })
            .collect();
        let page = crate::page(
            results,
            |r| r.image_digest.clone().unwrap_or_default(),
            input.max_results,
            input.next_token.as_deref(),
            100,
            100,
        )?;
        let summary = &p.value["summary"];
        Ok(GetLifecyclePolicyPreviewResponse {
            registry_id: Some(scope.account.clone()),
            repository_name: Some(repo.to_string()),
            lifecycle_policy_text: policy_text_of(&p.value),
            status: p.value["status"]
                .as_str()
                .and_then(LifecyclePolicyPreviewStatus::from_wire),
            preview_results: Some(page.items),
            next_token: page.next_token,
            summary: summary.is_object().then(|| LifecyclePolicyPreviewSummary {
                expiring_image_total_count: summary["expiringImageTotalCount"]
                    .as_i64()
                    .map(|n| n as i32),
                transitioning_image_total_counts: None,
            }),
        })
    }
}

/// A policy or preview record's `lifecyclePolicyText`.
fn policy_text_of(record: &Value) -> Option<String> {
    record["lifecyclePolicyText"].as_str().map(str::to_string)
}

/// A stored preview result (written by StartLifecyclePolicyPreview) as the API shows it.
fn preview_result_of(r: &Value) -> LifecyclePolicyPreviewResult {
    LifecyclePolicyPreviewResult {
        image_digest: r["imageDigest"].as_str().map(str::to_string),
        image_pushed_at: r["imagePushedAt"].as_f64().map(Timestamp),
        image_tags: r["imageTags"].as_array().map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        }),
        action: r["action"]["type"]
            .as_str()
            .and_then(ImageActionType::from_wire)
            .map(|t| LifecyclePolicyRuleAction {
                r#type: Some(t),
                target_storage_class: None,
            }),
        applied_rule_priority: r["appliedRulePriority"].as_i64().map(|n| n as i32),
        storage_class: r["storageClass"]
            .as_str()
            .and_then(LifecyclePolicyStorageClass::from_wire),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_registry::{Digest, FsBlobs};
    use berth_store::{SqliteStore, Store};
    use berth_wire::{Clock, Service};

    const DAY_MS: i64 = 86_400_000;

    fn rule(
        priority: i64,
        status: &str,
        list: Option<(&str, &[&str])>,
        count: (&str, i64),
    ) -> Value {
        let mut sel = json!({"tagStatus": status, "countType": count.0, "countNumber": count.1});
        if let Some((k, v)) = list {
            sel[k] = json!(v);
        }
        if count.0 == "sinceImagePushed" {
            sel["countUnit"] = json!("days");
        }
        json!({"rulePriority": priority, "description": "test rule", "selection": sel, "action": {"type": "expire"}})
    }

    fn policy(rules: &[Value]) -> String {
        json!({"rules": rules}).to_string()
    }

    fn message(e: PolicyError) -> String {
        match e {
            PolicyError::Invalid(m) => m,
            PolicyError::NotImplemented(w) => format!("not implemented: {w}"),
        }
    }

    fn refused(text: &str) -> String {
        message(parse_policy(text).expect_err(text))
    }

    #[test]
    fn valid_policies_parse_in_priority_order() {
        let rules = parse_policy(&policy(&[
            rule(10, "any", None, ("imageCountMoreThan", 100)),
            rule(1, "untagged", None, ("sinceImagePushed", 14)),
            rule(
                5,
                "tagged",
                Some(("tagPatternList", &["*test*1*2*3", "prod-*"])),
                ("imageCountMoreThan", 3),
            ),
            rule(
                3,
                "tagged",
                Some(("tagPrefixList", &["v"])),
                ("imageCountMoreThan", 2),
            ),
        ]))
        .unwrap();
        assert_eq!(
            rules.iter().map(|r| r.priority).collect::<Vec<_>>(),
            vec![1, 3, 5, 10]
        );
        assert_eq!(rules[0].count_type, CountType::SinceImagePushed);
        assert_eq!(rules[2].patterns, vec!["*test*1*2*3", "prod-*"]);
    }

    #[test]
    fn invalid_policies_are_refused_as_ecr_refuses_them() {
        let prefix = "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: ";
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "not valid JSON"),
            ("{}".into(), "missing required properties ([\"rules\"])"),
            (json!({"rules": []}).to_string(), "array is too short"),
            (json!({"rules": [], "x": 1}).to_string(), "not allowed by the schema: ([\"x\"])"),
            (policy(&[json!({"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}})]), "missing required properties ([\"action\"])"),
            (policy(&[rule(0, "any", None, ("imageCountMoreThan", 1))]), "lower than the required minimum (minimum: 1, found: 0)"),
            (policy(&[json!({"rulePriority": "1", "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}})]), "instance type (string) does not match any allowed primitive type (allowed: [\"integer\"])"),
            (policy(&[rule(1, "some", None, ("imageCountMoreThan", 1))]), "instance value (\"some\") not found in enum"),
            (policy(&[rule(1, "any", None, ("imageCountMoreThan", 0))]), "found: 0"),
            (policy(&[rule(1, "any", None, ("olderThan", 1))]), "instance value (\"olderThan\") not found in enum"),
            (policy(&[rule(1, "tagged", None, ("imageCountMoreThan", 1))]), "tagPrefixList or tagPatternList must be specified"),
            (policy(&[rule(1, "untagged", Some(("tagPrefixList", &["v"])), ("imageCountMoreThan", 1))]), "only be specified when tagStatus is 'tagged'"),
            (policy(&[rule(1, "tagged", Some(("tagPrefixList", &[])), ("imageCountMoreThan", 1))]), "array is too short"),
            (policy(&[rule(1, "tagged", Some(("tagPatternList", &["a*b*c*d*e*"])), ("imageCountMoreThan", 1))]), "more than 4 wildcards"),
            (policy(&[rule(1, "any", None, ("imageCountMoreThan", 1)), rule(2, "tagged", Some(("tagPrefixList", &["v"])), ("imageCountMoreThan", 1))]), "must have the highest rulePriority"),
            (policy(&[rule(2, "untagged", None, ("imageCountMoreThan", 1)), rule(2, "tagged", Some(("tagPrefixList", &["v"])), ("imageCountMoreThan", 1))]), "rulePriority 2 is used by more than one rule"),
            (policy(&[rule(1, "untagged", None, ("imageCountMoreThan", 1)), rule(2, "untagged", None, ("sinceImagePushed", 1))]), "only one rule can select untagged images"),
        ];
        for (text, want) in cases {
            let got = refused(&text);
            assert!(
                got.starts_with(prefix) && got.ends_with('\'') && got.contains(want),
                "{text}: {got}"
            );
        }
        // countUnit: required for sinceImagePushed, refused for imageCountMoreThan, only "days".
        let mut r = rule(1, "any", None, ("sinceImagePushed", 1));
        r["selection"].as_object_mut().unwrap().remove("countUnit");
        assert!(refused(&policy(&[r])).contains("missing required properties ([\"countUnit\"])"));
        let mut r = rule(1, "any", None, ("imageCountMoreThan", 1));
        r["selection"]["countUnit"] = json!("days");
        assert!(refused(&policy(&[r])).contains("countUnit can only be specified"));
        let mut r = rule(1, "any", None, ("sinceImagePushed", 1));
        r["selection"]["countUnit"] = json!("hours");
        assert!(refused(&policy(&[r])).contains("not found in enum (possible values: [\"days\"])"));
        let mut r = rule(
            1,
            "tagged",
            Some(("tagPrefixList", &["v"])),
            ("imageCountMoreThan", 1),
        );
        r["selection"]["tagPatternList"] = json!(["v*"]);
        assert!(refused(&policy(&[r])).contains("cannot both be specified"));
        let mut r = rule(1, "any", None, ("imageCountMoreThan", 1));
        r["action"] = json!({"type": "delete"});
        assert!(refused(&policy(&[r])).contains("not found in enum"));
    }

    #[test]
    fn archive_rules_are_valid_but_not_implemented() {
        let mut r = rule(1, "any", None, ("sinceImagePushed", 30));
        r["action"] = json!({"type": "transition", "targetStorageClass": "archive"});
        assert_eq!(
            parse_policy(&policy(&[r])).unwrap_err(),
            PolicyError::NotImplemented(
                "action type 'transition' (the archive storage class)".into()
            )
        );
        let mut r = rule(1, "any", None, ("sinceImagePulled", 30));
        r["selection"]["countUnit"] = json!("days");
        assert!(matches!(
            parse_policy(&policy(&[r])),
            Err(PolicyError::NotImplemented(_))
        ));
        // Validation comes first.
        let mut r = rule(1, "any", None, ("sinceImagePushed", 30));
        r["action"] = json!({"type": "transition"});
        assert!(matches!(
            parse_policy(&policy(&[r])),
            Err(PolicyError::Invalid(_))
        ));
    }

    #[test]
    fn wildcards_match_whole_tags() {
        for (p, t) in [
            ("prod*", "prod"),
            ("prod*", "prod-1"),
            ("*web*", "my-web-app"),
            ("latest", "latest"),
            ("*", "x"),
            ("a*b*c", "aXbYc"),
            ("*test*1*2*3", "xtesty1z2w3"),
        ] {
            assert!(wildcard_match(p, t), "{p} {t}");
        }
        for (p, t) in [
            ("prod*", "xprod"),
            ("latest", "latest1"),
            ("a*b", "ab-"),
            ("a*b*c", "acb"),
            ("v", ""),
        ] {
            assert!(!wildcard_match(p, t), "{p} {t}");
        }
    }

    fn image(digest: &str, tags: &[&str], pushed_days_ago: f64, now: f64) -> Image {
        Image {
            record: json!({"imageDigest": digest, "imagePushedAt": now - pushed_days_ago * 86_400.0, "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json"}),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn expired(rules: &str, images: &[Image], now: f64) -> Vec<(String, i64)> {
        let rules = parse_policy(rules).unwrap();
        let mut out: Vec<(String, i64)> = evaluate(&rules, images, &HashMap::new(), now)
            .into_iter()
            .map(|e| (e.digest, e.rule_priority))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn ecr_documented_examples() {
        let now = 1_000_000_000.0;
        // "Filtering on multiple rules", example A: rule 1 expires A; rule 2 would expire A
        // too but A is already expired, and B (selected by rule 1) stays.
        let a = image("A", &["beta-1", "prod-1"], 10.0, now);
        let b = image("B", &["beta-2", "prod-2"], 9.0, now);
        let c = image("C", &["beta-3"], 8.0, now);
        let two = policy(&[
            rule(
                1,
                "tagged",
                Some(("tagPrefixList", &["prod"])),
                ("imageCountMoreThan", 1),
            ),
            rule(
                2,
                "tagged",
                Some(("tagPrefixList", &["beta"])),
                ("imageCountMoreThan", 1),
            ),
        ]);
        assert_eq!(
            expired(&two, &[a.clone(), b.clone(), c.clone()], now),
            vec![("A".into(), 1)]
        );
        // Example B: D (beta only, newest) is kept; A and B both go by rule 1.
        let b2 = image("B", &["beta-2", "prod-2"], 9.0, now);
        let c2 = image("C", &["prod-3"], 8.0, now);
        let d2 = image("D", &["beta-3"], 7.0, now);
        assert_eq!(
            expired(&two, &[a.clone(), b2, c2, d2], now),
            vec![("A".into(), 1), ("B".into(), 1)]
        );
        // Multiple prefixes in one rule: every prefix must match a tag.
        let both = policy(&[rule(
            1,
            "tagged",
            Some(("tagPrefixList", &["alpha", "beta"])),
            ("imageCountMoreThan", 1),
        )]);
        let x = image("X", &["alpha-1", "beta-1"], 3.0, now);
        let y = image("Y", &["alpha-2", "beta-2"], 2.0, now);
        let z = image("Z", &["alpha-3"], 1.0, now);
        assert_eq!(expired(&both, &[x, y, z], now), vec![("X".into(), 1)]);
    }

    #[test]
    fn counts_ages_and_priorities() {
        let now = 1_000_000_000.0;
        let imgs = vec![
            image("u-old", &[], 30.0, now),
            image("u-new", &[], 1.0, now),
            image("v1", &["v1"], 5.0, now),
            image("v2", &["v2"], 4.0, now),
            image("v3", &["v3"], 3.0, now),
            image("prod", &["prod-1"], 40.0, now),
            image("other", &["other"], 20.0, now),
        ];
        // Untagged older than 14 days go; keep 2 'v' images; keep prod; anything else over 10 days goes.
        let p = policy(&[
            rule(1, "untagged", None, ("sinceImagePushed", 14)),
            rule(
                2,
                "tagged",
                Some(("tagPatternList", &["v*"])),
                ("imageCountMoreThan", 2),
            ),
            rule(
                3,
                "tagged",
                Some(("tagPrefixList", &["prod"])),
                ("imageCountMoreThan", 1),
            ),
            rule(4, "any", None, ("sinceImagePushed", 10)),
        ]);
        assert_eq!(
            expired(&p, &imgs, now),
            vec![("other".into(), 4), ("u-old".into(), 1), ("v1".into(), 2)]
        );
        // tagStatus any with a count keeps the newest N of everything.
        let any = policy(&[rule(1, "any", None, ("imageCountMoreThan", 3))]);
        assert_eq!(expired(&any, &imgs, now).len(), 4);
        // Nothing older than 100 days.
        assert!(expired(
            &policy(&[rule(1, "any", None, ("sinceImagePushed", 100))]),
            &imgs,
            now
        )
        .is_empty());
    }

    #[test]
    fn kept_indexes_keep_their_children() {
        let now = 1_000_000_000.0;
        let mut index = image("idx", &["multi"], 1.0, now);
        index.record["imageManifestMediaType"] = json!("application/vnd.oci.image.index.v1+json");
        let imgs = vec![
            index,
            image("amd64", &[], 1.0, now),
            image("arm64", &[], 1.0, now),
            image("stray", &[], 1.0, now),
        ];
        let children = HashMap::from([(
            "idx".to_string(),
            vec!["amd64".to_string(), "arm64".to_string()],
        )]);
        let rules = parse_policy(&policy(&[rule(
            1,
            "untagged",
            None,
            ("imageCountMoreThan", 1),
        )]))
        .unwrap();
        let out: Vec<String> = evaluate(&rules, &imgs, &children, now)
            .into_iter()
            .map(|e| e.digest)
            .collect();
        assert_eq!(
            out,
            vec!["stray"],
            "amd64/arm64 would be counted out, but the kept index needs them"
        );
    }

    // A real registry, ECR service and controller.

    struct Env {
        reg: Arc<Registry>,
        ecr: Ecr,
        scope: Scope,
        ctx: RequestContext,
        _dir: tempfile::TempDir,
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("state.db")).unwrap());
        let reg = Arc::new(Registry {
            store,
            blobs: Arc::new(FsBlobs::open(&dir.path().join("registry")).unwrap()),
            clock: Clock::default(),
            default_account: "000000000000".into(),
            registry_host: "localhost:4566".into(),
            token_secret: "s".into(),
            require_auth: false,
            hashers: Default::default(),
            blob_writes: Default::default(),
        });
        let ctx = RequestContext {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            request_id: "r".into(),
        };
        let scope = Scope {
            account: ctx.account.clone(),
            region: ctx.region.clone(),
        };
        Env {
            ecr: Ecr::new(reg.clone()),
            reg,
            scope,
            ctx,
            _dir: dir,
        }
    }

    impl Env {
        fn call(&self, op: &str, input: Value) -> ApiResult<Value> {
            self.ecr.call(&self.ctx, op, input)
        }
        fn upload(&self, repo: &str, bytes: &[u8]) -> Digest {
            let d = Digest::sha256_of(bytes);
            let id = self.reg.blobs.begin_upload("{}").unwrap();
            std::fs::write(self.reg.blobs.upload_path(&id).unwrap().0, bytes).unwrap();
            self.reg.blobs.commit_upload(&id, &d, None).unwrap();
            self.reg
                .add_blob(&self.scope, repo, &d, bytes.len() as u64)
                .unwrap();
            d
        }
        /// Push a one-layer image tagged `tag`; returns (manifest, layer) digests.
        fn push(&self, repo: &str, tag: &str) -> (String, Digest) {
            let c = self.upload(repo, format!("config {tag}").as_bytes());
            let l = self.upload(repo, format!("layer {tag}").as_bytes());
            let m = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.to_string(), "size": self.reg.blobs.stat(&c).unwrap()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.to_string(), "size": self.reg.blobs.stat(&l).unwrap()}],
            });
            let (d, _) = self
                .reg
                .put_manifest(
                    &self.scope,
                    repo,
                    tag,
                    None,
                    &serde_json::to_vec(&m).unwrap(),
                )
                .unwrap();
            // Distinct push times.
            self.reg.clock.advance_ms(1000);
            (d.to_string(), l)
        }
        fn tags(&self, repo: &str) -> Vec<String> {
            self.reg.tags(&self.scope, repo).unwrap()
        }
    }

    fn keep_two_v() -> String {
        policy(&[rule(
            1,
            "tagged",
            Some(("tagPrefixList", &["v"])),
            ("imageCountMoreThan", 2),
        )])
    }

    #[test]
    fn the_api_stores_previews_and_applies_policies() {
        let e = env();
        let repo = json!({"repositoryName": "app"});
        e.call("CreateRepository", repo.clone()).unwrap();
        for t in ["v1", "v2", "v3", "v4"] {
            e.push("app", t);
        }
        let code = |r: ApiResult<Value>| r.unwrap_err().code;
        assert_eq!(
            code(e.call("GetLifecyclePolicy", repo.clone())),
            "LifecyclePolicyNotFoundException"
        );
        assert_eq!(
            code(e.call("DeleteLifecyclePolicy", repo.clone())),
            "LifecyclePolicyNotFoundException"
        );
        assert_eq!(
            code(e.call("StartLifecyclePolicyPreview", repo.clone())),
            "LifecyclePolicyNotFoundException"
        );
        assert_eq!(
            code(e.call("GetLifecyclePolicyPreview", repo.clone())),
            "LifecyclePolicyPreviewNotFoundException"
        );
        assert_eq!(
            code(e.call("GetLifecyclePolicy", json!({"repositoryName": "nope"}))),
            "RepositoryNotFoundException"
        );
        let bad = json!({"repositoryName": "app", "lifecyclePolicyText": policy(&[rule(1, "tagged", None, ("imageCountMoreThan", 2))])});
        assert_eq!(
            code(e.call("PutLifecyclePolicy", bad)),
            "InvalidParameterException"
        );

        // Preview a text without putting it.
        let text = keep_two_v();
        let started = e
            .call(
                "StartLifecyclePolicyPreview",
                json!({"repositoryName": "app", "lifecyclePolicyText": text}),
            )
            .unwrap();
        assert_eq!(started["status"], "COMPLETE");
        let p = e.call("GetLifecyclePolicyPreview", repo.clone()).unwrap();
        assert_eq!(p["summary"]["expiringImageTotalCount"], 2);
        let mut tags: Vec<&str> = p["previewResults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["imageTags"][0].as_str().unwrap())
            .collect();
        tags.sort();
        assert_eq!(tags, vec!["v1", "v2"]);
        assert_eq!(p["previewResults"][0]["action"]["type"], "EXPIRE");
        assert_eq!(p["previewResults"][0]["appliedRulePriority"], 1);
        let one = e
            .call(
                "GetLifecyclePolicyPreview",
                json!({"repositoryName": "app", "imageIds": [{"imageTag": "v2"}]}),
            )
            .unwrap();
        assert_eq!(one["previewResults"].as_array().unwrap().len(), 1);
        let untagged = e
            .call(
                "GetLifecyclePolicyPreview",
                json!({"repositoryName": "app", "filter": {"tagStatus": "UNTAGGED"}}),
            )
            .unwrap();
        assert!(untagged["previewResults"].as_array().unwrap().is_empty());
        let paged = e
            .call(
                "GetLifecyclePolicyPreview",
                json!({"repositoryName": "app", "maxResults": 1}),
            )
            .unwrap();
        assert_eq!(paged["previewResults"].as_array().unwrap().len(), 1);
        assert!(paged["nextToken"].is_string());
        assert_eq!(e.tags("app").len(), 4, "a preview deletes nothing");

        e.call(
            "PutLifecyclePolicy",
            json!({"repositoryName": "app", "lifecyclePolicyText": text}),
        )
        .unwrap();
        let got = e.call("GetLifecyclePolicy", repo.clone()).unwrap();
        assert_eq!(got["lifecyclePolicyText"], text);
        let gone = apply_lifecycle(&e.reg, &e.scope, "app").unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(e.tags("app"), vec!["v3", "v4"]);
        assert!(
            e.call("GetLifecyclePolicy", repo.clone()).unwrap()["lastEvaluatedAt"]
                .as_f64()
                .is_some()
        );
        assert!(
            apply_lifecycle(&e.reg, &e.scope, "app").unwrap().is_empty(),
            "nothing more to expire"
        );

        let deleted = e.call("DeleteLifecyclePolicy", repo.clone()).unwrap();
        assert_eq!(deleted["lifecyclePolicyText"], text);
        assert_eq!(
            code(e.call("GetLifecyclePolicy", repo.clone())),
            "LifecyclePolicyNotFoundException"
        );
        // Deleting the repository removes its policy and preview too.
        e.call(
            "PutLifecyclePolicy",
            json!({"repositoryName": "app", "lifecyclePolicyText": text}),
        )
        .unwrap();
        e.call(
            "DeleteRepository",
            json!({"repositoryName": "app", "force": true}),
        )
        .unwrap();
        e.call("CreateRepository", repo.clone()).unwrap();
        assert_eq!(
            code(e.call("GetLifecyclePolicy", repo.clone())),
            "LifecyclePolicyNotFoundException"
        );
        assert_eq!(
            code(e.call("GetLifecyclePolicyPreview", repo)),
            "LifecyclePolicyPreviewNotFoundException"
        );
    }

    #[test]
    fn age_rules_follow_the_clock() {
        let e = env();
        e.call("CreateRepository", json!({"repositoryName": "app"}))
            .unwrap();
        e.push("app", "old");
        e.reg.clock.advance_ms(10 * DAY_MS);
        e.push("app", "new");
        let text = policy(&[rule(1, "any", None, ("sinceImagePushed", 7))]);
        e.call(
            "PutLifecyclePolicy",
            json!({"repositoryName": "app", "lifecyclePolicyText": text}),
        )
        .unwrap();
        assert_eq!(apply_lifecycle(&e.reg, &e.scope, "app").unwrap().len(), 1);
        assert_eq!(e.tags("app"), vec!["new"]);
        e.reg.clock.advance_ms(6 * DAY_MS);
        assert!(
            apply_lifecycle(&e.reg, &e.scope, "app").unwrap().is_empty(),
            "6 days old"
        );
        e.reg.clock.advance_ms(2 * DAY_MS);
        assert_eq!(
            apply_lifecycle(&e.reg, &e.scope, "app").unwrap().len(),
            1,
            "8 days old"
        );
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_controller_expires_on_put_and_on_push_and_collects_blobs() {
        let e = env();
        e.call("CreateRepository", json!({"repositoryName": "app"}))
            .unwrap();
        let mut layers = vec![];
        for t in ["v1", "v2", "v3", "v4"] {
            layers.push(e.push("app", t).1);
        }
        spawn_controller(
            e.reg.clone(),
            ControllerOptions {
                interval: Duration::from_secs(3600),
                gc_grace_secs: 0.0,
            },
        );
        e.call(
            "PutLifecyclePolicy",
            json!({"repositoryName": "app", "lifecyclePolicyText": keep_two_v()}),
        )
        .unwrap();
        eventually("two images left", || e.tags("app") == vec!["v3", "v4"]).await;
        eventually("old layers collected", || {
            e.reg.blobs.stat(&layers[0]).is_none() && e.reg.blobs.stat(&layers[1]).is_none()
        })
        .await;
        assert!(e.reg.blobs.stat(&layers[2]).is_some() && e.reg.blobs.stat(&layers[3]).is_some());
        assert!(e.reg.get_manifest(&e.scope, "app", "v4").is_ok());
        // A push beyond the count expires the oldest at once.
        e.push("app", "v5");
        eventually("v3 expired after the push", || {
            e.tags("app") == vec!["v4", "v5"]
        })
        .await;
    }

    #[test]
    fn new_untagged_images_settle_before_the_controller_expires_them() {
        let e = env();
        e.call("CreateRepository", json!({"repositoryName": "app"}))
            .unwrap();
        let (a, _) = e.push("app", "a");
        let (b, _) = e.push("app", "b");
        // Both untagged now, as the children of an index being pushed would be.
        e.reg.delete_manifest(&e.scope, "app", "a").unwrap();
        e.reg.delete_manifest(&e.scope, "app", "b").unwrap();
        let text = policy(&[rule(1, "untagged", None, ("imageCountMoreThan", 1))]);
        e.call(
            "PutLifecyclePolicy",
            json!({"repositoryName": "app", "lifecyclePolicyText": text}),
        )
        .unwrap();
        assert!(
            apply_lifecycle_settled(&e.reg, &e.scope, "app", 3600.0)
                .unwrap()
                .is_empty(),
            "pushed seconds ago"
        );
        e.reg.clock.advance_ms(3_600_000);
        assert_eq!(
            apply_lifecycle_settled(&e.reg, &e.scope, "app", 3600.0).unwrap(),
            vec![a.clone()]
        );
        assert_eq!(e.reg.images(&e.scope, "app").len(), 1);
        assert_ne!(a, b);
    }
}
