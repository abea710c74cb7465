//! Process groups for `run` actions. Every command starts as the leader of its own group, so
//! the whole tree it forks (`sh -c 'a & b'`, `ssh`, `helm` and their helpers) can be stopped
//! together: on timeout, on abort, when the engine ends — and, after flightdeck itself was
//! killed, found again by the pgid the journal recorded.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How often liveness is polled while waiting for a group to go.
pub const POLL: Duration = Duration::from_millis(50);
/// How long a group asked to stop (SIGTERM) gets before it is killed (SIGKILL).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

fn pid_of(pgid: u32) -> Option<Pid> {
    // pgid 0 or 1 would address our own group or init: never a group of ours.
    i32::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .map(Pid::from_raw)
}

/// Send `sig` to every process of the group. Err when there is no such group.
pub fn signal_group(pgid: u32, sig: Signal) -> Result<(), Errno> {
    let pid = pid_of(pgid).ok_or(Errno::EINVAL)?;
    killpg(pid, sig)
}

/// Whether any process of the group is still running. Zombies (dead, not yet reaped: after a
/// crash nobody may reap them) don't count.
pub fn group_alive(pgid: u32) -> bool {
    GroupWatch::new(pgid).alive()
}

/// One group watched for its end, cheaply: asked again and again (the engine's watch on a
/// group left from before a restart, a stop's wait), it reads the leader's `/proc` entry, then
/// the member it found alive last time, and lists all of `/proc` only when neither is a live
/// member — a scan costs a read of every process's `stat`, on the engine's thread.
#[derive(Debug)]
pub struct GroupWatch {
    pgid: u32,
    /// A member found alive by the last scan.
    member: Option<u32>,
    /// Scans of `/proc` made (what the cheap path saves).
    #[cfg(test)]
    scans: u32,
}

impl GroupWatch {
    pub fn new(pgid: u32) -> Self {
        GroupWatch {
            pgid,
            member: None,
            #[cfg(test)]
            scans: 0,
        }
    }

    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// [`group_alive`].
    pub fn alive(&mut self) -> bool {
        let Some(pid) = pid_of(self.pgid) else {
            return false;
        };
        if let Err(Errno::ESRCH) = killpg(pid, None) {
            return false;
        }
        // It exists (EPERM too: not ours to signal, alive all the same); zombies don't count.
        let known = [Some(self.pgid), self.member];
        if known
            .into_iter()
            .flatten()
            .any(|p| live_in_group(p, self.pgid) == Some(true))
        {
            return true;
        }
        #[cfg(test)]
        {
            self.scans += 1;
        }
        match live_member(self.pgid) {
            Some(Some(m)) => {
                self.member = Some(m);
                true
            }
            Some(None) => false,
            // /proc cannot tell: killpg found it.
            None => true,
        }
    }

    /// [`group_alive_as`].
    pub fn alive_as(&mut self, started: Option<&str>) -> bool {
        self.alive() && same_group(self.pgid, started)
    }

    #[cfg(test)]
    fn scans(&self) -> u32 {
        self.scans
    }
}

/// What tells a process from a later one the kernel gives the same pid: the boot it runs in
/// (`/proc/sys/kernel/random/boot_id`) and its start time in clock ticks since that boot
/// (`/proc/PID/stat` field 22, `starttime`; proc(5)), as `BOOT/TICKS`. None where /proc can't
/// tell (the process is gone, or not Linux).
pub fn start_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: after the comm, `state` is field 3, so `starttime` is the 20th.
    let (_, rest) = stat.rsplit_once(')')?;
    let ticks = rest.split_whitespace().nth(19)?;
    Some(format!("{}/{ticks}", boot.trim()))
}

/// Whether the group a journal recorded (`pgid`, its leader's `started`) is still alive and
/// still that group. pids are reused, and a pgid is its leader's pid: once the whole group has
/// ended, a later process may get that pid and lead a group of its own, which must be neither
/// waited for nor killed. A pid still in use as a group's id is never handed out again, so a
/// group whose leader has ended but whose other members live on is still ours. Without a
/// recorded identity (older journals) the group is taken as ours, as before.
pub fn group_alive_as(pgid: u32, started: Option<&str>) -> bool {
    GroupWatch::new(pgid).alive_as(started)
}

/// The identity half of [`group_alive_as`], for a group found alive.
fn same_group(pgid: u32, started: Option<&str>) -> bool {
    let Some((boot, _)) = started.and_then(|s| s.split_once('/')) else {
        return true;
    };
    let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok();
    if this_boot
        .as_deref()
        .map(str::trim)
        .is_some_and(|b| b != boot)
    {
        // Rebooted since: nothing of that group survived.
        return false;
    }
    match start_identity(pgid) {
        // A process holds the leader's pid: the leader itself, or a later process.
        Some(now) => Some(now.as_str()) == started,
        // The leader has ended; its group lives on in the processes it started.
        None => true,
    }
}

/// Linux: a member of the group that /proc lists and that is not a zombie (inner None: none).
/// None when /proc cannot tell.
fn live_member(pgid: u32) -> Option<Option<u32>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if live_in_group(pid, pgid) == Some(true) {
            return Some(Some(pid));
        }
    }
    Some(None)
}

/// Whether process `pid` is in group `pgid` and not a zombie (None: /proc has no such process).
fn live_in_group(pid: u32, pgid: u32) -> Option<bool> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next();
    let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
    Some(pgrp == Some(pgid) && state != Some("Z") && state != Some("X"))
}

/// Ask the group to stop (SIGTERM), wait up to `grace` for it to go, then kill it (SIGKILL).
/// Returns a sentence saying which it took.
pub async fn stop_group(pgid: u32, grace: Duration) -> String {
    if signal_group(pgid, Signal::SIGTERM).is_err() {
        return format!("process group {pgid} had already ended");
    }
    let deadline = tokio::time::Instant::now() + grace;
    let mut group = GroupWatch::new(pgid);
    loop {
        if !group.alive() {
            return format!("process group {pgid} stopped on SIGTERM");
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let _ = signal_group(pgid, Signal::SIGKILL);
    format!(
        "process group {pgid} did not stop within {} s of SIGTERM and was killed (SIGKILL)",
        grace.as_secs()
    )
}

/// Kills its group when dropped: an action task that is aborted or panics, or an engine that
/// ends, leaves nothing of the command running.
pub struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    pub fn new(pgid: u32) -> Self {
        GroupGuard { pgid: Some(pgid) }
    }

    /// The group ended normally: nothing to kill.
    pub fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = signal_group(pgid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_group_and_init_are_never_addressed() {
        assert_eq!(signal_group(0, Signal::SIGTERM), Err(Errno::EINVAL));
        assert_eq!(signal_group(1, Signal::SIGTERM), Err(Errno::EINVAL));
        assert!(!group_alive(0));
        assert!(!group_alive(u32::MAX));
    }

    #[tokio::test]
    async fn a_group_is_stopped_whole_and_then_reported_gone() {
        let mut cmd = tokio::process::Command::new("sh");
        // Two grandchildren in the group besides the shell.
        cmd.args(["-c", "sleep 300 & sleep 300 & wait"])
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let pgid = child.id().unwrap();
        assert!(group_alive(pgid));
        let said = stop_group(pgid, Duration::from_secs(5)).await;
        assert!(said.contains(&pgid.to_string()), "{said}");
        let _ = child.wait().await;
        assert!(!group_alive(pgid), "no process of the group remains");
    }

    /// Watching a group lists /proc only when neither its leader nor the member found last
    /// time is a live member: while the leader runs, never; once it has ended, once.
    #[tokio::test]
    async fn a_watched_group_is_found_without_scanning_proc_each_time() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "sleep 300 & read _"])
            .process_group(0)
            .stdin(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut leader = cmd.spawn().unwrap();
        let pgid = leader.id().unwrap();
        let mut watch = GroupWatch::new(pgid);
        assert!(watch.alive() && watch.alive());
        assert_eq!(watch.scans(), 0, "the leader runs: no scan");
        // The leader ends (its stdin closes) and is reaped; its `sleep` lives on in the group.
        drop(leader.stdin.take());
        let _ = leader.wait().await;
        assert!(watch.alive());
        assert_eq!(watch.scans(), 1);
        assert!(watch.alive() && watch.alive());
        assert_eq!(
            watch.scans(),
            1,
            "the member found is read, not searched for"
        );
        signal_group(pgid, Signal::SIGKILL).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while watch.alive() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the group never ended"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}
