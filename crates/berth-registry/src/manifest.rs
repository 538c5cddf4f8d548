//! Manifest parsing: which media type, which blobs and child manifests it references,
//! its subject and artifact type.

use crate::RegistryError;
use serde_json::Value;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

pub struct Parsed {
    pub media_type: String,
    /// Config and layer digests (image manifests).
    pub blobs: Vec<String>,
    /// Child manifest digests (indexes).
    pub manifests: Vec<String>,
    pub subject: Option<String>,
    pub artifact_type: Option<String>,
}

fn invalid(msg: impl Into<String>) -> RegistryError {
    RegistryError::new(400, "MANIFEST_INVALID", msg)
}

pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, RegistryError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    let body_type = v.get("mediaType").and_then(Value::as_str);
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty());
    let media_type = match (content_type, body_type) {
        (Some(c), Some(b)) if c != b => {
            return Err(invalid(format!(
                "Content-Type {c} does not match the manifest's mediaType {b}"
            )));
        }
        (Some(c), _) => c.to_string(),
        (None, Some(b)) => b.to_string(),
        (None, None) => {
            if v.get("manifests").is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        }
    };
    if !MANIFEST_MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(RegistryError::new(
            415,
            "MANIFEST_INVALID",
            format!("unsupported manifest media type {media_type}"),
        ));
    }
    if v.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let digest_of = |d: &Value| -> Result<String, RegistryError> {
        let s = d
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("descriptor without a digest"))?;
        if crate::Digest::parse(s).is_none() {
            return Err(invalid(format!("invalid digest {s}")));
        }
        if d.get("size").and_then(Value::as_i64).is_none_or(|n| n < 0) {
            return Err(invalid(format!("descriptor {s} has no valid size")));
        }
        Ok(s.to_string())
    };
    let mut blobs = vec![];
    let mut manifests = vec![];
    let mut artifact_type = v
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_string);
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        for m in v
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an index needs a manifests list"))?
        {
            manifests.push(digest_of(m)?);
        }
    } else {
        let config = v
            .get("config")
            .ok_or_else(|| invalid("an image manifest needs a config descriptor"))?;
        blobs.push(digest_of(config)?);
        if artifact_type.is_none() {
            let ct = config
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !ct.is_empty()
                && ct != "application/vnd.oci.image.config.v1+json"
                && ct != "application/vnd.docker.container.image.v1+json"
            {
                artifact_type = Some(ct.to_string());
            } else {
                artifact_type = Some(ct.to_string()).filter(|c| !c.is_empty());
            }
        }
        for l in v
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an image manifest needs a layers list"))?
        {
            blobs.push(digest_of(l)?);
        }
    }
    let subject = match v.get("subject") {
        Some(s) => Some(digest_of(s)?),
        None => None,
    };
    Ok(Parsed {
        media_type,
        blobs,
        manifests,
        subject,
        artifact_type,
    })
}
