//! Unpacking an OCI image layer (a tar stream, plain, gzip or zstd) into an empty
//! directory, in the form overlayfs reads as a lower layer:
//! - a whiteout `.wh.NAME` becomes a 0/0 character device `NAME` (overlayfs' whiteout);
//! - an opaque marker `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
//!
//! Entries never land outside the destination: `..` components are skipped, absolute
//! paths are taken relative to it, and a parent reached through a symlink must resolve
//! inside it (the tar crate's `unpack_in` checks this for regular entries; whiteouts are
//! checked here the same way). Needs root for ownership, device nodes and trusted xattrs.

use std::ffi::CString;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Recognise a layer's compression by its first bytes (media types lie more often).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What one layer held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    /// Entries not unpacked because their path tried to leave the destination.
    pub skipped: u64,
}

#[derive(Debug)]
pub enum UnpackError {
    /// The layer is not a valid (compressed) tar stream.
    Corrupt(String),
    Io(io::Error),
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnpackError::Corrupt(m) => write!(f, "corrupt layer: {m}"),
            UnpackError::Io(e) => write!(f, "unpacking layer: {e}"),
        }
    }
}

impl std::error::Error for UnpackError {}

impl From<io::Error> for UnpackError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::InvalidData
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::InvalidInput => UnpackError::Corrupt(e.to_string()),
            _ => UnpackError::Io(e),
        }
    }
}

/// Unpack the layer read from `layer` into `dest` (an existing, empty directory).
pub fn unpack_layer(layer: impl Read, dest: &Path) -> Result<Unpacked, UnpackError> {
    let mut input = BufReader::with_capacity(256 * 1024, layer);
    let compression = Compression::detect(input.fill_buf()?);
    let stream: Box<dyn Read> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(input)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| UnpackError::Corrupt(format!("zstd: {e}")))?,
        ),
    };
    let dest = dest.canonicalize()?;
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let mut stats = Unpacked::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        stats.entries += 1;
        let path = entry.path()?.into_owned();
        let Some(rel) = relative_inside(&path) else {
            stats.skipped += 1;
            continue;
        };
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == OPAQUE_MARKER {
            let dir = parent_inside(&dest, &rel)?;
            set_xattr(&dir, "trusted.overlay.opaque", b"y")?;
            stats.opaque_dirs += 1;
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let dir = parent_inside(&dest, &rel)?;
            whiteout(&dir.join(hidden))?;
            stats.whiteouts += 1;
        } else if !entry.unpack_in(&dest)? {
            stats.skipped += 1;
        }
    }
    Ok(stats)
}

/// The entry's path relative to the destination, or None if it names a parent directory.
fn relative_inside(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The (created) parent directory of `rel` under `dest`, resolved, and inside `dest`.
fn parent_inside(dest: &Path, rel: &Path) -> Result<PathBuf, UnpackError> {
    let parent = dest.join(rel.parent().unwrap_or(Path::new("")));
    std::fs::create_dir_all(&parent)?;
    let real = parent.canonicalize()?;
    if !real.starts_with(dest) {
        return Err(UnpackError::Corrupt(format!(
            "{} leaves the layer through a symlink",
            rel.display()
        )));
    }
    Ok(real)
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))
}

/// overlayfs' whiteout: a character device with device number 0/0.
fn whiteout(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path)?,
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    let c = cpath(path)?;
    // SAFETY: a valid NUL-terminated path; mknod creates a node or fails.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = cpath(path)?;
    let n = CString::new(name).expect("attribute names have no NUL");
    // SAFETY: valid NUL-terminated path and name, and a value buffer of the given length.
    if unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            eprintln!(
                "SKIPPED: unpacking layers needs root (ownership, device nodes, trusted xattrs)"
            );
        }
        root
    }

    /// A tar with the given (path, kind) entries: kind "dir", "file:CONTENT", "link:TARGET".
    fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(1_700_000_000);
            h.set_uid(0);
            h.set_gid(0);
            if *kind == "dir" {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, io::empty()).unwrap();
            } else if let Some(target) = kind.strip_prefix("link:") {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            } else {
                let content = kind.strip_prefix("file:").unwrap_or("");
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o640);
                h.set_size(content.len() as u64);
                b.append_data(&mut h, path, content.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn raw_tar_with_path(path: &str, content: &str) -> Vec<u8> {
        // tar::Builder refuses `..`; write the header name by hand, as a hostile layer would.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(content.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(content.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn detects_compression() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"usr/"), Compression::None);
    }

    #[test]
    fn unpacks_plain_gzip_and_zstd_layers() {
        if !is_root() {
            return;
        }
        let tar = tar_of(&[
            ("etc", "dir"),
            ("etc/motd", "file:hello"),
            ("bin", "dir"),
            ("bin/sh", "link:busybox"),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(
            &tar[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (label, bytes) in [("plain", tar.clone()), ("gzip", gz), ("zstd", zst)] {
            let dir = tempfile::tempdir().unwrap();
            let stats = unpack_layer(&bytes[..], dir.path()).unwrap();
            assert_eq!(stats.entries, 4, "{label}");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("etc/motd")).unwrap(),
                "hello",
                "{label}"
            );
            let m = std::fs::metadata(dir.path().join("etc/motd")).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o640, "{label}: mode kept");
            assert_eq!(m.mtime(), 1_700_000_000, "{label}: mtime kept");
            assert_eq!(
                std::fs::read_link(dir.path().join("bin/sh")).unwrap(),
                Path::new("busybox"),
                "{label}"
            );
        }
    }

    #[test]
    fn whiteouts_and_opaque_directories_become_overlay_markers() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("etc", "dir"),
            ("etc/.wh.motd", "file:"),
            ("var/cache/.wh..wh..opq", "file:"),
        ]);
        let stats = unpack_layer(&tar[..], dir.path()).unwrap();
        assert_eq!((stats.whiteouts, stats.opaque_dirs), (1, 1));
        let w = std::fs::symlink_metadata(dir.path().join("etc/motd")).unwrap();
        assert!(w.file_type().is_char_device());
        assert_eq!(w.rdev(), 0);
        let mut buf = [0u8; 4];
        let p = cpath(&dir.path().join("var/cache")).unwrap();
        let n = CString::new("trusted.overlay.opaque").unwrap();
        // SAFETY: valid path, name and buffer.
        let len =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(&buf[..len as usize], b"y");
        assert!(
            !dir.path().join("etc/.wh.motd").exists(),
            "the marker itself is not unpacked"
        );
    }

    #[test]
    fn overlayfs_reads_the_layers_as_an_image() {
        if !is_root() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let (l1, l2, upper, work, merged) = ["l1", "l2", "upper", "work", "merged"]
            .map(|d| {
                let p = root.path().join(d);
                std::fs::create_dir(&p).unwrap();
                p
            })
            .into();
        unpack_layer(
            &tar_of(&[
                ("etc/motd", "file:one"),
                ("etc/keep", "file:k"),
                ("cache/old", "file:o"),
            ])[..],
            &l1,
        )
        .unwrap();
        unpack_layer(
            &tar_of(&[
                ("etc/.wh.motd", "file:"),
                ("cache/.wh..wh..opq", "file:"),
                ("cache/new", "file:n"),
            ])[..],
            &l2,
        )
        .unwrap();
        let opts = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            l2.display(),
            l1.display(),
            upper.display(),
            work.display()
        );
        let (src, target, fstype, data) = (
            CString::new("overlay").unwrap(),
            cpath(&merged).unwrap(),
            CString::new("overlay").unwrap(),
            CString::new(opts).unwrap(),
        );
        // SAFETY: valid NUL-terminated arguments; mounts onto our own temporary directory.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            panic!("overlay mount failed: {}", io::Error::last_os_error());
        }
        let seen = (
            merged.join("etc/motd").exists(),
            std::fs::read_to_string(merged.join("etc/keep")).ok(),
            merged.join("cache/old").exists(),
            std::fs::read_to_string(merged.join("cache/new")).ok(),
        );
        // SAFETY: unmounting what we mounted above.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        assert_eq!(seen, (false, Some("k".into()), false, Some("n".into())));
    }

    #[test]
    fn nothing_lands_outside_the_destination() {
        if !is_root() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("layer");
        let outside = root.path().join("outside");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&outside).unwrap();

        let stats = unpack_layer(&raw_tar_with_path("../outside/evil", "x")[..], &dest).unwrap();
        assert_eq!(stats.skipped, 1);
        assert!(!outside.join("evil").exists());

        // A symlink to the outside, then a file and a whiteout through it.
        let tar = tar_of(&[("esc", "link:../outside"), ("esc/planted", "file:x")]);
        assert!(unpack_layer(&tar[..], &dest).is_err());
        assert!(!outside.join("planted").exists());
        let tar = tar_of(&[("esc2", "link:../outside"), ("esc2/.wh.victim", "file:")]);
        std::fs::write(outside.join("victim"), "keep me").unwrap();
        assert!(unpack_layer(&tar[..], &dest).is_err());
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "keep me"
        );

        // Absolute paths are taken relative to the layer.
        unpack_layer(&raw_tar_with_path("/abs/file", "a")[..], &dest).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("abs/file")).unwrap(), "a");
    }

    #[test]
    fn a_corrupt_layer_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut gz = vec![0x1f, 0x8b, 8, 0];
        gz.extend_from_slice(b"definitely not deflate");
        assert!(matches!(
            unpack_layer(&gz[..], dir.path()),
            Err(UnpackError::Corrupt(_)) | Err(UnpackError::Io(_))
        ));
        let truncated = &tar_of(&[("a", "file:0123456789")])[..600];
        assert!(unpack_layer(truncated, dir.path()).is_err());
    }
}
