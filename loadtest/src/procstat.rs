//! What the kernel says about the server under test: resident memory and CPU
//! time of a process, and which process listens on a port. The reading and
//! parsing of `/proc` is the `procfs` crate's; CPU time is converted with the
//! system's own clock tick (`sysconf(_SC_CLK_TCK)`), not an assumed 100 Hz.

use procfs::net::TcpState;
use procfs::process::{FDTarget, Process};

fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

/// Resident set size in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    process(pid)?.status().ok()?.vmrss
}

/// User + system CPU seconds used so far.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = process(pid)?.stat().ok()?;
    // Tick counts of a process stay far below 2^53, where f64 is exact.
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// The pid of the process listening on TCP `port` (any address), if visible.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = [procfs::net::tcp(), procfs::net::tcp6()]
        .into_iter()
        .flat_map(Result::unwrap_or_default)
        .filter(|entry| entry.state == TcpState::Listen && entry.local_address.port() == port)
        .map(|entry| entry.inode)
        .collect();
    if inodes.is_empty() {
        return None;
    }
    procfs::process::all_processes().ok()?.flatten().find_map(|process| {
        let listens = process
            .fd()
            .ok()?
            .flatten()
            .any(|fd| matches!(fd.target, FDTarget::Socket(inode) if inodes.contains(&inode)));
        listens.then(|| u32::try_from(process.pid).ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(cpu_secs(me).is_some());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port), Some(me));
    }
}
