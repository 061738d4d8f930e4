//! Processes of command runs: the child that dies with the service, and
//! handles on processes that cannot be confused with a later process
//! given the same pid.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

/// Makes the process `cmd` spawns receive SIGKILL when the thread that
/// spawned it ends (`PR_SET_PDEATHSIG`): when the service dies, even by
/// kill -9, the command's main process dies with it. The setting is not
/// inherited by the command's own children (the service finds those by
/// their environment, `service::procs`).
pub(crate) fn die_with_parent(cmd: &mut Command) {
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: it makes two raw system
    // calls (prctl, getppid), allocates nothing and takes no lock; the
    // errors it returns are built from an errno without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The service died between fork and prctl: do not run at all.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// One process, named by a process file descriptor: signals sent through
/// it reach that process or nobody, never a later process with its pid.
/// On a kernel without them (before Linux 5.3) it falls back to the pid
/// (`kill`, `/proc/PID/stat`), with the race pids always have.
#[derive(Debug)]
pub(crate) struct ProcHandle {
    pid: i32,
    fd: Option<OwnedFd>,
}

impl ProcHandle {
    /// A handle on process `pid` (`pidfd_open`, Linux 5.3).
    pub(crate) fn open(pid: i32) -> io::Result<Self> {
        // SAFETY: pidfd_open reads no memory of ours; it takes a pid and
        // flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOSYS) && std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Ok(Self { pid, fd: None });
            }
            return Err(e);
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd_open returned an impossible descriptor"))?;
        // SAFETY: `fd` was just returned by the kernel, is open and is
        // owned by nobody else.
        Ok(Self { pid, fd: Some(unsafe { OwnedFd::from_raw_fd(fd) }) })
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `sig` (`None`: only checks that the process still runs).
    /// Fails with ESRCH once the process has ended.
    pub(crate) fn signal(&self, sig: Option<Signal>) -> io::Result<()> {
        let Some(fd) = &self.fd else {
            return nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig).map_err(io::Error::from);
        };
        let sig = sig.map_or(0, |s| s as libc::c_int);
        // SAFETY: pidfd_send_signal with a null siginfo reads and writes
        // no memory of ours; the descriptor is open for the whole call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0 as libc::c_uint,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until the process has ended (a zombie has ended: it holds
    /// no file, lock or memory any more), at most until `deadline`.
    /// Whether it has.
    pub(crate) fn wait_ended(&self, deadline: Instant) -> bool {
        let Some(fd) = &self.fd else {
            while running(self.pid) {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            return true;
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis().min(1000)).unwrap_or(1000);
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(n) if n > 0 => return true,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return self.signal(None).is_err(),
            }
            if left.is_zero() {
                return false;
            }
        }
    }
}

/// Whether `pid` names a process that has not ended (a zombie has).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}
