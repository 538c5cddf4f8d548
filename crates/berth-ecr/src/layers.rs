//! ECR's own layer-upload API (what `docker push` used before OCI distribution), on the
//! same upload sessions and content store as `/v2/`, and PutImage.

use crate::types::*;
use crate::{invalid, scope, server_err, Ecr};
use base64::Engine;
use berth_registry::blobs::CommitError;
use berth_registry::{Digest, RegistryError, Scope};
use berth_wire::{ApiError, ApiResult, RequestContext};
use serde_json::Value;
use std::io::Write;

/// The part size ECR advertises for layer uploads.
const PART_SIZE: i64 = 10 * 1024 * 1024;

fn upload_not_found(id: &str) -> ApiError {
    ApiError::client(
        "UploadNotFoundException",
        format!("The upload with id '{id}' could not be found."),
    )
}

impl Ecr {
    /// An upload session of this repository: its data file.
    fn session(&self, scope: &Scope, repo: &str, id: &str) -> ApiResult<std::path::PathBuf> {
        let (data, meta) = self
            .registry
            .blobs
            .upload_path(id)
            .ok_or_else(|| upload_not_found(id))?;
        let meta: Value = serde_json::from_str(&meta).unwrap_or(Value::Null);
        if meta["repo"] != repo
            || meta["account"] != scope.account.as_str()
            || meta["region"] != scope.region.as_str()
        {
            return Err(upload_not_found(id));
        }
        Ok(data)
    }

    pub(crate) fn initiate_layer_upload(
        &self,
        ctx: &RequestContext,
        input: InitiateLayerUploadRequest,
    ) -> ApiResult<InitiateLayerUploadResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let meta = self.registry.upload_meta(&scope, repo);
        let id = self
            .registry
            .blobs
            .begin_upload(&meta)
            .map_err(server_err)?;
        Ok(InitiateLayerUploadResponse {
            upload_id: Some(id),
            part_size: Some(PART_SIZE),
        })
    }

    pub(crate) fn upload_layer_part(
        &self,
        ctx: &RequestContext,
        input: UploadLayerPartRequest,
    ) -> ApiResult<UploadLayerPartResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let id = input.upload_id.as_str();
        let data = self.session(&scope, repo, id)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&input.layer_part_blob)
            .map_err(|_| ApiError::serialization("layerPartBlob is not valid base64"))?;
        // The model's minimum is 0, so validation has refused negative offsets.
        let first = u64::try_from(input.part_first_byte).unwrap_or(0);
        let last = u64::try_from(input.part_last_byte).unwrap_or(0);
        let size = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
        let part_error = |reason: &str| {
            ApiError::client(
                "InvalidLayerPartException",
                format!(
                    "The layer part is not valid: {reason}. Last valid byte received: {}",
                    size as i64 - 1
                ),
            )
        };
        if first != size {
            return Err(part_error(&format!(
                "partFirstByte {first} does not continue the upload at byte {size}"
            )));
        }
        if bytes.is_empty() || last < first || last - first + 1 != bytes.len() as u64 {
            return Err(part_error("partLastByte does not match the part's length"));
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&data)
            .map_err(server_err)?;
        f.write_all(&bytes).map_err(server_err)?;
        Ok(UploadLayerPartResponse {
            registry_id: Some(scope.account.clone()),
            repository_name: Some(repo.to_string()),
            upload_id: Some(id.to_string()),
            last_byte_received: Some(input.part_last_byte),
        })
    }

    pub(crate) fn complete_layer_upload(
        &self,
        ctx: &RequestContext,
        input: CompleteLayerUploadRequest,
    ) -> ApiResult<CompleteLayerUploadResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let id = input.upload_id.as_str();
        self.session(&scope, repo, id)?;
        let [digest] = input.layer_digests.as_slice() else {
            return Err(invalid("Exactly one layer digest must be given."));
        };
        let d = Digest::parse(digest).ok_or_else(|| {
            ApiError::client(
                "InvalidLayerException",
                format!("Invalid layer digest: {digest}"),
            )
        })?;
        let _writing = self.registry.writing_blobs();
        if self.registry.blob_in_repo(&scope, repo, &d).is_some() {
            let _ = self.registry.blobs.cancel_upload(id);
            return Err(ApiError::client(
                "LayerAlreadyExistsException",
                format!("The layer '{d}' already exists in the repository with name '{repo}'"),
            ));
        }
        let size = match self.registry.blobs.commit_upload(id, &d, None) {
            Ok(s) => s,
            Err(CommitError::UnknownUpload) => return Err(upload_not_found(id)),
            Err(CommitError::DigestMismatch { actual }) => {
                return Err(ApiError::client(
                    "InvalidLayerException",
                    format!("The layer digest {d} does not match the uploaded content ({actual})."),
                ))
            }
            Err(CommitError::Io(e)) => return Err(server_err(e)),
        };
        if size == 0 {
            return Err(ApiError::client(
                "EmptyUploadException",
                "The specified layer upload does not contain any layer parts.",
            ));
        }
        self.registry
            .add_blob(&scope, repo, &d, size)
            .map_err(crate::registry_err)?;
        Ok(CompleteLayerUploadResponse {
            registry_id: Some(scope.account.clone()),
            repository_name: Some(repo.to_string()),
            upload_id: Some(id.to_string()),
            layer_digest: Some(d.to_string()),
        })
    }

    pub(crate) fn batch_check_layer_availability(
        &self,
        ctx: &RequestContext,
        input: BatchCheckLayerAvailabilityRequest,
    ) -> ApiResult<BatchCheckLayerAvailabilityResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let mut layers = vec![];
        let mut failures = vec![];
        let failure = |d: &str, code, reason: &str| LayerFailure {
            layer_digest: Some(d.to_string()),
            failure_code: Some(code),
            failure_reason: Some(reason.to_string()),
        };
        for d in &input.layer_digests {
            match Digest::parse(d) {
                None => failures.push(failure(
                    d,
                    LayerFailureCode::InvalidLayerDigest,
                    "Invalid layer digest",
                )),
                Some(dd) => match self.registry.blob_in_repo(&scope, repo, &dd) {
                    Some(size) => layers.push(Layer {
                        layer_digest: Some(d.clone()),
                        layer_availability: Some(LayerAvailability::Available),
                        layer_size: Some(size as i64),
                        media_type: None,
                    }),
                    None => failures.push(failure(
                        d,
                        LayerFailureCode::MissingLayerDigest,
                        "Requested layer not found",
                    )),
                },
            }
        }
        Ok(BatchCheckLayerAvailabilityResponse {
            layers: Some(layers),
            failures: Some(failures),
        })
    }

    pub(crate) fn get_download_url_for_layer(
        &self,
        ctx: &RequestContext,
        input: GetDownloadUrlForLayerRequest,
    ) -> ApiResult<GetDownloadUrlForLayerResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let digest = input.layer_digest.as_str();
        let d = Digest::parse(digest)
            .ok_or_else(|| invalid(format!("Invalid layer digest: {digest}")))?;
        if self.registry.blob_in_repo(&scope, repo, &d).is_none() {
            return Err(ApiError::client(
                "LayersNotFoundException",
                format!("The specified layer {d} could not be found in the repository with name '{repo}'"),
            ));
        }
        let host = crate::repository_host(&self.registry.registry_host, &scope);
        Ok(GetDownloadUrlForLayerResponse {
            download_url: Some(format!("http://{host}/v2/{repo}/blobs/{d}")),
            layer_digest: Some(d.to_string()),
        })
    }

    pub(crate) fn put_image(
        &self,
        ctx: &RequestContext,
        input: PutImageRequest,
    ) -> ApiResult<PutImageResponse> {
        let scope = scope(ctx, input.registry_id.as_deref())?;
        let repo = input.repository_name.as_str();
        self.repo(&scope, repo)?;
        let manifest = input.image_manifest.as_bytes();
        let tag = input.image_tag.as_deref();
        let digest = Digest::sha256_of(manifest);
        if let Some(given) = &input.image_digest {
            if *given != digest.to_string() {
                return Err(ApiError::client(
                    "ImageDigestDoesNotMatchException",
                    format!(
                        "The provided digest {given} does not match the manifest's digest {digest}"
                    ),
                ));
            }
        }
        // Pushing what is already there (same digest, same tag or no tag) is refused, as in ECR.
        let images = self.registry.images(&scope, repo);
        if let Some(existing) = images
            .iter()
            .find(|i| crate::digest_of(i) == digest.to_string())
        {
            if tag.is_none_or(|t| existing.tags.iter().any(|x| x == t)) {
                return Err(ApiError::client(
                    "ImageAlreadyExistsException",
                    format!("Image with digest '{digest}' and tag '{}' already exists in the repository with name '{repo}' in registry with id '{}'", tag.unwrap_or("null"), scope.account),
                ));
            }
        }
        let reference = tag
            .map(str::to_string)
            .unwrap_or_else(|| digest.to_string());
        let media = input.image_manifest_media_type.as_deref();
        match self
            .registry
            .put_manifest(&scope, repo, &reference, media, manifest)
        {
            Ok(_) => {}
            Err(RegistryError {
                code: "MANIFEST_BLOB_UNKNOWN",
                message,
                ..
            }) => {
                let code = if message.starts_with("manifest unknown") {
                    "ReferencedImagesNotFoundException"
                } else {
                    "LayersNotFoundException"
                };
                return Err(ApiError::client(code, message));
            }
            Err(RegistryError {
                code: "TAG_INVALID",
                message,
                ..
            }) if message.contains("immutable") => {
                return Err(ApiError::client("ImageTagAlreadyExistsException", message));
            }
            Err(e) if e.status < 500 => return Err(invalid(e.message)),
            Err(e) => return Err(crate::registry_err(e)),
        }
        let (_, media, _) = self
            .registry
            .get_manifest(&scope, repo, &digest.to_string())
            .map_err(crate::registry_err)?;
        Ok(PutImageResponse {
            image: Some(Image {
                registry_id: Some(scope.account.clone()),
                repository_name: Some(repo.to_string()),
                image_id: Some(crate::image_id(&digest.to_string(), tag)),
                image_manifest_media_type: Some(media),
                image_manifest: Some(input.image_manifest),
            }),
        })
    }
}
