//! berth-image: container images on the node's disk. `pull` fetches an image from any
//! OCI distribution registry (plain HTTP on loopback, HTTPS elsewhere; basic credentials or
//! bearer tokens) into a content store of verified blobs;
//! `unpack` turns each layer, once, into a directory overlayfs can use as a lower layer.

mod auth;
pub mod pull;
mod transport;
pub mod unpack;

pub use pull::{ContentStore, ImageRef, PullError, Pulled, Puller, PullerOptions};
pub use transport::{default_scheme, Scheme};
pub use unpack::{unpack_layer, Compression, UnpackError, Unpacked};
