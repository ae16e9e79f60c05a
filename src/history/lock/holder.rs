//! Who holds the bucket lock: what a run writes into it, and whether a holder on this machine
//! still runs.
//!
//! The lock's object is a line of JSON a person can read (`aws s3 cp s3://…/.sitesync/lock -`):
//! the host, pid, start and sitesync version of the run that holds it, when it expires, and for
//! sitesync itself a token that is new with every run (so a run knows its own lock again, even
//! when the answer to its write was lost) and where the pid means something. A pid compares only
//! with the pids of the same kernel, since it booted, in the same pid namespace (two containers on
//! one host share neither): `machine` records the boot id and the pid namespace, and a lock is
//! "this machine's" only when both the host name and `machine` match.

use std::hash::{BuildHasher, Hasher};

use serde::{Deserialize, Serialize};

use crate::model::Time;

/// What the lock's object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    #[serde(default)]
    pub v: u32,
    pub host: String,
    pub pid: u32,
    /// When the run took the lock, on the server's clock.
    pub start: String,
    pub version: String,
    /// When the lock expires unless it is renewed, on the server's clock (as the writer knew it).
    #[serde(default)]
    pub expires: String,
    /// Seconds after its last write (the object's `LastModified`) the lock expires.
    pub ttl: u64,
    /// New with every run: the holder's own writes carry it.
    pub token: String,
    /// Where `pid` means something: the boot id and the pid namespace; empty where unknown.
    #[serde(default)]
    pub machine: String,
}

impl Holder {
    /// This process, taking a lock at `start` (server time) that expires `ttl` seconds after each
    /// write. Reads the host name and `/proc`: call it off the runtime's workers.
    pub fn this_process(start: Time, ttl: u64) -> Holder {
        Holder {
            v: 1,
            host: host_name(),
            pid: std::process::id(),
            start: super::super::iso_utc(start),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            expires: String::new(),
            ttl,
            token: token(),
            machine: machine(),
        }
    }

    /// The object's bytes for a write at `now` (server time).
    pub fn body(&self, now: Time) -> Vec<u8> {
        let expires = Time(now.0.saturating_add(self.ttl as i64 * Time::NANOS_PER_SEC));
        let written = Holder { expires: super::super::iso_utc(expires), ..self.clone() };
        let mut body = serde_json::to_vec(&written).unwrap_or_default();
        body.push(b'\n');
        body
    }

    /// The holder an object's bytes name; `None` when they are not a sitesync lock.
    pub fn read(body: &[u8]) -> Option<Holder> {
        serde_json::from_slice(body).ok()
    }

    /// Whether `other`'s pid is a pid of this machine (see the module documentation).
    pub fn same_machine(&self, other: &Holder) -> bool {
        !self.machine.is_empty() && self.machine == other.machine && self.host == other.host
    }

    /// For messages: `pid 1234 on host ci-7, started 2026-12-05T10:45:00.123Z, sitesync 0.1.0`.
    pub fn describe(&self) -> String {
        format!("pid {} on host {}, started {}, sitesync {}", self.pid, self.host, self.start, self.version)
    }
}

/// Whether process `pid` of this machine still runs; a zombie (killed, not yet reaped) does not.
/// A syscall and a read of `/proc`: call it off the runtime's workers.
pub fn running(pid: u32) -> bool {
    let Ok(id) = i32::try_from(pid) else { return false };
    if id <= 0 {
        return false;
    }
    // SAFETY: signal 0 sends nothing; kill(2) only says whether the process exists.
    let alive =
        unsafe { libc::kill(id, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    alive && !zombie(pid)
}

/// A process that ended and waits for its parent to read its status.
fn zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S …`: the state follows the last `)`, since comm may hold one.
    stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is passed along.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match rc {
        0 if end > 0 => String::from_utf8_lossy(&buf[..end]).into_owned(),
        _ => "unknown".to_owned(),
    }
}

/// The boot id and the pid namespace of this process; empty when `/proc` does not say.
fn machine() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let namespace = std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).unwrap_or_default();
    match (boot.trim(), namespace.as_str()) {
        ("", _) | (_, "") => String::new(),
        (boot, namespace) => format!("{boot} {namespace}"),
    }
}

/// 16 hex digits that no other run shares.
fn token() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(Time::now().0);
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_reads_back_as_written_and_says_when_it_expires() {
        let me = Holder::this_process(Time(0), 120);
        let body = me.body(Time(1_000 * Time::NANOS_PER_SEC));
        let read = Holder::read(&body).expect("a lock reads back");
        assert_eq!(read.expires, "1970-01-01T00:18:40.000Z");
        assert_eq!(Holder { expires: String::new(), ..read }, me);
        assert_eq!(Holder::read(b"not json"), None);
        assert!(me.describe().starts_with(&format!("pid {} on host ", std::process::id())), "{}", me.describe());
    }

    #[test]
    fn pids_compare_only_on_the_same_machine() {
        let me = Holder::this_process(Time(0), 120);
        assert!(!me.machine.is_empty(), "Linux says where pids compare");
        assert!(me.same_machine(&Holder::this_process(Time(0), 120)));
        assert!(!me.same_machine(&Holder { host: "elsewhere".into(), ..me.clone() }));
        assert!(!me.same_machine(&Holder { machine: "other-boot pid:[1]".into(), ..me.clone() }));
        let unknown = Holder { machine: String::new(), ..me.clone() };
        assert!(!unknown.same_machine(&unknown), "unknown is never the same machine");
        assert_ne!(me.token, Holder::this_process(Time(0), 120).token);
    }

    #[test]
    fn a_process_runs_until_it_has_ended() {
        assert!(running(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // SAFETY: waitid on our own child, with a zeroed siginfo to fill; WNOWAIT leaves it a zombie.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        assert_eq!(rc, 0);
        assert!(!running(pid), "an ended child, not reaped yet");
        child.wait().unwrap();
        assert!(!running(0) && !running(u32::MAX));
    }
}
