//! The built-in handler of command jobs (`joblog submit --command`): runs a
//! shell command in its own process group. Exit 0: Succeeded; exit 75
//! (EX_TEMPFAIL): transient, retried later; anything else: Failed, with the
//! last lines of stderr as the message. Job fields reach the command only
//! as environment variables (`JOBLOG_JOB_ID`, `JOBLOG_JOB_NAME`,
//! `JOBLOG_REGARDING`, `JOBLOG_WORKFLOW`), never spliced into its text, so
//! no job field can inject shell syntax. A cancel, pause or shutdown
//! terminates the whole process group: SIGTERM, then SIGKILL after a grace
//! period.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::handler::{Handler, JobContext, Outcome};
use crate::domain::Job;

/// Job data that starts with this line holds a command to run.
pub const COMMAND_PREFIX: &[u8] = crate::domain::COMMAND_PREFIX;
/// The exit code that means "try again later".
pub const EXIT_TRANSIENT: i32 = 75;
/// Bytes of stderr kept for the message.
const STDERR_TAIL: usize = 2000;

/// The command a job carries in its data, if any.
pub fn command_of(job: &Job) -> Option<&str> {
    job.data.strip_prefix(COMMAND_PREFIX).and_then(|c| std::str::from_utf8(c).ok())
}

/// Job data that carries `command`.
pub fn command_data(command: &str) -> Vec<u8> {
    [COMMAND_PREFIX, command.as_bytes()].concat()
}

/// Runs command jobs.
#[derive(Debug, Clone)]
pub struct CommandHandler {
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How often a running command's job is checked for a stop request.
    pub poll: Duration,
}

impl Default for CommandHandler {
    fn default() -> Self {
        Self { grace: Duration::from_secs(5), poll: Duration::from_millis(20) }
    }
}

impl Handler for CommandHandler {
    fn run(&self, ctx: &JobContext<'_>) -> Outcome {
        let job = ctx.job();
        let Some(command) = command_of(job) else {
            return Outcome::Failed { code: 2, message: "job data holds no command".into() };
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .env("JOBLOG_JOB_ID", job.id.to_string())
            .env("JOBLOG_JOB_NAME", &job.name)
            .env("JOBLOG_REGARDING", job.regarding.as_ref().map(|r| r.to_string()).unwrap_or_default())
            .env("JOBLOG_WORKFLOW", job.workflow.as_deref().unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Outcome::Failed { code: 127, message: format!("cannot start /bin/sh: {e}") },
        };
        let pgid = Pid::from_raw(child.id() as i32);
        let mut stderr = child.stderr.take().expect("piped");
        let tail = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                if all.len() > 4 * STDERR_TAIL {
                    all.drain(..all.len() - STDERR_TAIL);
                }
            }
            all
        });
        let mut stopping: Option<Instant> = None;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            match stopping {
                None if ctx.stop_requested().is_some() => {
                    let _ = killpg(pgid, Signal::SIGTERM);
                    stopping = Some(Instant::now());
                }
                Some(since) if since.elapsed() >= self.grace => {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
                _ => {}
            }
            std::thread::sleep(self.poll);
        };
        // Whatever the command left running in its group goes with it.
        let _ = killpg(pgid, Signal::SIGKILL);
        let stderr = tail.join().unwrap_or_default();
        if stopping.is_some() {
            return Outcome::Stopped;
        }
        let message = last_lines(&stderr);
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
