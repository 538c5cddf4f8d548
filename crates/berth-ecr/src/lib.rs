//! berth-ecr: the Amazon ECR API (awsJson 1.1). Repositories and images are the same
//! records the `/v2/` registry serves, through `berth_registry::Registry`.

mod layers;
pub mod lifecycle;
mod policy;

use base64::Engine;
use berth_registry::{Digest, Registry, RegistryError, Scope};
use berth_store::{Cond, Op};
use berth_wire::model::LazyModel;
use berth_wire::page::paginate;
use berth_wire::{ApiError, ApiResult, Model, RequestContext, Service, ValidationCodes};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;

static MODEL: LazyModel = LazyModel::new(include_bytes!("../../berth-wire/models/ecr.json.gz"));

pub fn model() -> &'static Model {
    MODEL.get()
}

pub struct Ecr {
    registry: Arc<Registry>,
}

impl Ecr {
    pub fn new(registry: Arc<Registry>) -> Self {
        Ecr { registry }
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::client("InvalidParameterException", msg)
}

pub(crate) fn scope(ctx: &RequestContext, input: &Value) -> ApiResult<Scope> {
    if let Some(id) = input.get("registryId").and_then(Value::as_str) {
        if id != ctx.account {
            return Err(invalid(format!("Invalid parameter at 'registryId': the registry {id} does not belong to your account.")));
        }
    }
    Ok(Scope {
        account: ctx.account.clone(),
        region: ctx.region.clone(),
    })
}

fn repo_not_found(scope: &Scope, name: &str) -> ApiError {
    ApiError::client(
        "RepositoryNotFoundException",
        format!(
            "The repository with name '{name}' does not exist in the registry with id '{}'",
            scope.account
        ),
    )
}

/// A failure of Berth's own (storage, store), never the caller's: ECR's ServerException.
pub(crate) fn server_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(500, "ServerException", e.to_string())
}

pub(crate) fn registry_err(e: RegistryError) -> ApiError {
    if e.status >= 500 {
        server_err(e.message)
    } else {
        invalid(e.message)
    }
}

pub(crate) fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

impl Service for Ecr {
    fn model(&self) -> &'static Model {
        model()
    }

    fn metadata(&self) -> &'static berth_wire::model::Metadata {
        MODEL.metadata()
    }

    fn codes(&self) -> ValidationCodes {
        ValidationCodes::json("InvalidParameterException", "SerializationException")
    }

    fn call(&self, ctx: &RequestContext, operation: &str, input: Value) -> ApiResult<Value> {
        let i = &input;
        match operation {
            "CreateRepository" => self.create_repository(ctx, i),
            "DescribeRepositories" => self.describe_repositories(ctx, i),
            "DeleteRepository" => self.delete_repository(ctx, i),
            "GetAuthorizationToken" => self.get_authorization_token(ctx),
            "DescribeImages" => self.describe_images(ctx, i),
            "ListImages" => self.list_images(ctx, i),
            "BatchGetImage" => self.batch_get_image(ctx, i),
            "BatchDeleteImage" => self.batch_delete_image(ctx, i),
            "PutImageTagMutability" => self.put_image_tag_mutability(ctx, i),
            "InitiateLayerUpload" => self.initiate_layer_upload(ctx, i),
            "UploadLayerPart" => self.upload_layer_part(ctx, i),
            "CompleteLayerUpload" => self.complete_layer_upload(ctx, i),
            "BatchCheckLayerAvailability" => self.batch_check_layer_availability(ctx, i),
            "GetDownloadUrlForLayer" => self.get_download_url_for_layer(ctx, i),
            "PutImage" => self.put_image(ctx, i),
            "SetRepositoryPolicy" => self.set_repository_policy(ctx, i),
            "GetRepositoryPolicy" => self.get_repository_policy(ctx, i),
            "DeleteRepositoryPolicy" => self.delete_repository_policy(ctx, i),
            "DescribeRegistry" => self.describe_registry(ctx, i),
            "TagResource" => self.tag_resource(ctx, i),
            "UntagResource" => self.untag_resource(ctx, i),
            "ListTagsForResource" => self.list_tags_for_resource(ctx, i),
            "PutLifecyclePolicy" => self.put_lifecycle_policy(ctx, i),
            "GetLifecyclePolicy" => self.get_lifecycle_policy(ctx, i),
            "DeleteLifecyclePolicy" => self.delete_lifecycle_policy(ctx, i),
            "StartLifecyclePolicyPreview" => self.start_lifecycle_policy_preview(ctx, i),
            "GetLifecyclePolicyPreview" => self.get_lifecycle_policy_preview(ctx, i),
            _ => Err(ApiError::not_implemented("ecr", operation)),
        }
    }
}

impl Ecr {
    pub(crate) fn repo(&self, scope: &Scope, name: &str) -> ApiResult<berth_store::Record> {
        self.registry
            .store
            .get(&Registry::repo_key(scope, name))
            .ok_or_else(|| repo_not_found(scope, name))
    }

    fn create_repository(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let name = str_of(input, "repositoryName").unwrap_or_default();
        if !berth_registry::valid_repository_name(name) {
            return Err(invalid(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''",
            ));
        }
        let tags = input
            .get("tags")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        check_tags(&tags)?;
        let host = &self.registry.registry_host;
        let repo = json!({
            "repositoryArn": format!("arn:aws:ecr:{}:{}:repository/{name}", scope.region, scope.account),
            "registryId": scope.account,
            "repositoryName": name,
            "repositoryUri": format!("{}/{name}", repository_host(host, &scope)),
            "createdAt": self.registry.clock.now(),
            "imageTagMutability": str_of(input, "imageTagMutability").unwrap_or("MUTABLE"),
            "imageScanningConfiguration": input.get("imageScanningConfiguration").cloned().unwrap_or(json!({"scanOnPush": false})),
            "encryptionConfiguration": input.get("encryptionConfiguration").cloned().unwrap_or(json!({"encryptionType": "AES256"})),
            "tags": tags,
        });
        let k = Registry::repo_key(&scope, name);
        match self
            .registry
            .store
            .txn(&[Cond::Absent(k.clone())], vec![Op::Put(k, repo.clone())])
        {
            Ok(_) => Ok(json!({"repository": render_repo(&repo)})),
            Err(berth_store::StoreError::Conflict(_)) => Err(ApiError::client(
                "RepositoryAlreadyExistsException",
                format!(
                    "The repository with name '{name}' already exists in the registry with id '{}'",
                    scope.account
                ),
            )),
            Err(e) => Err(server_err(e)),
        }
    }

    fn describe_repositories(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let names = input.get("repositoryNames").and_then(Value::as_array);
        if let Some(names) = names {
            if input.get("maxResults").is_some() || input.get("nextToken").is_some() {
                return Err(invalid(
                    "maxResults and nextToken cannot be used with repositoryNames.",
                ));
            }
            let mut out = vec![];
            for n in names.iter().filter_map(Value::as_str) {
                out.push(render_repo(&self.repo(&scope, n)?.value));
            }
            return Ok(json!({"repositories": out}));
        }
        let repos: Vec<Value> = self
            .registry
            .repositories(&scope)
            .into_iter()
            .map(|r| render_repo(&r.value))
            .collect();
        let page = paginate(
            repos,
            |r| str_of(r, "repositoryName").unwrap_or_default().to_string(),
            input,
            1000,
            1000,
            "InvalidParameterException",
        )?;
        Ok(json!({"repositories": page.items, "nextToken": page.next_token}))
    }

    fn delete_repository(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let name = str_of(input, "repositoryName").unwrap_or_default();
        let repo = self.repo(&scope, name)?;
        let force = input.get("force").and_then(Value::as_bool).unwrap_or(false);
        if !force && !self.registry.images(&scope, name).is_empty() {
            return Err(ApiError::client(
                "RepositoryNotEmptyException",
                format!("The repository with name '{name}' in registry with id '{}' cannot be deleted because it still contains images", scope.account),
            ));
        }
        self.registry
            .delete_repository_records(&scope, name)
            .map_err(registry_err)?;

        Ok(json!({"repository": render_repo(&repo.value)}))
    }

    fn get_authorization_token(&self, ctx: &RequestContext) -> ApiResult<Value> {
        let expires = self.registry.clock.now() + berth_registry::token::VALIDITY_SECS;
        let token =
            berth_registry::token::issue(&self.registry.token_secret, &ctx.account, expires);
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{token}"));
        let scope = Scope {
            account: ctx.account.clone(),
            region: ctx.region.clone(),
        };
        Ok(json!({"authorizationData": [{
            "authorizationToken": encoded,
            "expiresAt": expires,
            "proxyEndpoint": format!("http://{}", repository_host(&self.registry.registry_host, &scope)),
        }]}))
    }

    /// The `images` selected by `imageIds` (digest and/or tag), with failures for the rest.
    fn select(
        images: &[berth_registry::Image],
        ids: &[Value],
    ) -> (Vec<(berth_registry::Image, Value)>, Vec<Value>) {
        let mut found = vec![];
        let mut failures = vec![];
        for id in ids {
            let digest = str_of(id, "imageDigest");
            let tag = str_of(id, "imageTag");
            if digest.is_none() && tag.is_none() {
                failures.push(json!({"imageId": id, "failureCode": "MissingDigestAndTag", "failureReason": "Invalid request parameters: both tag and digest cannot be null"}));
                continue;
            }
            if digest.is_some_and(|d| Digest::parse(d).is_none()) {
                failures.push(json!({"imageId": id, "failureCode": "InvalidImageDigest", "failureReason": "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'"}));
                continue;
            }
            let by_tag = tag.and_then(|t| images.iter().find(|i| i.tags.iter().any(|x| x == t)));
            let by_digest =
                digest.and_then(|d| images.iter().find(|i| i.record["imageDigest"] == d));
            match (digest, tag, by_digest, by_tag) {
                (Some(_), Some(_), Some(a), Some(b)) if a.record["imageDigest"] != b.record["imageDigest"] => {
                    failures.push(json!({"imageId": id, "failureCode": "ImageTagDoesNotMatchDigest", "failureReason": "Invalid request parameters: given tag does not map to the given digest"}));
                }
                (_, _, Some(img), _) | (None, _, None, Some(img)) if tag.is_none() || img.tags.iter().any(|x| Some(x.as_str()) == tag) => {
                    found.push((img.clone(), id.clone()));
                }
                _ => failures.push(json!({"imageId": id, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"})),
            }
        }
        (found, failures)
    }

    fn describe_images(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let name = str_of(input, "repositoryName").unwrap_or_default();
        self.repo(&scope, name)?;
        let detail = |img: &berth_registry::Image| {
            let mut d = img.record.clone();
            d.as_object_mut().map(|o| {
                o.remove("subjectManifestDigest")
                    .map(|s| o.insert("subjectManifestDigest".into(), s))
            });
            if !img.tags.is_empty() {
                d["imageTags"] = json!(img.tags);
            }
            d
        };
        if let Some(ids) = input.get("imageIds").and_then(Value::as_array) {
            let (found, failures) = Self::select(&self.registry.images(&scope, name), ids);
            if let Some(f) = failures.first() {
                let id = &f["imageId"];
                return Err(ApiError::client(
                    "ImageNotFoundException",
                    format!(
                        "The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{name}' in the registry with id '{}'",
                        str_of(id, "imageDigest").unwrap_or("null"),
                        str_of(id, "imageTag").unwrap_or("null"),
                        scope.account
                    ),
                ));
            }
            return Ok(
                json!({"imageDetails": found.iter().map(|(i, _)| detail(i)).collect::<Vec<_>>()}),
            );
        }
        let status = input
            .pointer("/filter/tagStatus")
            .and_then(Value::as_str)
            .unwrap_or("ANY");
        let details: Vec<Value> = self
            .registry
            .images(&scope, name)
            .iter()
            .filter(|i| match status {
                "TAGGED" => !i.tags.is_empty(),
                "UNTAGGED" => i.tags.is_empty(),
                _ => true,
            })
            .map(detail)
            .collect();
        let page = paginate(
            details,
            |d| str_of(d, "imageDigest").unwrap_or_default().to_string(),
            input,
            100,
            1000,
            "InvalidParameterException",
        )?;
        Ok(json!({"imageDetails": page.items, "nextToken": page.next_token}))
    }

    fn list_images(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let name = str_of(input, "repositoryName").unwrap_or_default();
        self.repo(&scope, name)?;
        let status = input
            .pointer("/filter/tagStatus")
            .and_then(Value::as_str)
            .unwrap_or("ANY");
        let mut ids = vec![];
        for img in self.registry.images(&scope, name) {
            let d = img.record["imageDigest"].clone();
            if img.tags.is_empty() {
                if status != "TAGGED" {
                    ids.push(json!({"imageDigest": d}));
                }
            } else if status != "UNTAGGED" {
                for t in &img.tags {
                    ids.push(json!({"imageDigest": d, "imageTag": t}));
                }
            }
        }
        let page = paginate(
            ids,
            |i| {
                format!(
                    "{}/{}",
                    str_of(i, "imageDigest").unwrap_or_default(),
                    str_of(i, "imageTag").unwrap_or_default()
                )
            },
            input,
            100,
            1000,
            "InvalidParameterException",
        )?;
        Ok(json!({"imageIds": page.items, "nextToken": page.next_token}))
    }

    fn batch_get_image(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let name = str_of(input, "repositoryName").unwrap_or_default();
        self.repo(&scope, name)?;
        let ids = input
            .get("imageIds")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (found, failures) = Self::select(&self.registry.images(&scope, name), &ids);
        let accepted: Vec<&str> = input
            .get("acceptedMediaTypes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut images = vec![];
        let mut failures = failures;
        for (img, id) in found {
            let digest = str_of(&img.record, "imageDigest").unwrap_or_default();
            let (_, media, bytes) = self
                .registry
                .get_manifest(&scope, name, digest)
                .map_err(registry_err)?;
            if !accepted.is_empty() && !accepted.contains(&media.as_str()) {
                failures.push(json!({"imageId": id, "failureCode": "UnsupportedImageType", "failureReason": format!("The image's manifest media type {media} is not among the accepted media types")}));
                continue;
            }
            let mut image_id = json!({"imageDigest": digest});
            if let Some(t) = str_of(&id, "imageTag") {
                image_id["imageTag"] = json!(t);
            }
            images.push(json!({
                "registryId": scope.account,
                "repositoryName": name,
                "imageId": image_id,
                "imageManifest": String::from_utf8_lossy(&bytes),
                "imageManifestMediaType": media,
            }));
        }
        Ok(json!({"images": images, "failures": failures}))
    }

    fn batch_delete_image(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let name = str_of(input, "repositoryName").unwrap_or_default();
        self.repo(&scope, name)?;
        let ids = input
            .get("imageIds")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let all = self.registry.images(&scope, name);
        let (found, mut failures) = Self::select(&all, &ids);
        // An image an index (manifest list) still lists cannot go unless the index goes too.
        let children = self.registry.index_children(&all);
        let removing: HashSet<String> = found
            .iter()
            .filter(|(img, id)| {
                str_of(id, "imageTag").is_none()
                    || img.tags.len() <= 1
                    || str_of(id, "imageDigest").is_some()
            })
            .filter_map(|(img, _)| str_of(&img.record, "imageDigest").map(str::to_string))
            .collect();
        let mut deleted = vec![];
        for (img, id) in found {
            let digest = str_of(&img.record, "imageDigest")
                .unwrap_or_default()
                .to_string();
            let parents: Vec<&String> = children
                .iter()
                .filter(|(parent, kids)| !removing.contains(*parent) && kids.contains(&digest))
                .map(|(parent, _)| parent)
                .collect();
            if removing.contains(&digest) && !parents.is_empty() {
                failures.push(json!({
                    "imageId": id,
                    "failureCode": "ImageReferencedByManifestList",
                    "failureReason": format!("Requested image referenced by manifest list: {parents:?}"),
                }));
                continue;
            }
            match str_of(&id, "imageTag") {
                // Deleting by tag removes the tag; the image goes with its last tag, as in ECR.
                Some(tag) if img.tags.len() > 1 && str_of(&id, "imageDigest").is_none() => {
                    self.registry
                        .delete_manifest(&scope, name, tag)
                        .map_err(registry_err)?;
                    deleted.push(json!({"imageDigest": digest, "imageTag": tag}));
                }
                _ => {
                    // The image may already be gone if two ids named it.
                    match self.registry.delete_manifest(&scope, name, &digest) {
                        Ok(()) | Err(RegistryError { status: 404, .. }) => {}
                        Err(e) => return Err(registry_err(e)),
                    }
                    if img.tags.is_empty() {
                        deleted.push(json!({"imageDigest": digest}));
                    }
                    for t in &img.tags {
                        deleted.push(json!({"imageDigest": digest, "imageTag": t}));
                    }
                }
            }
        }
        Ok(json!({"imageIds": deleted, "failures": failures}))
    }

    fn put_image_tag_mutability(&self, ctx: &RequestContext, input: &Value) -> ApiResult<Value> {
        let scope = scope(ctx, input)?;
        let name = str_of(input, "repositoryName").unwrap_or_default();
        let r = self.repo(&scope, name)?;
        let m = str_of(input, "imageTagMutability").unwrap_or("MUTABLE");
        if m != "MUTABLE" && m != "IMMUTABLE" {
            return Err(ApiError::new(501, "NotImplemented", format!("PutImageTagMutability: {m} (exclusion filters) is not implemented in Berth yet")));
        }
        let mut repo = (*r.value).clone();
        repo["imageTagMutability"] = json!(m);
        self.registry
            .store
            .txn(
                &[Cond::Revision(r.key.clone(), r.revision)],
                vec![Op::Put(r.key.clone(), repo)],
            )
            .map_err(server_err)?;
        Ok(json!({"registryId": scope.account, "repositoryName": name, "imageTagMutability": m}))
    }
}

/// The registry host for a scope: the configured host for the default form, or
/// `ACCOUNT.dkr.ecr.REGION.<host>` when the configured host is itself in that form.
pub(crate) fn repository_host(configured: &str, scope: &Scope) -> String {
    if configured.contains(".dkr.ecr.") {
        let rest = configured.splitn(5, '.').nth(4).unwrap_or("localhost");
        format!("{}.dkr.ecr.{}.{rest}", scope.account, scope.region)
    } else {
        configured.to_string()
    }
}

/// Repository tags: unique non-empty keys, `aws:` reserved, at most 50.
pub(crate) fn check_tags(tags: &[Value]) -> ApiResult<()> {
    let mut keys = HashSet::new();
    for t in tags {
        let k = str_of(t, "Key").unwrap_or_default();
        if k.is_empty() || !keys.insert(k.to_string()) {
            return Err(ApiError::client(
                "InvalidTagParameterException",
                "Tag keys must be unique and not empty.",
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::client(
                "InvalidTagParameterException",
                "Tag keys that begin with 'aws:' are reserved.",
            ));
        }
    }
    if tags.len() > 50 {
        return Err(ApiError::client(
            "TooManyTagsException",
            "A repository can have at most 50 tags.",
        ));
    }
    Ok(())
}

fn render_repo(r: &Value) -> Value {
    let mut out = r.clone();
    out.as_object_mut().map(|o| o.remove("tags"));
    out
}
