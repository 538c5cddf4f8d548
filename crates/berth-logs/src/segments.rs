//! Log events on disk: append-only segment files, one directory per stream.
//!
//! Layout: `root/{account}/{region}/{hex(group)}/{hex(stream)}/00000000.seg`, the next
//! segment begun once the current one holds 64 MiB. Each event is one line,
//! `{"t":<timestamp ms>,"i":<ingestion time ms>,"m":"<message>"}\n`, appended with one
//! write(2) on an O_APPEND descriptor, so several processes (the server and task
//! supervisors) may append to one stream without interleaving. The JSON encoding of the
//! message escapes every `"`, so the bytes `{"t":` only ever begin an event: a reader that
//! meets a torn line (a crash mid-write) finds the next event inside it.
//!
//! A position in a stream (`Pos`) is a segment number and a byte offset: the boundary
//! between two events. Readers stop before a last line that has no newline yet (a write
//! in progress), so every position they hand out is such a boundary.
//!
//! `EventStore` is what the service sees; `FsEventStore` is the local filesystem
//! implementation, and an object store can implement the same trait.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// A segment is closed, and the next one begun, once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// The largest message `StreamAppender::append` stores: AWS's 262,144-byte event size
/// less its 26 bytes of per-event overhead. Longer messages are truncated.
pub const MAX_APPENDED_MESSAGE: usize = 262_144 - 26;
const CHUNK: usize = 64 << 10;
const SEGMENT_SUFFIX: &str = ".seg";

/// A boundary between two events of a stream: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub segment: u32,
    pub offset: u64,
}

/// One event as stored, with where it starts and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub timestamp: i64,
    pub ingestion_time: i64,
    pub message: String,
    pub start: Pos,
    pub end: Pos,
}

/// What the segment files say about a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub stored_bytes: u64,
    /// Timestamp of the first stored event (the oldest, when the stream is in time order).
    pub first_event: Option<i64>,
    /// Timestamp and ingestion time of the last stored event.
    pub last_event: Option<i64>,
    pub last_ingestion: Option<i64>,
    /// The boundary after the last complete event.
    pub end: Pos,
}

/// Names one stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamRef<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub group: &'a str,
    pub stream: &'a str,
}

pub type EventIter = Box<dyn Iterator<Item = io::Result<StoredEvent>> + Send>;

/// The event store as the Logs service uses it.
pub trait EventStore: Send + Sync {
    /// Append `events` (timestamp, message) in order, all stamped with `ingestion_ms`, and
    /// make them durable before returning. Returns the boundary after them.
    fn append(&self, s: &StreamRef, events: &[(i64, &str)], ingestion_ms: i64) -> io::Result<Pos>;
    /// Events from `from` (the stream's start if None) onwards, in stored order.
    fn forward(&self, s: &StreamRef, from: Option<Pos>) -> io::Result<EventIter>;
    /// Events before `before` (the stream's end if None), newest first.
    fn backward(&self, s: &StreamRef, before: Option<Pos>) -> io::Result<EventIter>;
    fn stats(&self, s: &StreamRef) -> io::Result<StreamStats>;
    /// Bytes stored for every stream of a group.
    fn group_bytes(&self, account: &str, region: &str, group: &str) -> io::Result<u64>;
    /// Make an empty stream: data left from an earlier stream of the same name (a crash
    /// between deleting its record and its data) is removed first.
    fn create_stream(&self, s: &StreamRef) -> io::Result<()>;
    fn delete_stream(&self, s: &StreamRef) -> io::Result<()>;
    /// Remove every stream of a group (also used before a group of the same name is made).
    fn delete_group(&self, account: &str, region: &str, group: &str) -> io::Result<()>;
    /// Delete closed segments whose every event is older than `cutoff_ms`; returns how
    /// many segments were deleted. The segment being appended to is never deleted.
    fn expire(&self, s: &StreamRef, cutoff_ms: i64) -> io::Result<usize>;
    /// The directory a local writer (the task supervisor) opens with `StreamAppender`;
    /// None for stores without one.
    fn local_dir(&self, s: &StreamRef) -> Option<PathBuf>;
}

/// Segment files under a root directory.
pub struct FsEventStore {
    root: PathBuf,
    /// Largest timestamp of closed segments (they never change), so retention sweeps
    /// read each closed segment once.
    sealed_max: Mutex<HashMap<PathBuf, i64>>,
}

impl FsEventStore {
    pub fn new(root: PathBuf) -> Self {
        let store = FsEventStore {
            root,
            sealed_max: Mutex::new(HashMap::new()),
        };
        // Directories deleted by an earlier run that stopped before it finished.
        let _ = fs::remove_dir_all(store.trash());
        store
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn trash(&self) -> PathBuf {
        self.root.join(".trash")
    }

    pub fn group_dir(&self, account: &str, region: &str, group: &str) -> PathBuf {
        self.root
            .join(safe_component(account))
            .join(safe_component(region))
            .join(name_component(group))
    }

    pub fn stream_dir(&self, s: &StreamRef) -> PathBuf {
        self.group_dir(s.account, s.region, s.group)
            .join(name_component(s.stream))
    }

    /// Move a directory out of the way (atomically), then delete it.
    fn remove_tree(&self, dir: &Path) -> io::Result<()> {
        let trash = self.trash();
        fs::create_dir_all(&trash)?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let target = trash.join(format!(
            "{}-{}-{}",
            std::process::id(),
            now_ms_system(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::rename(dir, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        self.forget(dir);
        fs::remove_dir_all(&target)
    }

    fn forget(&self, dir: &Path) {
        let mut cache = self.sealed_max.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|k, _| !k.starts_with(dir));
    }
}

impl EventStore for FsEventStore {
    fn append(&self, s: &StreamRef, events: &[(i64, &str)], ingestion_ms: i64) -> io::Result<Pos> {
        let mut a = StreamAppender::open(&self.stream_dir(s))?;
        let end = a.append_batch(events, ingestion_ms)?;
        a.sync()?;
        Ok(end)
    }

    fn forward(&self, s: &StreamRef, from: Option<Pos>) -> io::Result<EventIter> {
        Ok(Box::new(Forward::new(
            self.stream_dir(s),
            from.unwrap_or_default(),
        )?))
    }

    fn backward(&self, s: &StreamRef, before: Option<Pos>) -> io::Result<EventIter> {
        Ok(Box::new(Backward::new(self.stream_dir(s), before)?))
    }

    fn stats(&self, s: &StreamRef) -> io::Result<StreamStats> {
        let dir = self.stream_dir(s);
        let mut stats = StreamStats::default();
        for seg in list_segments(&dir)? {
            if let Ok(m) = fs::metadata(segment_path(&dir, seg)) {
                stats.stored_bytes += m.len();
            }
        }
        if stats.stored_bytes == 0 {
            return Ok(stats);
        }
        if let Some(first) = self.forward(s, None)?.next() {
            stats.first_event = Some(first?.timestamp);
        }
        if let Some(last) = self.backward(s, None)?.next() {
            let last = last?;
            stats.last_event = Some(last.timestamp);
            stats.last_ingestion = Some(last.ingestion_time);
            stats.end = last.end;
        }
        Ok(stats)
    }

    fn group_bytes(&self, account: &str, region: &str, group: &str) -> io::Result<u64> {
        let dir = self.group_dir(account, region, group);
        let mut total = 0;
        let streams = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for stream in streams {
            let stream = stream?.path();
            for seg in list_segments(&stream)? {
                if let Ok(m) = fs::metadata(segment_path(&stream, seg)) {
                    total += m.len();
                }
            }
        }
        Ok(total)
    }

    fn create_stream(&self, s: &StreamRef) -> io::Result<()> {
        let dir = self.stream_dir(s);
        if dir.exists() {
            self.remove_tree(&dir)?;
        }
        create_dir_durable(&dir)
    }

    fn delete_stream(&self, s: &StreamRef) -> io::Result<()> {
        self.remove_tree(&self.stream_dir(s))
    }

    fn delete_group(&self, account: &str, region: &str, group: &str) -> io::Result<()> {
        self.remove_tree(&self.group_dir(account, region, group))
    }

    fn expire(&self, s: &StreamRef, cutoff_ms: i64) -> io::Result<usize> {
        let dir = self.stream_dir(s);
        let segs = list_segments(&dir)?;
        let mut deleted = 0;
        // The last segment may still be appended to: never deleted.
        for &seg in segs.iter().take(segs.len().saturating_sub(1)) {
            let path = segment_path(&dir, seg);
            let cached = {
                let cache = self.sealed_max.lock().unwrap_or_else(|e| e.into_inner());
                cache.get(&path).copied()
            };
            let max = match cached {
                Some(m) => m,
                None => {
                    let m = segment_max_timestamp(&path)?;
                    let mut cache = self.sealed_max.lock().unwrap_or_else(|e| e.into_inner());
                    cache.insert(path.clone(), m);
                    m
                }
            };
            if max < cutoff_ms {
                match fs::remove_file(&path) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                let mut cache = self.sealed_max.lock().unwrap_or_else(|e| e.into_inner());
                cache.remove(&path);
            }
        }
        if deleted > 0 {
            sync_dir(&dir)?;
        }
        Ok(deleted)
    }

    fn local_dir(&self, s: &StreamRef) -> Option<PathBuf> {
        Some(self.stream_dir(s))
    }
}

/// The largest timestamp in a segment (i64::MIN if it holds no event).
fn segment_max_timestamp(path: &Path) -> io::Result<i64> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(i64::MAX),
        Err(e) => return Err(e),
    };
    let mut r = BufReader::with_capacity(CHUNK, file);
    let mut buf = Vec::new();
    let mut max = i64::MIN;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(max);
        }
        if let Some(line) = buf.strip_suffix(b"\n") {
            if let Some(l) = parse_line(line) {
                max = max.max(l.t);
            }
        }
    }
}

/// Appends to one stream's current segment. Several appenders (in several processes) may
/// append to one stream at once: each line is one write(2) on an O_APPEND descriptor.
pub struct StreamAppender {
    dir: PathBuf,
    file: File,
    segment: u32,
    /// The segment's size as of our last write (others may have appended since).
    size: u64,
    buf: Vec<u8>,
}

impl StreamAppender {
    /// Open for appending the stream whose directory is `dir` (created if missing).
    pub fn open(dir: &Path) -> io::Result<StreamAppender> {
        create_dir_durable(dir)?;
        let segment = list_segments(dir)?.last().copied().unwrap_or(0);
        let (file, size) = open_segment(dir, segment)?;
        Ok(StreamAppender {
            dir: dir.to_path_buf(),
            file,
            segment,
            size,
            buf: Vec::with_capacity(256),
        })
    }

    /// Append one event; ingestionTime = now. Does not fsync. Messages longer than
    /// `MAX_APPENDED_MESSAGE` bytes are truncated (at a character boundary).
    pub fn append(&mut self, timestamp_ms: i64, message: &str) -> io::Result<()> {
        let message = truncate_utf8(message, MAX_APPENDED_MESSAGE);
        self.buf.clear();
        encode_line(&mut self.buf, timestamp_ms, now_ms_system(), message);
        self.write_buf().map(|_| ())
    }

    /// Append events (timestamp, message) with one write(2), so they stay together; no
    /// truncation (the caller enforces its limits). Does not fsync. Returns the boundary
    /// after them.
    pub fn append_batch(&mut self, events: &[(i64, &str)], ingestion_ms: i64) -> io::Result<Pos> {
        self.buf.clear();
        for (t, m) in events {
            encode_line(&mut self.buf, *t, ingestion_ms, m);
        }
        if self.buf.is_empty() {
            return Ok(Pos {
                segment: self.segment,
                offset: self.size,
            });
        }
        self.write_buf()
    }

    /// fdatasync the current segment.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn write_buf(&mut self) -> io::Result<Pos> {
        if self.size >= SEGMENT_BYTES {
            self.roll()?;
        }
        let n = self.file.write(&self.buf)?;
        if n < self.buf.len() {
            // Only a failing disk writes short to a regular file: finish the line.
            self.file.write_all(&self.buf[n..])?;
        }
        // After an O_APPEND write the descriptor's offset is the end of what we wrote.
        self.size = self.file.stream_position()?;
        Ok(Pos {
            segment: self.segment,
            offset: self.size,
        })
    }

    /// Move on to the newest segment, or begin the next one if the newest is full.
    fn roll(&mut self) -> io::Result<()> {
        // Before leaving a segment, make what we wrote to it durable.
        self.file.sync_data()?;
        let newest = list_segments(&self.dir)?
            .last()
            .copied()
            .unwrap_or(0)
            .max(self.segment);
        let (file, size) = open_segment(&self.dir, newest)?;
        let (segment, file, size) = if size >= SEGMENT_BYTES {
            let (f, s) = open_segment(&self.dir, newest + 1)?;
            (newest + 1, f, s)
        } else {
            (newest, file, size)
        };
        self.segment = segment;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

/// `{"t":..,"i":..,"m":".."}\n`
fn encode_line(buf: &mut Vec<u8>, t: i64, i: i64, m: &str) {
    buf.extend_from_slice(b"{\"t\":");
    buf.extend_from_slice(t.to_string().as_bytes());
    buf.extend_from_slice(b",\"i\":");
    buf.extend_from_slice(i.to_string().as_bytes());
    buf.extend_from_slice(b",\"m\":");
    serde_json::to_writer(&mut *buf, m).expect("strings serialize");
    buf.extend_from_slice(b"}\n");
}

#[derive(serde::Deserialize)]
struct Line {
    t: i64,
    i: i64,
    m: String,
}

/// One line (without its newline). A torn line (an interrupted write followed by a later
/// one) still yields the event that begins inside it.
fn parse_line(line: &[u8]) -> Option<Line> {
    if line.is_empty() {
        return None;
    }
    if let Ok(l) = serde_json::from_slice::<Line>(line) {
        return Some(l);
    }
    const START: &[u8] = b"{\"t\":";
    let at = line
        .windows(START.len())
        .rposition(|w| w == START)
        .filter(|&i| i > 0)?;
    serde_json::from_slice::<Line>(&line[at..]).ok()
}

pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn now_ms_system() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn segment_path(dir: &Path, seg: u32) -> PathBuf {
    dir.join(format!("{seg:08}{SEGMENT_SUFFIX}"))
}

/// The stream's segment numbers, ascending (none if the directory does not exist).
fn list_segments(dir: &Path) -> io::Result<Vec<u32>> {
    let entries = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = vec![];
    for e in entries {
        let name = e?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_suffix(SEGMENT_SUFFIX) {
            if n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()) {
                out.push(n.parse().expect("eight digits"));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Open (creating if needed) a segment for appending; returns it and its size.
fn open_segment(dir: &Path, seg: u32) -> io::Result<(File, u64)> {
    let path = segment_path(dir, seg);
    match OpenOptions::new().append(true).create_new(true).open(&path) {
        Ok(f) => {
            // A new directory entry is durable only once the directory is synced.
            sync_dir(dir)?;
            Ok((f, 0))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let f = OpenOptions::new().append(true).open(&path)?;
            let size = f.metadata()?.len();
            Ok((f, size))
        }
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// create_dir_all, then sync the parent of every directory it made.
fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = vec![];
    let mut d = dir;
    while !d.exists() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    fs::create_dir_all(dir)?;
    for m in missing.iter().rev() {
        if let Some(p) = m.parent() {
            sync_dir(p)?;
        }
    }
    Ok(())
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// A group or stream name as one directory name: its UTF-8 bytes in hex, or, for names
/// whose hex would pass 240 characters (file names end at 255 bytes), the hex of the
/// first 80 bytes, a dot and the SHA-256 of the whole name (no plain hex name has a dot).
pub fn name_component(name: &str) -> String {
    if name.len() <= 120 {
        return to_hex(name.as_bytes());
    }
    let digest = Sha256::digest(name.as_bytes());
    format!("{}.{}", to_hex(&name.as_bytes()[..80]), to_hex(&digest))
}

/// Account and region as directory names: as they are when made of letters, digits, `-`
/// and `_` (every real account and region), otherwise `%` and their hex, so a region taken
/// from a request can never name `..` or hold a slash.
pub fn safe_component(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        s.to_string()
    } else {
        format!("%{}", to_hex(s.as_bytes()))
    }
}

/// Reads forward through a stream's segments.
struct Forward {
    dir: PathBuf,
    /// Segments still to read, ascending, with the offset to start each at.
    pending: std::collections::VecDeque<(u32, u64)>,
    cur: Option<(u32, BufReader<File>, u64)>,
    buf: Vec<u8>,
}

impl Forward {
    fn new(dir: PathBuf, from: Pos) -> io::Result<Self> {
        let pending = list_segments(&dir)?
            .into_iter()
            .filter(|&s| s >= from.segment)
            .map(|s| (s, if s == from.segment { from.offset } else { 0 }))
            .collect();
        Ok(Forward {
            dir,
            pending,
            cur: None,
            buf: Vec::new(),
        })
    }

    fn next_event(&mut self) -> io::Result<Option<StoredEvent>> {
        loop {
            if self.cur.is_none() {
                let Some((seg, off)) = self.pending.pop_front() else {
                    return Ok(None);
                };
                let mut f = match File::open(segment_path(&self.dir, seg)) {
                    Ok(f) => f,
                    // Deleted by retention since we listed it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                f.seek(SeekFrom::Start(off))?;
                self.cur = Some((seg, BufReader::with_capacity(CHUNK, f), off));
            }
            let (seg, reader, off) = self.cur.as_mut().expect("current segment");
            self.buf.clear();
            let n = reader.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                self.cur = None;
                continue;
            }
            if self.buf.last() != Some(&b'\n') {
                if self.pending.is_empty() {
                    // The end of the stream, being written: not an event yet.
                    return Ok(None);
                }
                // A torn tail of an older segment.
                self.cur = None;
                continue;
            }
            let start = Pos {
                segment: *seg,
                offset: *off,
            };
            *off += n as u64;
            let end = Pos {
                segment: *seg,
                offset: *off,
            };
            if let Some(l) = parse_line(&self.buf[..n - 1]) {
                return Ok(Some(StoredEvent {
                    timestamp: l.t,
                    ingestion_time: l.i,
                    message: l.m,
                    start,
                    end,
                }));
            }
        }
    }
}

impl Iterator for Forward {
    type Item = io::Result<StoredEvent>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_event() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.pending.clear();
                self.cur = None;
                Some(Err(e))
            }
        }
    }
}

/// Reads one segment backwards, line by line.
struct RevSegment {
    seg: u32,
    file: File,
    /// The bytes `[buf_start, end)` of the file, ending with a newline (or empty).
    buf: Vec<u8>,
    buf_start: u64,
    end: u64,
}

impl RevSegment {
    /// `limit`: read only the bytes before it. A last line without its newline (a write in
    /// progress) is left out.
    fn new(seg: u32, file: File, limit: u64) -> io::Result<Self> {
        let size = file.metadata()?.len().min(limit);
        let mut r = RevSegment {
            seg,
            file,
            buf: Vec::new(),
            buf_start: size,
            end: size,
        };
        loop {
            if let Some(i) = r.buf.iter().rposition(|&b| b == b'\n') {
                r.buf.truncate(i + 1);
                r.end = r.buf_start + i as u64 + 1;
                return Ok(r);
            }
            if r.buf_start == 0 {
                r.buf.clear();
                r.end = 0;
                return Ok(r);
            }
            r.extend()?;
        }
    }

    /// Read the chunk before `buf_start` into the front of `buf`.
    fn extend(&mut self) -> io::Result<()> {
        let want = CHUNK.max(self.buf.len()) as u64;
        let new_start = self.buf_start.saturating_sub(want);
        let mut chunk = vec![0u8; (self.buf_start - new_start) as usize];
        self.file.read_exact_at(&mut chunk, new_start)?;
        chunk.extend_from_slice(&self.buf);
        self.buf = chunk;
        self.buf_start = new_start;
        Ok(())
    }

    /// The line before `end` (its start offset and bytes, without the newline).
    fn prev_line(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        loop {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let body = self.buf.len() - 1;
            if let Some(i) = self.buf[..body].iter().rposition(|&b| b == b'\n') {
                let line = self.buf[i + 1..body].to_vec();
                let start = self.buf_start + i as u64 + 1;
                self.buf.truncate(i + 1);
                self.end = start;
                return Ok(Some((start, line)));
            }
            if self.buf_start == 0 {
                let line = self.buf[..body].to_vec();
                self.buf.clear();
                self.end = 0;
                return Ok(Some((0, line)));
            }
            self.extend()?;
        }
    }
}

/// Reads backward through a stream's segments.
struct Backward {
    dir: PathBuf,
    /// Segments still to read, descending, with the offset to stop each at.
    pending: Vec<(u32, u64)>,
    cur: Option<RevSegment>,
}

impl Backward {
    fn new(dir: PathBuf, before: Option<Pos>) -> io::Result<Self> {
        let mut pending: Vec<(u32, u64)> = list_segments(&dir)?
            .into_iter()
            .filter(|&s| before.is_none_or(|b| s <= b.segment))
            .map(|s| match before {
                Some(b) if b.segment == s => (s, b.offset),
                _ => (s, u64::MAX),
            })
            .collect();
        // Popped from the back: the newest first.
        pending.sort_unstable();
        Ok(Backward {
            dir,
            pending,
            cur: None,
        })
    }

    fn next_event(&mut self) -> io::Result<Option<StoredEvent>> {
        loop {
            if self.cur.is_none() {
                let Some((seg, limit)) = self.pending.pop() else {
                    return Ok(None);
                };
                let f = match File::open(segment_path(&self.dir, seg)) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                self.cur = Some(RevSegment::new(seg, f, limit)?);
            }
            let r = self.cur.as_mut().expect("current segment");
            let end = r.end;
            match r.prev_line()? {
                None => self.cur = None,
                Some((start, line)) => {
                    if let Some(l) = parse_line(&line) {
                        return Ok(Some(StoredEvent {
                            timestamp: l.t,
                            ingestion_time: l.i,
                            message: l.m,
                            start: Pos {
                                segment: r.seg,
                                offset: start,
                            },
                            end: Pos {
                                segment: r.seg,
                                offset: end,
                            },
                        }));
                    }
                }
            }
        }
    }
}

impl Iterator for Backward {
    type Item = io::Result<StoredEvent>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_event() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.pending.clear();
                self.cur = None;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sref<'a>(stream: &'a str) -> StreamRef<'a> {
        StreamRef {
            account: "000000000000",
            region: "us-east-1",
            group: "/ecs/web",
            stream,
        }
    }

    fn all(it: EventIter) -> Vec<StoredEvent> {
        it.map(|e| e.unwrap()).collect()
    }

    #[test]
    fn appends_and_reads_both_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FsEventStore::new(tmp.path().to_path_buf());
        let s = sref("app/web/1");
        let msgs: Vec<String> = (0..100)
            .map(|i| format!("line {i} with \"quotes\" {{\"t\":1}} and ünïcode\ttab"))
            .collect();
        let evs: Vec<(i64, &str)> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| (1000 + i as i64, m.as_str()))
            .collect();
        store.append(&s, &evs[..40], 5).unwrap();
        let end = store.append(&s, &evs[40..], 6).unwrap();
        let fwd = all(store.forward(&s, None).unwrap());
        assert_eq!(fwd.len(), 100);
        assert_eq!(fwd[7].message, msgs[7]);
        assert_eq!(fwd[7].timestamp, 1007);
        assert_eq!(fwd[39].ingestion_time, 5);
        assert_eq!(fwd[40].ingestion_time, 6);
        assert_eq!(fwd[99].end, end);
        for w in fwd.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        let mut back = all(store.backward(&s, None).unwrap());
        back.reverse();
        assert_eq!(back, fwd);
        // From a position, both ways.
        let mid = fwd[50].start;
        assert_eq!(all(store.forward(&s, Some(mid)).unwrap())[0], fwd[50]);
        assert_eq!(all(store.backward(&s, Some(mid)).unwrap())[0], fwd[49]);
        let st = store.stats(&s).unwrap();
        assert_eq!(st.first_event, Some(1000));
        assert_eq!(st.last_event, Some(1099));
        assert_eq!(st.last_ingestion, Some(6));
        assert_eq!(st.end, end);
        assert!(st.stored_bytes > 0);
        assert_eq!(
            store
                .group_bytes("000000000000", "us-east-1", "/ecs/web")
                .unwrap(),
            st.stored_bytes
        );
        // The layout is the documented one.
        let dir = tmp
            .path()
            .join("000000000000/us-east-1")
            .join(to_hex(b"/ecs/web"))
            .join(to_hex(b"app/web/1"));
        assert!(dir.join("00000000.seg").is_file());
    }

    #[test]
    fn an_empty_or_missing_stream_reads_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FsEventStore::new(tmp.path().to_path_buf());
        let s = sref("nothing");
        assert!(all(store.forward(&s, None).unwrap()).is_empty());
        assert!(all(store.backward(&s, None).unwrap()).is_empty());
        assert_eq!(store.stats(&s).unwrap(), StreamStats::default());
        store.create_stream(&s).unwrap();
        assert!(all(store.backward(&s, None).unwrap()).is_empty());
    }

    #[test]
    fn appender_truncates_long_messages_and_skips_partial_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let mut a = StreamAppender::open(&dir).unwrap();
        let long = "é".repeat(200_000); // 400,000 bytes
        a.append(1, &long).unwrap();
        a.append(2, "short").unwrap();
        a.sync().unwrap();
        // A write in progress at the end: not an event yet.
        let seg = dir.join("00000000.seg");
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"t\":3,\"i\":3,\"m\":\"half").unwrap();
        let fwd: Vec<_> = Forward::new(dir.clone(), Pos::default())
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(fwd.len(), 2);
        assert!(fwd[0].message.len() <= MAX_APPENDED_MESSAGE);
        assert!(fwd[0].message.len() > MAX_APPENDED_MESSAGE - 2);
        assert_eq!(fwd[1].message, "short");
        let back: Vec<_> = Backward::new(dir.clone(), None)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].message, "short");
        assert_eq!(back[1].message.len(), fwd[0].message.len());
        // After a crash the next writer appends behind the torn line; the event is kept.
        let mut a = StreamAppender::open(&dir).unwrap();
        a.append(4, "after crash").unwrap();
        let fwd: Vec<_> = Forward::new(dir.clone(), Pos::default())
            .unwrap()
            .map(|e| e.unwrap().message)
            .collect();
        assert_eq!(fwd.last().unwrap(), "after crash");
        assert_eq!(fwd.len(), 3);
    }

    #[test]
    fn two_appenders_never_interleave() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let threads: Vec<_> = (0..4)
            .map(|w| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let mut a = StreamAppender::open(&dir).unwrap();
                    let msg = format!("{w}").repeat(5000);
                    for i in 0..200 {
                        a.append(i, &msg).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let evs: Vec<_> = Forward::new(dir, Pos::default())
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(evs.len(), 800);
        for e in evs {
            assert_eq!(e.message.len(), 5000);
            let c = e.message.as_bytes()[0];
            assert!(e.message.bytes().all(|b| b == c));
        }
    }

    #[test]
    fn rolls_segments_and_expires_closed_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FsEventStore::new(tmp.path().to_path_buf());
        let s = sref("big");
        let dir = store.stream_dir(&s);
        let msg = "x".repeat(1 << 20);
        let mut a = StreamAppender::open(&dir).unwrap();
        // 64 MiB fill the first segment; the rest go to the second.
        for i in 0..70 {
            a.append_batch(&[(i, &msg)], 0).unwrap();
        }
        a.sync().unwrap();
        assert_eq!(list_segments(&dir).unwrap(), vec![0, 1]);
        let fwd = all(store.forward(&s, None).unwrap());
        assert_eq!(fwd.len(), 70);
        assert_eq!(
            fwd[64].start,
            Pos {
                segment: 1,
                offset: 0
            }
        );
        let back = all(store.backward(&s, None).unwrap());
        assert_eq!(back.len(), 70);
        assert_eq!(back[5].timestamp, 64);
        assert_eq!(back[6].timestamp, 63);
        // A reader positioned in a segment that expired moves on to the next.
        assert_eq!(store.expire(&s, 10).unwrap(), 0);
        assert_eq!(store.expire(&s, 64).unwrap(), 1);
        assert_eq!(list_segments(&dir).unwrap(), vec![1]);
        let from_old = all(store.forward(&s, Some(fwd[3].start)).unwrap());
        assert_eq!(from_old.len(), 6);
        // The segment being written is never expired.
        assert_eq!(store.expire(&s, i64::MAX).unwrap(), 0);
        assert_eq!(store.stats(&s).unwrap().first_event, Some(64));
    }

    #[test]
    fn delete_and_recreate_starts_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FsEventStore::new(tmp.path().to_path_buf());
        let s = sref("s");
        store.append(&s, &[(1, "a")], 1).unwrap();
        store.create_stream(&s).unwrap();
        assert!(all(store.forward(&s, None).unwrap()).is_empty());
        store.append(&s, &[(1, "a")], 1).unwrap();
        store
            .delete_group("000000000000", "us-east-1", "/ecs/web")
            .unwrap();
        assert!(all(store.forward(&s, None).unwrap()).is_empty());
        assert!(!store
            .group_dir("000000000000", "us-east-1", "/ecs/web")
            .exists());
    }

    #[test]
    fn names_make_safe_directory_names() {
        assert_eq!(name_component("/a"), "2f61");
        let long = "g".repeat(512);
        let c = name_component(&long);
        assert!(c.len() <= 255 && c.contains('.'));
        assert_ne!(c, name_component(&"g".repeat(511)));
        assert_eq!(safe_component("us-east-1"), "us-east-1");
        assert_eq!(safe_component(".."), "%2e2e");
        assert_eq!(safe_component("a/b"), "%612f62");
    }
}
