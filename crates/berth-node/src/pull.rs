//! A task's images: each distinct one pulled once, all at the same time, with the
//! credentials the binary hands the node; then their digests (or the first failure) in
//! the task record.

use crate::Node;
use berth_image::ImageRef;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A task's images by name: pulled, or why not.
pub(crate) type Images = HashMap<String, Result<berth_image::Pulled, String>>;

impl Node {
    /// Pull the images of `defs` (the task's container definitions).
    pub(crate) async fn pull_images(&self, defs: &[Value], account: &str, region: &str) -> Images {
        // Pull each distinct image once, all at the same time.
        let mut images: Images = HashMap::new();
        let mut pulls = vec![];
        for def in defs {
            let name = def["image"].as_str().unwrap_or_default().to_string();
            if images.contains_key(&name) || pulls.iter().any(|(n, _)| n == &name) {
                continue;
            }
            let puller = self.puller.clone();
            let auth = self.registry_auth.clone();
            let (account, region) = (account.to_string(), region.to_string());
            let n = name.clone();
            pulls.push((
                name,
                tokio::spawn(async move {
                    let r = ImageRef::parse(&n).map_err(|e| e.to_string())?;
                    let creds = auth(&r, &account, &region);
                    puller
                        .pull(&r, creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str())))
                        .await
                        .map_err(|e| e.to_string())
                }),
            ));
        }
        for (name, h) in pulls {
            let r = h.await.map_err(|e| e.to_string()).and_then(|r| r);
            images.insert(name, r);
        }
        images
    }

    /// Record the end of the pulls and each container's image digest; Err is the first
    /// failure, the task's stopped reason.
    pub(crate) async fn record_pulls(
        self: &Arc<Self>,
        key: &str,
        images: &Images,
    ) -> Result<(), String> {
        let now = self.clock.now();
        let mut failed: Option<String> = None;
        let digests: HashMap<String, String> = images
            .iter()
            .filter_map(|(n, r)| {
                r.as_ref()
                    .ok()
                    .map(|p| (n.clone(), p.manifest_digest.clone()))
            })
            .collect();
        for (name, r) in images {
            if let Err(e) = r {
                failed.get_or_insert(format!("CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref {name}: {e}"));
            }
        }
        let failed_c = failed.clone();
        self.update_async(key, move |t| {
            t["pullStoppedAt"] = json!(now);
            for c in t["containers"].as_array_mut().into_iter().flatten() {
                let image = c["image"].as_str().unwrap_or_default().to_string();
                if let Some(d) = digests.get(&image) {
                    c["imageDigest"] = json!(d);
                }
                if let Some(f) = &failed_c {
                    c["reason"] = json!(f);
                }
            }
            true
        })
        .await;
        match failed {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}
