//! berth-image: container images on the node's disk. `pull` fetches an image from any
//! OCI distribution registry (plain HTTP for now) into a content store of verified blobs;
//! `unpack` turns each layer, once, into a directory overlayfs can use as a lower layer.

pub mod pull;
pub mod unpack;

pub use pull::{ContentStore, ImageRef, PullError, Pulled, Puller};
pub use unpack::{unpack_layer, Compression, UnpackError, Unpacked};
