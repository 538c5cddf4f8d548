//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and incremental hashing.

use sha2::{Digest as _, Sha256, Sha512};
use std::fmt;
use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    pub algorithm: Algorithm,
    pub hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

impl Digest {
    pub fn parse(s: &str) -> Option<Digest> {
        let (alg, hex) = s.split_once(':')?;
        let (algorithm, len) = match alg {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return None,
        };
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        Some(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// Hash a file with the digest's algorithm.
pub fn hash_file(path: &Path, algorithm: Algorithm) -> std::io::Result<Digest> {
    let f = std::fs::File::open(path)?;
    let hex = match algorithm {
        Algorithm::Sha256 => hash_reader::<Sha256>(f)?,
        Algorithm::Sha512 => hash_reader::<Sha512>(f)?,
    };
    Ok(Digest { algorithm, hex })
}

fn hash_reader<H: sha2::Digest>(mut r: impl Read) -> std::io::Result<String> {
    let mut h = H::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_and_rejects() {
        let d = Digest::sha256_of(b"hello");
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(Digest::parse(&d.to_string()), Some(d));
        assert!(Digest::parse("sha256:ABC").is_none());
        assert!(Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e").is_none());
        assert!(Digest::parse(&format!("sha256:{}", "G".repeat(64))).is_none());
    }
}
