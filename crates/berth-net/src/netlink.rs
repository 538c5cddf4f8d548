//! The few rtnetlink requests Berth makes: create a bridge or a veth pair, bring links up,
//! add addresses and a default route, delete links. Written against the kernel's message
//! layout directly because a task start makes four of them and no more; each request waits
//! for the kernel's acknowledgement, so an error names the request that failed.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;

const IFA_LOCAL: u16 = 2;
const IFA_ADDRESS: u16 = 1;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;

/// A request being built: the netlink header is filled in when it is sent.
struct Msg {
    buf: Vec<u8>,
    /// Offsets of nested attributes still open, whose lengths are set on close.
    open: Vec<usize>,
}

impl Msg {
    fn new() -> Msg {
        Msg {
            buf: vec![0; 16],
            open: vec![],
        }
    }

    /// struct ifinfomsg: family, type, index, flags, change.
    fn ifinfo(mut self, index: i32, flags: u32, change: u32) -> Msg {
        self.buf
            .extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Msg {
        self.put(kind, data);
        self
    }

    fn put(&mut self, kind: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn name(self, kind: u16, s: &str) -> Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    fn begin(mut self, kind: u16) -> Msg {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self
    }

    fn end(mut self) -> Msg {
        let at = self.open.pop().expect("an open attribute");
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }
}

/// A NETLINK_ROUTE socket. It acts in the network namespace the calling thread was in
/// when it was opened, wherever the thread goes afterwards.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink { fd, seq: 0 })
    }

    /// Send one request and wait for its acknowledgement. The error keeps its errno
    /// (callers test for EEXIST and ENODEV); `context` adds what was asked.
    fn call(&mut self, kind: u16, flags: u16, mut msg: Msg) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let len = msg.buf.len() as u32;
        msg.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        msg.buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        msg.buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.buf[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                msg.buf.as_ptr().cast(),
                msg.buf.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 8192];
        loop {
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut at = 0usize;
            let n = n as usize;
            while at + 16 <= n {
                let mlen = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                let mtype = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap());
                let mseq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap());
                if mlen < 16 || at + mlen > n {
                    return Err(io::Error::other("malformed netlink answer"));
                }
                if mtype == NLMSG_ERROR && mseq == self.seq && mlen >= 20 {
                    let errno = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().unwrap());
                    if errno == 0 {
                        return Ok(());
                    }
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                at += (mlen + 3) & !3;
            }
        }
    }

    /// Create a bridge, up. An existing link of that name is left as it is.
    pub fn create_bridge(&mut self, name: &str) -> io::Result<()> {
        let msg = Msg::new()
            .ifinfo(0, libc::IFF_UP as u32, libc::IFF_UP as u32)
            .name(IFLA_IFNAME, name)
            .begin(IFLA_LINKINFO)
            .name(IFLA_INFO_KIND, "bridge")
            .end();
        match self.call(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, msg) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => self.set_up(name),
            r => r.map_err(|e| context(e, format!("create bridge {name}"))),
        }
    }

    /// Bring a link up by name.
    pub fn set_up(&mut self, name: &str) -> io::Result<()> {
        let msg = Msg::new()
            .ifinfo(0, libc::IFF_UP as u32, libc::IFF_UP as u32)
            .name(IFLA_IFNAME, name);
        self.call(RTM_NEWLINK, 0, msg)
            .map_err(|e| context(e, format!("bring {name} up")))
    }

    /// Create a veth pair: `host` in this socket's namespace, up and enslaved to the bridge
    /// with index `master_index`; `peer` in the namespace `peer_netns`, down, with the MAC
    /// address `mac`.
    pub fn create_veth(
        &mut self,
        host: &str,
        master_index: u32,
        peer: &str,
        peer_netns: RawFd,
        mac: [u8; 6],
    ) -> io::Result<()> {
        let up = libc::IFF_UP as u32;
        let mut msg = Msg::new()
            .ifinfo(0, up, up)
            .name(IFLA_IFNAME, host)
            .attr(IFLA_MASTER, &master_index.to_ne_bytes())
            .begin(IFLA_LINKINFO)
            .name(IFLA_INFO_KIND, "veth")
            .begin(IFLA_INFO_DATA)
            .begin(VETH_INFO_PEER)
            // Not up yet: a veth end cannot open before its pair is complete.
            .ifinfo(0, 0, 0)
            .name(IFLA_IFNAME, peer)
            .attr(IFLA_NET_NS_FD, &peer_netns.to_ne_bytes())
            .attr(IFLA_ADDRESS, &mac)
            .end()
            .end()
            .end();
        msg.pad();
        self.call(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, msg)
            .map_err(|e| context(e, format!("create veth {host}")))
    }

    /// Delete a link by name; a link that is not there is not an error.
    pub fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let msg = Msg::new().ifinfo(0, 0, 0).name(IFLA_IFNAME, name);
        match self.call(RTM_DELLINK, 0, msg) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            r => r.map_err(|e| context(e, format!("delete {name}"))),
        }
    }

    /// Add an IPv4 address to a link; an address already there is not an error.
    pub fn add_address(&mut self, link: &str, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let index = index_of(link)?;
        let mut msg = Msg::new();
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        msg.buf
            .extend_from_slice(&[libc::AF_INET as u8, prefix, 0, libc::RT_SCOPE_UNIVERSE]);
        msg.buf.extend_from_slice(&index.to_ne_bytes());
        let msg = msg
            .attr(IFA_LOCAL, &ip.octets())
            .attr(IFA_ADDRESS, &ip.octets());
        match self.call(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, msg) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(|e| context(e, format!("add {ip}/{prefix} to {link}"))),
        }
    }

    /// Remove an IPv4 address from a link; an address not there is not an error.
    pub fn delete_address(&mut self, link: &str, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let index = index_of(link)?;
        let mut msg = Msg::new();
        msg.buf
            .extend_from_slice(&[libc::AF_INET as u8, prefix, 0, libc::RT_SCOPE_UNIVERSE]);
        msg.buf.extend_from_slice(&index.to_ne_bytes());
        let msg = msg.attr(IFA_LOCAL, &ip.octets());
        match self.call(RTM_DELADDR, 0, msg) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
            r => r.map_err(|e| context(e, format!("delete {ip}/{prefix} from {link}"))),
        }
    }

    /// Add the default route via `gateway` out of `link`.
    pub fn add_default_route(&mut self, link: &str, gateway: Ipv4Addr) -> io::Result<()> {
        let index = index_of(link)?;
        let mut msg = Msg::new();
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        msg.buf.extend_from_slice(&[
            libc::AF_INET as u8,
            0,
            0,
            0,
            libc::RT_TABLE_MAIN,
            libc::RTPROT_BOOT,
            libc::RT_SCOPE_UNIVERSE,
            libc::RTN_UNICAST,
        ]);
        msg.buf.extend_from_slice(&0u32.to_ne_bytes());
        let msg = msg
            .attr(RTA_GATEWAY, &gateway.octets())
            .attr(RTA_OIF, &index.to_ne_bytes());
        self.call(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, msg)
            .map_err(|e| context(e, format!("add default route via {gateway}")))
    }
}

/// An error that says what was asked, keeping the kind (and message) of the OS error.
fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The index of a link in the calling thread's network namespace.
pub fn index_of(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::other("link name with NUL"))?;
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network link named {name}"),
        ))
    } else {
        Ok(i)
    }
}

/// Whether a link of this name exists in the calling thread's network namespace.
pub fn link_exists(name: &str) -> bool {
    index_of(name).is_ok()
}
