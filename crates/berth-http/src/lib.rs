//! HTTP pieces shared by the handlers that stream their bodies (the registry's `/v2/` and
//! S3): one boxed body type, a file streamed as a body, and `Range` headers; and, in
//! [`tls`], TLS for Berth's outgoing clients.

pub mod tls;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` within `size`: the first and last
/// byte served, or None when the range cannot be satisfied.
pub fn parse_range(h: &str, size: u64) -> Option<(u64, u64)> {
    let spec = h.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (size.checked_sub(n.min(size))?, size.checked_sub(1)?)
    } else {
        let s: u64 = a.parse().ok()?;
        let e: u64 = if b.is_empty() {
            size.checked_sub(1)?
        } else {
            b.parse::<u64>().ok()?.min(size.checked_sub(1)?)
        };
        (s, e)
    };
    (start <= end && end < size).then_some((start, end))
}

/// Run blocking work (a file read, a page-cache write, a wait for another thread or a
/// remote store) from async code without stalling the other connections on this worker:
/// on a multi-thread runtime they move to another worker meanwhile.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// How much of a file one frame carries.
const FILE_CHUNK: usize = 1 << 20;

/// `len` bytes of a file from `start`, streamed in chunks. Each chunk is read straight
/// into the buffer hyper sends: no staging buffer and no copy into the frame, two
/// user-space copies a byte fewer than through tokio's file.
pub struct FileBody {
    file: std::fs::File,
    offset: u64,
    remaining: u64,
}

impl FileBody {
    pub async fn open(path: &std::path::Path, start: u64, len: u64) -> std::io::Result<Self> {
        Ok(FileBody {
            file: std::fs::File::open(path)?,
            offset: start,
            remaining: len,
        })
    }

    /// Read the next chunk at `offset` into a fresh buffer.
    fn read_chunk(&self) -> std::io::Result<Bytes> {
        use std::os::fd::AsRawFd;
        let want = (FILE_CHUNK as u64).min(self.remaining) as usize;
        let mut buf = bytes::BytesMut::with_capacity(want);
        // SAFETY: pread writes at most `want` bytes into the spare capacity, which holds
        // `want`; only the `n` bytes it reports written are then counted as initialized.
        let n = unsafe {
            libc::pread(
                self.file.as_raw_fd(),
                buf.spare_capacity_mut().as_mut_ptr().cast(),
                want,
                self.offset as libc::off_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel initialized the first `n` bytes.
        unsafe { buf.set_len(n as usize) };
        Ok(buf.freeze())
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let chunk = match blocking(|| self.read_chunk()) {
            Ok(c) => c,
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        if chunk.is_empty() {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shorter than recorded",
            ))));
        }
        self.offset += chunk.len() as u64;
        self.remaining -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-500", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=9-1", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }

    /// A range of a file spanning several chunks comes back byte for byte, and a file
    /// shorter than the length asked for ends in an error, not a short body.
    #[tokio::test]
    async fn file_body_streams_ranges() {
        let path = std::env::temp_dir().join(format!("berth-http-{}", std::process::id()));
        let data: Vec<u8> = (0..(FILE_CHUNK * 2 + 777))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let (start, len) = (1000u64, (FILE_CHUNK + 5000) as u64);
        let body = FileBody::open(&path, start, len).await.unwrap();
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], &data[start as usize..(start + len) as usize]);
        let short = FileBody::open(&path, 0, data.len() as u64 + 1)
            .await
            .unwrap();
        let err = short.collect().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        std::fs::remove_file(&path).unwrap();
    }
}
