//! berth-image: container images on the node's disk. Today: unpacking one OCI layer into
//! a directory that overlayfs can use as a lower layer. (Pulling, the shared content
//! store and per-container root filesystems build on this in the runtime issue.)

pub mod unpack;

pub use unpack::{unpack_layer, Compression, UnpackError, Unpacked};
