//! berth-ecr: the Amazon ECR API (awsJson 1.1). Repositories and images are the same
//! records the `/v2/` registry serves, through `berth_registry::Registry`.

mod layers;
pub mod lifecycle;
mod policy;

use base64::Engine;
use berth_registry::{Digest, Registry, RegistryError, Scope};
use berth_store::{Cond, Op};
pub use berth_types::ecr as types;
use berth_wire::model::LazyModel;
use berth_wire::page::{page_after, params};
use berth_wire::typed::Timestamp;
use berth_wire::{ApiError, ApiResult, Model, RequestContext, Service, ValidationCodes};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use types::*;

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

/// The caller's registry; a `registryId` naming another account's is refused.
pub(crate) fn scope(ctx: &RequestContext, registry_id: Option<&str>) -> ApiResult<Scope> {
    if let Some(id) = registry_id {
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

/// A page of `items` (sorted by `key`) for an operation's `maxResults` and `nextToken`.
pub(crate) fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    max_results: Option<i32>,
    next_token: Option<&str>,
    default: usize,
    limit: usize,
) -> ApiResult<berth_wire::page::Page<T>> {
    let (max, after) = params(
        max_results.map(i64::from),
        next_token,
        default,
        limit,
        "InvalidParameterException",
    )?;
    Ok(page_after(items, key, max, after))
}

/// Mutability with exclusion filters is not implemented: refused, never dropped.
fn check_mutability(
    m: ImageTagMutability,
    filters: Option<&Vec<ImageTagMutabilityExclusionFilter>>,
    operation: &str,
) -> ApiResult<()> {
    if filters.is_some()
        || matches!(
            m,
            ImageTagMutability::ImmutableWithExclusion | ImageTagMutability::MutableWithExclusion
        )
    {
        return Err(ApiError::new(
            501,
            "NotImplemented",
            format!("{operation}: {m} (exclusion filters) is not implemented in Berth yet"),
        ));
    }
    Ok(())
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
        use types::op;
        berth_wire::dispatch!(operation, input, self.codes(), op {
            CreateRepository => |i| self.create_repository(ctx, i),
            DescribeRepositories => |i| self.describe_repositories(ctx, i),
            DeleteRepository => |i| self.delete_repository(ctx, i),
            GetAuthorizationToken => |i| self.get_authorization_token(ctx, i),

            DescribeImages => |i| self.describe_images(ctx, i),
            ListImages => |i| self.list_images(ctx, i),
            BatchGetImage => |i| self.batch_get_image(ctx, i),
            BatchDeleteImage => |i| self.batch_delete_image(ctx, i),
            PutImageTagMutability => |i| self.put_image_tag_mutability(ctx, i),

            InitiateLayerUpload => |i| self.initiate_layer_upload(ctx, i),
            UploadLayerPart => |i| self.upload_layer_part(ctx, i),
            CompleteLayerUpload => |i| self.complete_layer_upload(ctx, i),
            BatchCheckLayerAvailability => |i| self.batch_check_layer_availability(ctx, i),
            GetDownloadUrlForLayer => |i| self.get_download_url_for_layer(ctx, i),
            PutImage => |i| self.put_image(ctx, i),

            SetRepositoryPolicy => |i| self.set_repository_policy(ctx, i),
            GetRepositoryPolicy => |i| self.get_repository_policy(ctx, i),
            DeleteRepositoryPolicy => |i| self.delete_repository_policy(ctx, i),
            DescribeRegistry => |i| self.describe_registry(ctx, i),
            TagResource => |i| self.tag_resource(ctx, i),
            UntagResource => |i| self.untag_resource(ctx, i),
            ListTagsForResource => |i| self.list_tags_for_resource(ctx, i),

            PutLifecyclePolicy => |i| self.put_lifecycle_policy(ctx, i),
            GetLifecyclePolicy => |i| self.get_lifecycle_policy(ctx, i),
            DeleteLifecyclePolicy => |i| self.delete_lifecycle_policy(ctx, i),
            StartLifecyclePolicyPreview => |i| self.start_lifecycle_policy_preview(ctx, i),
            GetLifecyclePolicyPreview => |i| self.get_lifecycle_policy_preview(ctx, i),
        } else Err(ApiError::not_implemented("ecr", operation)))
    }
}

/// An image id naming `digest` (and `tag`, if any).
fn image_id(digest: &str, tag: Option<&str>) -> ImageIdentifier {
    ImageIdentifier {
        image_digest: Some(digest.to_string()),
        image_tag: tag.map(str::to_string),
    }
}

fn image_failure(id: &ImageIdentifier, code: ImageFailureCode, reason: String) -> ImageFailure {
    ImageFailure {
        failure_code: Some(code),
        failure_reason: Some(reason),
        image_id: Some(id.clone()),
    }
}

/// Whether an image passes a tagStatus filter (absent: any).
fn tag_status_keeps(status: Option<TagStatus>, tagged: bool) -> bool {
    match status {
        Some(TagStatus::Tagged) => tagged,
        Some(TagStatus::Untagged) => !tagged,
        Some(TagStatus::Any) | None => true,
    }
}

/// Every image Berth holds is ACTIVE (there is no archive storage class yet).
fn image_status_keeps(status: Option<ImageStatusFilter>) -> bool {
    matches!(
        status,
        None | Some(ImageStatusFilter::Active) | Some(ImageStatusFilter::Any)
    )
}

/// An image record (the registry's layout) as DescribeImages shows it.
fn image_detail(img: &berth_registry::Image) -> ImageDetail {
    let r = &img.record;
    let s = |k: &str| r[k].as_str().map(str::to_string);
    ImageDetail {
        registry_id: s("registryId"),
        repository_name: s("repositoryName"),
        image_digest: s("imageDigest"),
        image_manifest_media_type: s("imageManifestMediaType"),
        artifact_media_type: s("artifactMediaType"),
        subject_manifest_digest: s("subjectManifestDigest"),
        image_size_in_bytes: r["imageSizeInBytes"].as_i64(),
        image_pushed_at: r["imagePushedAt"].as_f64().map(Timestamp),
        image_tags: (!img.tags.is_empty()).then(|| img.tags.clone()),
        ..Default::default()
    }
}

fn digest_of(img: &berth_registry::Image) -> &str {
    img.record["imageDigest"].as_str().unwrap_or_default()
}

impl Ecr {
    pub(crate) fn repo(&self, scope: &Scope, name: &str) -> ApiResult<berth_store::Record> {
        self.registry
            .store
            .get(&Registry::repo_key(scope, name))
            .ok_or_else(|| repo_not_found(scope, name))
    }

    fn create_repository(
        &self,
        ctx: &RequestContext,
        input: CreateRepositoryRequest,
    ) -> ApiResult<CreateRepositoryResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let name = input.repository_name.as_str();
        if !berth_registry::valid_repository_name(name) {
            return Err(invalid(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''",
            ));
        }
        let mutability = input
            .image_tag_mutability
            .unwrap_or(ImageTagMutability::Mutable);
        check_mutability(
            mutability,
            input.image_tag_mutability_exclusion_filters.as_ref(),
            "CreateRepository",
        )?;
        let tags = input.tags.unwrap_or_default();
        check_tags(&tags)?;
        let scanning = input
            .image_scanning_configuration
            .unwrap_or(ImageScanningConfiguration {
                scan_on_push: Some(false),
            });
        let encryption = input
            .encryption_configuration
            .unwrap_or(EncryptionConfiguration {
                encryption_type: EncryptionType::Aes256,
                kms_key: None,
            });
        let host = &self.registry.registry_host;
        let repo = json!({
            "repositoryArn": format!("arn:aws:ecr:{}:{}:repository/{name}", scope.region, scope.account),
            "registryId": scope.account,
            "repositoryName": name,
            "repositoryUri": format!("{}/{name}", repository_host(host, &scope)),
            "createdAt": self.registry.clock.now(),
            "imageTagMutability": mutability.as_str(),
            "imageScanningConfiguration": scanning,
            "encryptionConfiguration": encryption,
            "tags": tags,
        });
        let k = Registry::repo_key(&scope, name);
        match self
            .registry
            .store
            .txn(&[Cond::Absent(k.clone())], vec![Op::Put(k, repo.clone())])
        {
            Ok(_) => Ok(CreateRepositoryResponse {
                repository: Some(repository_of(&repo)),
            }),
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

    fn describe_repositories(
        &self,
        ctx: &RequestContext,
        input: DescribeRepositoriesRequest,
    ) -> ApiResult<DescribeRepositoriesResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        if let Some(names) = &input.repository_names {
            if input.max_results.is_some() || input.next_token.is_some() {
                return Err(invalid(
                    "maxResults and nextToken cannot be used with repositoryNames.",
                ));
            }
            let mut out = vec![];
            for n in names {
                out.push(repository_of(&self.repo(&scope, n)?.value));
            }
            return Ok(DescribeRepositoriesResponse {
                repositories: Some(out),
                next_token: None,
            });
        }
        let repos: Vec<Repository> = self
            .registry
            .repositories(&scope)
            .into_iter()
            .map(|r| repository_of(&r.value))
            .collect();
        let page = page(
            repos,
            |r| r.repository_name.clone().unwrap_or_default(),
            input.max_results,
            input.next_token.as_deref(),
            1000,
            1000,
        )?;
        Ok(DescribeRepositoriesResponse {
            repositories: Some(page.items),
            next_token: page.next_token,
        })
    }

    fn delete_repository(
        &self,
        ctx: &RequestContext,
        input: DeleteRepositoryRequest,
    ) -> ApiResult<DeleteRepositoryResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let name = input.repository_name.as_str();
        let repo = self.repo(&scope, name)?;
        if !input.force.unwrap_or(false) && !self.registry.images(&scope, name).is_empty() {
            return Err(ApiError::client(
                "RepositoryNotEmptyException",
                format!("The repository with name '{name}' in registry with id '{}' cannot be deleted because it still contains images", scope.account),
            ));
        }
        self.registry
            .delete_repository_records(&scope, name)
            .map_err(registry_err)?;
        Ok(DeleteRepositoryResponse {
            repository: Some(repository_of(&repo.value)),
        })
    }

    /// One token for the caller's registry, the only one `registryIds` may name.
    fn get_authorization_token(
        &self,
        ctx: &RequestContext,
        input: GetAuthorizationTokenRequest,
    ) -> ApiResult<GetAuthorizationTokenResponse> {
        for id in input.registry_ids.iter().flatten() {
            scope(ctx, Some(id))?;
        }
        let expires = self.registry.clock.now() + berth_registry::token::VALIDITY_SECS;
        let token =
            berth_registry::token::issue(&self.registry.token_secret, &ctx.account, expires);
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{token}"));
        let scope = scope(ctx, None)?;
        Ok(GetAuthorizationTokenResponse {
            authorization_data: Some(vec![AuthorizationData {
                authorization_token: Some(encoded),
                expires_at: Some(Timestamp(expires)),
                proxy_endpoint: Some(format!(
                    "http://{}",
                    repository_host(&self.registry.registry_host, &scope)
                )),
            }]),
        })
    }

    /// The `images` selected by `imageIds` (digest and/or tag), with failures for the rest.
    fn select(
        images: &[berth_registry::Image],
        ids: &[ImageIdentifier],
    ) -> (
        Vec<(berth_registry::Image, ImageIdentifier)>,
        Vec<ImageFailure>,
    ) {
        let mut found = vec![];
        let mut failures = vec![];
        for id in ids {
            let digest = id.image_digest.as_deref();
            let tag = id.image_tag.as_deref();
            if digest.is_none() && tag.is_none() {
                failures.push(image_failure(
                    id,
                    ImageFailureCode::MissingDigestAndTag,
                    "Invalid request parameters: both tag and digest cannot be null".into(),
                ));
                continue;
            }
            if digest.is_some_and(|d| Digest::parse(d).is_none()) {
                failures.push(image_failure(id, ImageFailureCode::InvalidImageDigest, "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'".into()));
                continue;
            }
            let by_tag = tag.and_then(|t| images.iter().find(|i| i.tags.iter().any(|x| x == t)));
            let by_digest = digest.and_then(|d| images.iter().find(|i| digest_of(i) == d));
            match (digest, tag, by_digest, by_tag) {
                (Some(_), Some(_), Some(a), Some(b)) if digest_of(a) != digest_of(b) => {
                    failures.push(image_failure(
                        id,
                        ImageFailureCode::ImageTagDoesNotMatchDigest,
                        "Invalid request parameters: given tag does not map to the given digest"
                            .into(),
                    ));
                }
                (_, _, Some(img), _) | (None, _, None, Some(img))
                    if tag.is_none() || img.tags.iter().any(|x| Some(x.as_str()) == tag) =>
                {
                    found.push((img.clone(), id.clone()));
                }
                _ => failures.push(image_failure(
                    id,
                    ImageFailureCode::ImageNotFound,
                    "Requested image not found".into(),
                )),
            }
        }
        (found, failures)
    }

    fn describe_images(
        &self,
        ctx: &RequestContext,
        input: DescribeImagesRequest,
    ) -> ApiResult<DescribeImagesResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let name = input.repository_name.as_str();
        self.repo(&scope, name)?;
        if let Some(ids) = &input.image_ids {
            let (found, failures) = Self::select(&self.registry.images(&scope, name), ids);
            if let Some(id) = failures.first().and_then(|f| f.image_id.as_ref()) {
                return Err(ApiError::client(
                    "ImageNotFoundException",
                    format!(
                        "The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{name}' in the registry with id '{}'",
                        id.image_digest.as_deref().unwrap_or("null"),
                        id.image_tag.as_deref().unwrap_or("null"),
                        scope.account
                    ),
                ));
            }
            return Ok(DescribeImagesResponse {
                image_details: Some(found.iter().map(|(i, _)| image_detail(i)).collect()),
                next_token: None,
            });
        }
        let filter = input.filter.as_ref();
        let tag_status = filter.and_then(|f| f.tag_status);
        let details: Vec<ImageDetail> = if image_status_keeps(filter.and_then(|f| f.image_status)) {
            self.registry
                .images(&scope, name)
                .iter()
                .filter(|i| tag_status_keeps(tag_status, !i.tags.is_empty()))
                .map(image_detail)
                .collect()
        } else {
            vec![]
        };
        let page = page(
            details,
            |d| d.image_digest.clone().unwrap_or_default(),
            input.max_results,
            input.next_token.as_deref(),
            100,
            1000,
        )?;
        Ok(DescribeImagesResponse {
            image_details: Some(page.items),
            next_token: page.next_token,
        })
    }

    fn list_images(
        &self,
        ctx: &RequestContext,
        input: ListImagesRequest,
    ) -> ApiResult<ListImagesResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let name = input.repository_name.as_str();
        self.repo(&scope, name)?;
        let filter = input.filter.as_ref();
        let tag_status = filter.and_then(|f| f.tag_status);
        let mut ids = vec![];
        if image_status_keeps(filter.and_then(|f| f.image_status)) {
            for img in self.registry.images(&scope, name) {
                if !tag_status_keeps(tag_status, !img.tags.is_empty()) {
                    continue;
                }
                if img.tags.is_empty() {
                    ids.push(image_id(digest_of(&img), None));
                }
                for t in &img.tags {
                    ids.push(image_id(digest_of(&img), Some(t)));
                }
            }
        }
        let page = page(
            ids,
            |i| {
                format!(
                    "{}/{}",
                    i.image_digest.as_deref().unwrap_or_default(),
                    i.image_tag.as_deref().unwrap_or_default()
                )
            },
            input.max_results,
            input.next_token.as_deref(),
            100,
            1000,
        )?;
        Ok(ListImagesResponse {
            image_ids: Some(page.items),
            next_token: page.next_token,
        })
    }

    fn batch_get_image(
        &self,
        ctx: &RequestContext,
        input: BatchGetImageRequest,
    ) -> ApiResult<BatchGetImageResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let name = input.repository_name.as_str();
        self.repo(&scope, name)?;
        let (found, mut failures) =
            Self::select(&self.registry.images(&scope, name), &input.image_ids);
        let accepted = input.accepted_media_types.unwrap_or_default();
        let mut images = vec![];
        for (img, id) in found {
            let digest = digest_of(&img);
            let (_, media, bytes) = self
                .registry
                .get_manifest(&scope, name, digest)
                .map_err(registry_err)?;
            if !accepted.is_empty() && !accepted.contains(&media) {
                // The model has no code of its own for this; no image of an accepted type.
                failures.push(image_failure(&id, ImageFailureCode::ImageNotFound, format!("The image's manifest media type {media} is not among the accepted media types")));
                continue;
            }
            images.push(Image {
                registry_id: Some(scope.account.clone()),
                repository_name: Some(name.to_string()),
                image_id: Some(image_id(digest, id.image_tag.as_deref())),
                image_manifest: Some(String::from_utf8_lossy(&bytes).into_owned()),
                image_manifest_media_type: Some(media),
            });
        }
        Ok(BatchGetImageResponse {
            images: Some(images),
            failures: Some(failures),
        })
    }

    fn batch_delete_image(
        &self,
        ctx: &RequestContext,
        input: BatchDeleteImageRequest,
    ) -> ApiResult<BatchDeleteImageResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let name = input.repository_name.as_str();
        self.repo(&scope, name)?;
        let all = self.registry.images(&scope, name);
        let (found, mut failures) = Self::select(&all, &input.image_ids);
        // An image an index (manifest list) still lists cannot go unless the index goes too.
        let children = self.registry.index_children(&all);
        let removing: HashSet<String> = found
            .iter()
            .filter(|(img, id)| {
                id.image_tag.is_none() || img.tags.len() <= 1 || id.image_digest.is_some()
            })
            .map(|(img, _)| digest_of(img).to_string())
            .collect();
        let mut deleted = vec![];
        for (img, id) in found {
            let digest = digest_of(&img).to_string();
            let parents: Vec<&String> = children
                .iter()
                .filter(|(parent, kids)| !removing.contains(*parent) && kids.contains(&digest))
                .map(|(parent, _)| parent)
                .collect();
            if removing.contains(&digest) && !parents.is_empty() {
                failures.push(image_failure(
                    &id,
                    ImageFailureCode::ImageReferencedByManifestList,
                    format!("Requested image referenced by manifest list: {parents:?}"),
                ));
                continue;
            }
            match id.image_tag.as_deref() {
                // Deleting by tag removes the tag; the image goes with its last tag, as in ECR.
                Some(tag) if img.tags.len() > 1 && id.image_digest.is_none() => {
                    self.registry
                        .delete_manifest(&scope, name, tag)
                        .map_err(registry_err)?;
                    deleted.push(image_id(&digest, Some(tag)));
                }
                _ => {
                    // The image may already be gone if two ids named it.
                    match self.registry.delete_manifest(&scope, name, &digest) {
                        Ok(()) | Err(RegistryError { status: 404, .. }) => {}
                        Err(e) => return Err(registry_err(e)),
                    }
                    if img.tags.is_empty() {
                        deleted.push(image_id(&digest, None));
                    }
                    for t in &img.tags {
                        deleted.push(image_id(&digest, Some(t)));
                    }
                }
            }
        }
        Ok(BatchDeleteImageResponse {
            image_ids: Some(deleted),
            failures: Some(failures),
        })
    }

    fn put_image_tag_mutability(
        &self,
        ctx: &RequestContext,
        input: PutImageTagMutabilityRequest,
    ) -> ApiResult<PutImageTagMutabilityResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let name = input.repository_name.as_str();
        let r = self.repo(&scope, name)?;
        let m = input.image_tag_mutability;
        check_mutability(
            m,
            input.image_tag_mutability_exclusion_filters.as_ref(),
            "PutImageTagMutability",
        )?;
        let mut repo = (*r.value).clone();
        repo["imageTagMutability"] = json!(m.as_str());
        self.registry
            .store
            .txn(
                &[Cond::Revision(r.key.clone(), r.revision)],
                vec![Op::Put(r.key.clone(), repo)],
            )
            .map_err(server_err)?;
        Ok(PutImageTagMutabilityResponse {
            registry_id: Some(scope.account),
            repository_name: Some(input.repository_name),
            image_tag_mutability: Some(m),
            image_tag_mutability_exclusion_filters: None,
        })
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
pub(crate) fn check_tags(tags: &[Tag]) -> ApiResult<()> {
    let mut keys = HashSet::new();
    for t in tags {
        let k = t.key.as_str();
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

/// A repository record as the API shows it (its tags are ListTagsForResource's).
fn repository_of(r: &Value) -> Repository {
    let s = |k: &str| r[k].as_str().map(str::to_string);
    Repository {
        repository_arn: s("repositoryArn"),
        registry_id: s("registryId"),
        repository_name: s("repositoryName"),
        repository_uri: s("repositoryUri"),
        created_at: r["createdAt"].as_f64().map(Timestamp),
        image_tag_mutability: r["imageTagMutability"]
            .as_str()
            .and_then(ImageTagMutability::from_wire),
        image_scanning_configuration: ImageScanningConfiguration::deserialize(
            &r["imageScanningConfiguration"],
        )
        .ok(),
        encryption_configuration: EncryptionConfiguration::deserialize(
            &r["encryptionConfiguration"],
        )
        .ok(),
        image_tag_mutability_exclusion_filters: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_registry::FsBlobs;
    use berth_store::{SqliteStore, Store};
    use berth_wire::Clock;

    fn ecr(dir: &std::path::Path) -> Ecr {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("state.db")).unwrap());
        Ecr::new(Arc::new(Registry {
            store,
            blobs: Arc::new(FsBlobs::open(&dir.join("registry")).unwrap()),
            clock: Clock::default(),
            default_account: "000000000000".into(),
            registry_host: "localhost:4566".into(),
            token_secret: "s".into(),
            require_auth: false,
            hashers: Default::default(),
            blob_writes: Default::default(),
        }))
    }

    fn ctx() -> RequestContext {
        RequestContext {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn a_member_the_model_lacks_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let ecr = ecr(dir.path());
        let (ctx, scope) = (ctx(), scope(&ctx(), None).unwrap());
        for bad in [
            // A misspelt member: dropping it would make a MUTABLE repository.
            json!({"repositoryName": "app", "imageTagMutabilty": "IMMUTABLE"}),
            // Within a nested structure too.
            json!({"repositoryName": "app", "tags": [{"Key": "k", "Value": "v", "Colour": "red"}]}),
        ] {
            let e = ecr.call(&ctx, "CreateRepository", bad.clone()).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "SerializationException"));
            assert!(
                e.message.contains("imageTagMutabilty") || e.message.contains("Colour"),
                "{}",
                e.message
            );
            assert!(ecr
                .registry
                .store
                .get(&Registry::repo_key(&scope, "app"))
                .is_none());
        }
        let out = ecr.call(&ctx, "DescribeRepositories", json!({})).unwrap();
        assert_eq!(out, json!({"repositories": []}));
    }

    #[test]
    fn outputs_keep_the_wire_shape() {
        let dir = tempfile::tempdir().unwrap();
        let ecr = ecr(dir.path());
        let out = ecr
            .call(
                &ctx(),
                "CreateRepository",
                json!({"repositoryName": "app", "tags": [{"Key": "k", "Value": "v"}]}),
            )
            .unwrap();
        let repo = &out["repository"];
        assert_eq!(repo["repositoryName"], "app");
        assert_eq!(repo["imageTagMutability"], "MUTABLE");
        assert_eq!(
            repo["imageScanningConfiguration"],
            json!({"scanOnPush": false})
        );
        assert_eq!(
            repo["encryptionConfiguration"],
            json!({"encryptionType": "AES256"})
        );
        assert!(repo.get("tags").is_none(), "tags are ListTagsForResource's");
        let arn = repo["repositoryArn"].as_str().unwrap();
        let tags = ecr
            .call(&ctx(), "ListTagsForResource", json!({"resourceArn": arn}))
            .unwrap();
        assert_eq!(tags, json!({"tags": [{"Key": "k", "Value": "v"}]}));
        // Exclusion filters are not implemented: refused, never dropped.
        let e = ecr
            .call(
                &ctx(),
                "PutImageTagMutability",
                json!({"repositoryName": "app", "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"}),
            )
            .unwrap_err();
        assert_eq!(e.status, 501);
        let e = ecr
            .call(
                &ctx(),
                "CreateRepository",
                json!({"repositoryName": "other", "imageTagMutability": "IMMUTABLE",
                    "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "dev-*"}]}),
            )
            .unwrap_err();
        assert_eq!(e.status, 501);
        let empty = ecr
            .call(&ctx(), "ListImages", json!({"repositoryName": "app"}))
            .unwrap();
        assert_eq!(empty, json!({"imageIds": []}));
    }
}
