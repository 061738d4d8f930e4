//! The built-in handler of command jobs (`joblog submit --command`): runs a
//! shell command in its own process group. Exit 0: Succeeded; exit 75
//! (EX_TEMPFAIL): transient, retried later; anything else: Failed, with the
//! last lines of stderr as the message. Job fields reach the command only
//! as environment variables (`JOBLOG_JOB_ID`, `JOBLOG_JOB_NAME`,
//! `JOBLOG_REGARDING`, `JOBLOG_WORKFLOW`, and `JOBLOG_STORE`, the store's
//! data directory), never spliced into its text, so no job field can
//! inject shell syntax.
//!
//! **A run ends when the command's main process (the shell) exits.** Its
//! stderr is read until then, plus at most [`DRAIN`] for what is still in
//! the pipe: a daemon that keeps stderr open does not hold the run. Then
//! whatever the run left behind is ended (SIGKILL): its process group
//! (while the shell's zombie, not yet reaped, keeps the group's id from
//! being reused), and every process carrying its marks, also those that
//! left the group, scanned for again until none is left (`procs::sweep`).
//! If some cannot be ended, the run fails with
//! [`codes::COMMAND_OUTLIVED`] whatever the command did. The main process
//! gets `PR_SET_PDEATHSIG(SIGKILL)`: it dies with
//! the service, even on kill -9; what it leaves is ended by the next
//! service before it returns the job's lease.
//!
//! A cancel, pause, shutdown or timeout terminates the run's process group
//! (SIGTERM), then, after the grace period, SIGKILLs the group and every
//! marked process: whatever the command does (traps SIGTERM, sleeps for
//! ever, leaves children), its run ends within the grace period.
//!
//! **Timeout.** Job data `joblog:command\n# joblog:timeout=SECS\n...` (the
//! second line is a shell comment, so such data meant the same command
//! before timeouts existed) gives the run SECS seconds; otherwise the
//! service's [`ServiceConfig::command_timeout`](super::ServiceConfig)
//! applies. A timed-out run fails with [`codes::COMMAND_TIMED_OUT`]. The
//! data's forms and their rules are the domain's (`src/domain/jobdata.rs`).

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::handler::{Handler, JobContext, Outcome, StopRequest};
use super::procs;
use crate::domain::codes;
pub(crate) use crate::domain::command_timeout_of;
pub use crate::domain::{command_data, command_data_with_timeout, command_of};

/// The exit code that means "try again later".
pub(crate) const EXIT_TRANSIENT: i32 = 75;
/// Bytes of stderr kept for the message.
const STDERR_TAIL: usize = 2000;
/// How long stderr is still read after the main process exited.
pub(crate) const DRAIN: Duration = Duration::from_millis(100);
/// Runs command jobs.
#[derive(Debug, Clone)]
pub(crate) struct CommandHandler {
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How often a running command's job is checked for a stop request.
    pub poll: Duration,
    /// The timeout of a job that carries none (`None`: no limit).
    pub timeout: Option<Duration>,
    /// The store's mark (`JOBLOG_STORE`); empty: none (then leftovers
    /// outside the process group are not looked for).
    pub store: OsString,
}

impl Default for CommandHandler {
    fn default() -> Self {
        Self { grace: Duration::from_secs(5), poll: Duration::from_millis(20), timeout: None, store: OsString::new() }
    }
}

/// Why a run is being ended before its command finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Asked(StopRequest),
    TimedOut(Duration),
}

impl Handler for CommandHandler {
    fn run(&self, ctx: &JobContext<'_>) -> Outcome {
        let job = ctx.job();
        let Some(command) = command_of(job) else {
            return Outcome::Failed { code: 2, message: "job data holds no command".into() };
        };
        // Asked to stop before it started (a shutdown with runs queued).
        if ctx.stop_requested().is_some() {
            return Outcome::Stopped;
        }
        let timeout = command_timeout_of(job).or(self.timeout);
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .env(procs::JOB_VAR, job.id.to_string())
            .env("JOBLOG_JOB_NAME", &job.name)
            .env("JOBLOG_REGARDING", job.regarding.as_ref().map(|r| r.to_string()).unwrap_or_default())
            .env("JOBLOG_WORKFLOW", job.workflow.as_deref().unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        if !self.store.is_empty() {
            cmd.env(procs::STORE_VAR, &self.store);
        }
        crate::sys::process::die_with_parent(&mut cmd);
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed { code: 127, message: format!("cannot start /bin/sh: {e}") },
        };
        // The shell leads the run's process group: its pid is the group's id.
        let pgid = Pid::from_raw(child.id() as i32);
        let mut stderr = Tail::new(child.stderr.take());
        let mut ending: Option<(Ending, Instant)> = None;
        let mut killed = false;
        let exited = loop {
            stderr.read_for(self.poll);
            // Sees the exit without reaping (WNOWAIT): until it is reaped
            // below, the shell's zombie keeps its pid, and so the group's
            // id, from being reused, and the group is killed safely.
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(Id::Pid(pgid), flags) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                Ok(_) => break Ok(()),
                Err(e) => break Err(e),
            }
            match ending {
                None => {
                    let why = match ctx.stop_requested() {
                        Some(r) => Some(Ending::Asked(r)),
                        None => timeout.filter(|&t| started.elapsed() >= t).map(Ending::TimedOut),
                    };
                    if let Some(why) = why {
                        let _ = killpg(pgid, Signal::SIGTERM);
                        ending = Some((why, Instant::now()));
                    }
                }
                Some((_, since)) if !killed && since.elapsed() >= self.grace => {
                    let _ = killpg(pgid, Signal::SIGKILL);
                    let _ = child.kill();
                    killed = true;
                }
                _ => {}
            }
        };
        // Whatever the command left running goes with it: its group (while
        // the zombie still holds the group's id), and every process with
        // its marks (also those that left the group), scanned again until
        // none is left.
        if exited.is_ok() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let outlived = if self.store.is_empty() {
            None
        } else {
            match procs::sweep(&self.store, Some(job.id), procs::END_WAIT) {
                Ok(swept) if swept.left.is_empty() => None,
                Ok(swept) => Some(format!(
                    "its processes {} were still running {} s after SIGKILL (uninterruptible sleep?)",
                    swept.left.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                    procs::END_WAIT.as_secs()
                )),
                Err(e) => Some(format!("what it left running could not be looked for: {e}")),
            }
        };
        // Reaped only now (a lost child is reported as such below).
        let status = match exited {
            Ok(()) => child.wait(),
            Err(e) => Err(std::io::Error::from(e)),
        };
        stderr.drain(DRAIN);
        let outcome = self.outcome(ending, killed, status, last_lines(&stderr.bytes));
        match outlived {
            None => outcome,
            // Recorded as a failure, never as a success or a retry: the job
            // must not run again while a process of this run may live.
            Some(problem) => {
                tracing::error!(id = %job.id, name = job.name.as_str(), problem = problem.to_string().as_str(), "a command run left processes that could not be ended");
                Outcome::Failed {
                    code: codes::COMMAND_OUTLIVED,
                    message: format!("{problem}; the command itself {}", describe(&outcome)),
                }
            }
        }
    }
}

impl CommandHandler {
    /// How a run ended, from why it was ended (if it was) and its shell's
    /// exit status.
    fn outcome(
        &self,
        ending: Option<(Ending, Instant)>,
        killed: bool,
        status: std::io::Result<std::process::ExitStatus>,
        message: String,
    ) -> Outcome {
        match ending {
            Some((Ending::Asked(_), _)) => return Outcome::Stopped,
            Some((Ending::TimedOut(t), _)) => {
                return Outcome::Failed {
                    code: codes::COMMAND_TIMED_OUT,
                    message: format!(
                        "timed out after {} s: its processes were ended ({}){}",
                        t.as_secs(),
                        if killed {
                            format!("SIGTERM, then SIGKILL after {} s", self.grace.as_secs())
                        } else {
                            "SIGTERM".to_string()
                        },
                        if message.is_empty() { String::new() } else { format!("; stderr: {message}") }
                    ),
                }
            }
            None => {}
        }
        match status {
            Err(e) => Outcome::Transient(format!("lost the command's process: {e}")),
            Ok(s) => match (s.code(), s.signal()) {
                (Some(0), _) => Outcome::Succeeded,
                (Some(EXIT_TRANSIENT), _) => Outcome::Transient(or(message, "exit 75: try again later")),
                (Some(code), _) => Outcome::Failed { code, message: or(message, &format!("exit {code}")) },
                (None, sig) => Outcome::Failed {
                    code: 128 + sig.unwrap_or(0),
                    message: or(message, &format!("killed by signal {}", sig.unwrap_or(0))),
                },
            },
        }
    }
}

/// What a run's outcome was, for a message that replaces it.
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Succeeded => "succeeded".into(),
        Outcome::Failed { code, message } => format!("failed (code {code}): {message}"),
        Outcome::Transient(m) => format!("asked to be retried: {m}"),
        Outcome::Stopped => "was stopped as asked".into(),
        other => format!("ended as {other:?}"),
    }
}

/// The tail of a run's stderr, read without a thread: only when the pipe
/// has something, so a writer that never closes it holds nothing up.
struct Tail {
    pipe: Option<ChildStderr>,
    bytes: Vec<u8>,
}

impl Tail {
    fn new(pipe: Option<ChildStderr>) -> Self {
        Self { pipe, bytes: Vec::new() }
    }

    /// Reads what arrives within `wait` (returns early once something
    /// was read or the pipe closed; sleeps `wait` when it is closed).
    fn read_for(&mut self, wait: Duration) {
        let Some(pipe) = &mut self.pipe else {
            std::thread::sleep(wait);
            return;
        };
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        let ready = match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => n > 0,
            Err(nix::errno::Errno::EINTR) => false,
            Err(_) => {
                self.pipe = None;
                return;
            }
        };
        if !ready {
            return;
        }
        // Readable (or hung up): one read cannot block.
        let mut buf = [0u8; 8192];
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => self.pipe = None,
            Ok(n) => {
                self.bytes.extend_from_slice(&buf[..n]);
                if self.bytes.len() > 4 * STDERR_TAIL {
                    self.bytes.drain(..self.bytes.len() - STDERR_TAIL);
                }
            }
        }
    }

    /// Reads until the pipe closes, at most for `within`.
    fn drain(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.pipe.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.read_for(left.min(Duration::from_millis(20)));
        }
        self.pipe = None;
    }
}

fn or(message: String, fallback: &str) -> String {
    if message.is_empty() {
        fallback.to_string()
    } else {
        message
    }
}

/// The last lines of `bytes` (at most `STDERR_TAIL` bytes, whole lines).
fn last_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let mut start = text.len().saturating_sub(STDERR_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    match (start > 0, tail.find('\n')) {
        (true, Some(nl)) => tail[nl + 1..].to_string(),
        _ => tail.to_string(),
    }
}
