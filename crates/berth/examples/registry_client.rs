//! The registry benchmark's client: a plain HTTP/1.1 client on one keep-alive connection,
//! with the blob already in memory, so the client is not what is measured. curl is:
//! `curl --data-binary @50MiB` into a server that only reads takes about 70 ms here, as
//! long as writing and fsyncing the same bytes. `bench/registry.py` runs it against Berth
//! and docker-registry alike, and measures the limit (write + fsync) with it too.
//!
//! Each mode loads its input first, then prints the seconds the timed part took:
//!   registry_client mono    URL REPO FILE DIGEST         POST, then one PUT with every byte
//!   registry_client chunked URL REPO FILE DIGEST PARTS   POST, PARTS x PATCH, then PUT
//!   registry_client get     URL REPO DIGEST              GET, the body read and dropped
//!   registry_client fsync   FILE OUT                     write FILE's bytes to OUT, fsync
//!
//! With CLIENT_CPU set, it also prints (to stderr) the CPU time the timed part used.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

struct Conn {
    host: String,
    reader: BufReader<TcpStream>,
}

struct Reply {
    status: u16,
    location: Option<String>,
}

impl Conn {
    fn open(url: &str) -> Conn {
        let host = url
            .strip_prefix("http://")
            .expect("URL starts with http://")
            .trim_end_matches('/')
            .to_string();
        let stream = TcpStream::connect(&host).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            host,
            reader: BufReader::with_capacity(1 << 20, stream),
        }
    }

    /// Send one request; the body goes to the socket straight from `body`.
    fn send(&mut self, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes()).expect("send head");
        s.write_all(body).expect("send body");
    }

    /// Read one reply; its body is read and dropped.
    fn reply(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let (mut length, mut location) = (None, None);
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').expect("header");
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse::<u64>().ok(),
                "location" => location = Some(v.trim().to_string()),
                "transfer-encoding" => panic!("chunked replies are not handled"),
                _ => {}
            }
        }
        let length = length.expect("reply has a Content-Length");
        // Drained through the 1 MiB buffer: large reads, as curl -o /dev/null makes.
        let mut left = length as usize;
        while left > 0 {
            let n = self.reader.fill_buf().expect("reply body").len().min(left);
            assert!(n > 0, "reply body cut short");
            self.reader.consume(n);
            left -= n;
        }
        Reply { status, location }
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Reply {
        self.send(method, path, headers, body);
        self.reply()
    }
}

/// The path and query of a Location, which may be absolute (docker-registry) or not.
fn location_path(r: &Reply) -> String {
    let loc = r.location.clone().expect("reply has a Location");
    match loc.strip_prefix("http://") {
        Some(rest) => rest[rest.find('/').unwrap_or(rest.len())..].to_string(),
        None => loc,
    }
}

fn with_digest(path: &str, digest: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}digest={digest}")
}

fn expect(r: &Reply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what} answered {}", r.status);
}

/// CPU time (user, system) this process has used so far.
fn cpu() -> (std::time::Duration, std::time::Duration) {
    // SAFETY: getrusage fills the struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let d = |t: libc::timeval| {
        std::time::Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64)
    };
    (d(u.ru_utime), d(u.ru_stime))
}

fn main() {
    let cpu_before = std::cell::Cell::new(None);
    let start = || {
        cpu_before.set(Some(cpu()));
        Instant::now()
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).expect("missing argument");
    let octet = ("Content-Type", "application/octet-stream".to_string());
    let seconds = match arg(0) {
        "mono" => {
            let data = std::fs::read(arg(3)).expect("read blob");
            let t = start();
            let mut c = Conn::open(arg(1));
            let r = c.request("POST", &format!("/v2/{}/blobs/uploads/", arg(2)), &[], &[]);
            expect(&r, 202, "POST");
            let put = with_digest(&location_path(&r), arg(4));
            expect(&c.request("PUT", &put, &[octet], &data), 201, "PUT");
            t.elapsed()
        }
        "chunked" => {
            let data = std::fs::read(arg(3)).expect("read blob");
            let parts: usize = arg(5).parse().expect("PARTS");
            let step = data.len().div_ceil(parts);
            let t = start();
            let mut c = Conn::open(arg(1));
            let mut r = c.request("POST", &format!("/v2/{}/blobs/uploads/", arg(2)), &[], &[]);
            expect(&r, 202, "POST");
            for (i, chunk) in data.chunks(step).enumerate() {
                let start = i * step;
                let range = format!("{start}-{}", start + chunk.len() - 1);
                let headers = [octet.clone(), ("Content-Range", range)];
                r = c.request("PATCH", &location_path(&r), &headers, chunk);
                expect(&r, 202, "PATCH");
            }
            let put = with_digest(&location_path(&r), arg(4));
            expect(&c.request("PUT", &put, &[], &[]), 201, "PUT");
            t.elapsed()
        }
        "get" => {
            let t = start();
            let mut c = Conn::open(arg(1));
            let r = c.request("GET", &format!("/v2/{}/blobs/{}", arg(2), arg(3)), &[], &[]);
            expect(&r, 200, "GET");
            t.elapsed()
        }
        "fsync" => {
            let data = std::fs::read(arg(1)).expect("read input");
            let t = start();
            let mut f = std::fs::File::create(arg(2)).expect("create output");
            f.write_all(&data).expect("write");
            f.sync_all().expect("fsync");
            t.elapsed()
        }
        other => panic!("unknown mode {other}"),
    };
    if let (Some((u0, s0)), Some(_)) = (cpu_before.get(), std::env::var_os("CLIENT_CPU")) {
        let (u1, s1) = cpu();
        eprintln!("client cpu: user {:?}, system {:?}", u1 - u0, s1 - s0);
    }
    println!("{:.6}", seconds.as_secs_f64());
}
