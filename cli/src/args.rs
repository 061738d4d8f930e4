//! The command line's grammar (`docs/cli.md`), with clap's derive.

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "Examples:
  joblog submit --name 'Send welcome email' --workflow welcome --regarding contact:42 --command ./welcome.sh
  joblog list --type workflow --status failed --limit 20
  joblog show 0193… --history --json
  joblog cancel --workflow welcome --state suspended --all-matching --dry-run
  joblog run --until-idle
  joblog bulk-delete now --type workflow --older-than 30";

#[derive(Parser, Debug, Clone)]
#[command(name = "joblog", version, about = "System jobs kept as an event-sourced, checksummed log", after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after it.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The data directory (created by the first command that writes).
    #[arg(long, global = true, env = "JOBLOG_DATA", default_value = "./joblog-data")]
    pub data: std::path::PathBuf,
    /// The acting user; every action is checked against their privileges.
    #[arg(long = "as", global = true, env = "JOBLOG_USER", default_value = "admin")]
    pub user: String,
    /// The time the command acts at (RFC 3339); earlier than the newest
    /// recorded event is refused.
    #[arg(long, global = true)]
    pub now: Option<String>,
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// For testing and benchmarks only: when the log makes writes durable.
    /// every-batch (the default: a command succeeds only once its events
    /// are on disk), interval[:MS] (synced within MS ms, default 100; a
    /// power cut may lose the last MS ms), never (the OS decides; a power
    /// cut may lose any recent write). The power-cut harness's negative
    /// control runs `joblog run --sync never`.
    // This text is `--help`'s too, printed as written: `[:MS]` is the
    // grammar's optional part, not a link to escape.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, global = true, value_name = "MODE", default_value = "every-batch", value_parser = parse_sync)]
    pub sync: joblog::log::Sync,
    /// The service's socket: where `joblog run` listens and where other
    /// commands reach it (default: DATA/joblog.sock, reachable by the
    /// directory's owner only; give a path outside it so that OS users
    /// mapped with `joblog user map` can reach the service).
    #[arg(long, global = true, env = "JOBLOG_SOCKET")]
    pub socket: Option<std::path::PathBuf>,
    /// Create the store as a simulation, whose clock (--now) may run ahead
    /// of the system clock; only when this command creates the store.
    #[arg(long, global = true)]
    pub simulation: bool,
}

/// `--sync`: every-batch, interval[:MS], never.
fn parse_sync(s: &str) -> Result<joblog::log::Sync, String> {
    use joblog::log::Sync;
    match s.split_once(':') {
        None if s == "every-batch" => Ok(Sync::EveryBatch),
        None if s == "never" => Ok(Sync::Never),
        None if s == "interval" => Ok(Sync::Interval(100)),
        Some(("interval", ms)) => match ms.parse::<u64>() {
            Ok(ms @ 1..=60_000) => Ok(Sync::Interval(ms)),
            _ => Err(format!("{ms:?}: the interval is 1 to 60000 milliseconds")),
        },
        _ => Err(format!("{s:?}: use every-batch, interval[:MS] or never")),
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Users: add, deactivate, list.
    #[command(subcommand, after_help = "Example:\n  joblog user add alice --role basic-user --business-unit sales")]
    User(UserCmd),
    /// Roles with their privileges.
    #[command(subcommand, after_help = "Example:\n  joblog role add auditor --privilege read:organization")]
    Role(RoleCmd),
    /// Business units.
    #[command(
        subcommand,
        name = "business-unit",
        after_help = "Example:\n  joblog business-unit add sales --parent root"
    )]
    BusinessUnit(UnitCmd),
    /// Workflow definitions.
    #[command(subcommand, after_help = "Example:\n  joblog workflow add welcome --name 'Welcome email' --owner alice")]
    Workflow(WorkflowCmd),
    /// Submits a new job and prints it.
    #[command(
        after_help = "Example:\n  joblog submit --name 'Nightly export' --type workflow --command './export.sh'"
    )]
    Submit(SubmitArgs),
    /// Loads historical jobs: JSON lines (the Job JSON) or a CSV export
    /// with the platform's column headers; all of a file or nothing.
    #[command(after_help = "Example:\n  joblog import history.jsonl")]
    Import { file: std::path::PathBuf },
    /// The jobs the acting user may see, newest first.
    #[command(after_help = "Example:\n  joblog list --workflow welcome --state suspended --limit 50")]
    List(ListArgs),
    /// One job, and with --history every transition.
    #[command(after_help = "Example:\n  joblog show 0193… --history")]
    Show {
        id: String,
        #[arg(long)]
        history: bool,
    },
    /// Cancels a job, or every matching job with --all-matching.
    #[command(
        after_help = "Example:\n  joblog cancel 0193…\n  joblog cancel --workflow welcome --owner bob --all-matching"
    )]
    Cancel(ActArgs),
    /// Pauses a running job (or every matching one).
    #[command(after_help = "Example:\n  joblog pause 0193…")]
    Pause(ActArgs),
    /// Resumes a suspended job (or every matching one).
    #[command(after_help = "Example:\n  joblog resume 0193…")]
    Resume(ActArgs),
    /// Postpones a job until a time (or every matching one).
    #[command(after_help = "Example:\n  joblog postpone 0193… --until 2026-02-01T00:00:00Z")]
    Postpone {
        #[command(flatten)]
        act: ActArgs,
        #[arg(long)]
        until: String,
    },
    /// Moves the waiting runs of a workflow to another owner (administrators).
    #[command(after_help = "Example:\n  joblog reassign --workflow welcome --from alice --to bob")]
    Reassign {
        #[arg(long)]
        workflow: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// The service: runs due jobs and serves other commands on this
    /// directory through a Unix socket.
    #[command(after_help = "Example:\n  joblog run --workers 2 --for 10m")]
    Run(RunArgs),
    /// Bulk deletion: now (Immediately), or as jobs the service runs.
    #[command(subcommand, name = "bulk-delete")]
    BulkDelete(BulkDeleteCmd),
    /// The state as it was at a time, rebuilt from the log alone.
    #[command(after_help = "Example:\n  joblog replay --until 2026-01-31T00:00:00Z --status failed")]
    Replay {
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        filters: Filters,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Checks every checksum and the projections against a fresh replay.
    #[command(after_help = "Example:\n  joblog verify --json")]
    Verify,
    /// Copies every intact event of a damaged store, in order, into a new
    /// store, and reports what was lost; never changes the damaged store.
    #[command(
        after_help = "Example:\n  joblog salvage --to ./joblog-data.salvaged\n  joblog salvage --to ./fixed --clamp-future   (a store stamped in the future by a wrong --now)"
    )]
    Salvage {
        /// The new store's data directory: must not exist, or be empty.
        #[arg(long, value_name = "NEWDIR")]
        to: std::path::PathBuf,
        /// Re-stamp events later than the system clock at the system
        /// clock's time (each is reported): the way out for a store whose
        /// events were stamped in the future.
        #[arg(long = "clamp-future")]
        clamp_future: bool,
    },
    /// Submits a Failed or Canceled job again: a new Ready job with the
    /// same definition, linked to the old one by its correlation id.
    #[command(after_help = "Example:\n  joblog resubmit 0193…\n  joblog resubmit 0193… --owner bob")]
    Resubmit {
        id: String,
        /// Who owns the new job (default: the acting user).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Deletes chosen Completed jobs by id, all of them or none (at most
    /// 1000 per call): each leaves every view at once; its space comes
    /// back at the next `joblog compact`.
    #[command(after_help = "Example:\n  joblog delete 0193…\n  joblog delete 0193… 0194… --json")]
    Delete {
        /// The jobs' ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// The service's policy for this store: retry, back-off, loop guard
    /// and command timeout numbers (docs/operations.md, "Policy").
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Bearer tokens for the HTTP API (docs/http.md): each acts as its
    /// user. Administrators handle anyone's, others their own.
    #[command(
        subcommand,
        after_help = "Example:\n  joblog token create alice --name ci --expires-in 30\n  joblog token list\n  joblog token revoke 0194…"
    )]
    Token(TokenCmd),
    /// Counts, sizes, segments, memory, and workflows' back-off.
    #[command(after_help = "Example:\n  joblog stats")]
    Stats,
    /// Rewrites segments to drop what deletions left behind.
    #[command(after_help = "Example:\n  joblog compact")]
    Compact,
    /// The demo: a busy organisation simulated, then the views and a bulk
    /// deletion.
    #[command(after_help = "Example:\n  joblog demo --jobs 100000")]
    Demo(DemoArgs),
}

#[derive(Subcommand, Debug, Clone)]
pub enum UserCmd {
    /// Adds a user (with the basic-user role unless --role says otherwise).
    #[command(after_help = "Example:\n  joblog user add alice --role basic-user --business-unit sales")]
    Add {
        name: String,
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long = "business-unit", default_value = "root")]
        business_unit: String,
        /// The OS user (name or uid) who acts as this user, and only as
        /// this user, through the service.
        #[arg(long = "os-user")]
        os_user: Option<String>,
    },
    /// Deactivates a user: their waiting runs fail when they would resume.
    #[command(after_help = "Example:\n  joblog user deactivate alice")]
    Deactivate { name: String },
    /// Makes a deactivated user active again (administrators only).
    #[command(after_help = "Example:\n  joblog user reactivate alice")]
    Reactivate { name: String },
    /// Every user with business unit, roles and whether active.
    #[command(after_help = "Example:\n  joblog user list --json")]
    List,
    /// Maps an OS user (name or uid) to this user: through the service,
    /// that OS user acts as this user and only as this user.
    #[command(after_help = "Example:\n  joblog user map alice --os-user alice\n  joblog user map alice --none")]
    Map {
        name: String,
        #[arg(long = "os-user", required_unless_present = "none", conflicts_with = "none")]
        os_user: Option<String>,
        /// Removes the user's mapping.
        #[arg(long)]
        none: bool,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum TokenCmd {
    /// Prints a new bearer token acting as USER, once: joblog keeps only
    /// its hash. Administrators make one for anyone, others for themself.
    #[command(after_help = "Example:\n  joblog token create alice --name 'ci deploys' --expires-in 30")]
    Create {
        /// The joblog user the token acts as.
        // (Not named `user`: that is `--as`'s id, which clap would then
        // share with this argument.)
        #[arg(value_name = "USER")]
        owner: String,
        /// A label, to tell tokens apart in `token list`.
        #[arg(long, value_name = "LABEL")]
        name: Option<String>,
        /// Days until it stops working: 1 to 3650 (default 90).
        #[arg(long = "expires-in", value_name = "DAYS")]
        expires_in: Option<u32>,
    },
    /// Tokens with their user, name, dates and whether they work: every
    /// one for administrators, one's own for others. Never a secret.
    #[command(after_help = "Example:\n  joblog token list --json")]
    List,
    /// Revokes a token (by its id, from `token list`): it stops working at once.
    #[command(after_help = "Example:\n  joblog token revoke 0194…")]
    Revoke {
        /// The token's id.
        id: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum ConfigCmd {
    /// Sets one number for this store (administrators); the running
    /// service takes it at its next pass.
    #[command(
        after_help = "Example:\n  joblog config set backoff.threshold 5\n  joblog config set command.timeout_secs 600"
    )]
    Set { key: String, value: String },
    /// Returns one number to its default (administrators).
    #[command(after_help = "Example:\n  joblog config unset command.timeout_secs")]
    Unset { key: String },
    /// Every key: the value in force, whether the store sets it, its default and range.
    #[command(after_help = "Example:\n  joblog config show --json\n  joblog config show --until 2026-01-31T00:00:00Z")]
    Show {
        /// The policy as it was in force at this time (RFC 3339), rebuilt from the log.
        #[arg(long)]
        until: Option<String>,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum RoleCmd {
    /// Defines a role from privileges at depths.
    #[command(after_help = "Example:\n  joblog role add auditor --privilege read:organization --privilege write:user")]
    Add {
        name: String,
        /// PRIV:DEPTH, e.g. read:organization (PRIV: create, read, write,
        /// delete, assign; DEPTH: user, business-unit, parent-child,
        /// organization).
        #[arg(long = "privilege", required = true)]
        privileges: Vec<String>,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum UnitCmd {
    /// Adds a business unit under a parent (root by default).
    #[command(after_help = "Example:\n  joblog business-unit add sales --parent root")]
    Add {
        name: String,
        #[arg(long, default_value = "root")]
        parent: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum WorkflowCmd {
    /// Defines a workflow; its jobs are owned by its owner.
    #[command(after_help = "Example:\n  joblog workflow add welcome --name 'Welcome email' --owner alice")]
    Add {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        owner: Option<String>,
    },
    /// Changes a workflow's owner (its waiting runs then fail unless reassigned).
    #[command(name = "set-owner", after_help = "Example:\n  joblog workflow set-owner welcome bob")]
    SetOwner {
        id: String,
        /// The new owner.
        #[arg(value_name = "USER")]
        owner: String,
    },
    /// Every workflow definition with its owner.
    #[command(after_help = "Example:\n  joblog workflow list")]
    List,
}

#[derive(Args, Debug, Clone)]
pub struct SubmitArgs {
    #[arg(long)]
    pub name: String,
    /// A code or a name (workflow, system-event, bulk-email, bulk-delete, …).
    #[arg(long = "type", default_value = "workflow")]
    pub operationtype: String,
    #[arg(long)]
    pub workflow: Option<String>,
    /// TABLE:ID
    #[arg(long)]
    pub regarding: Option<String>,
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long = "postpone-until")]
    pub postpone_until: Option<String>,
    #[arg(long = "dependency-token")]
    pub dependency_token: Option<String>,
    /// A shell command the job runs (exit 0: Succeeded, 75: retried, other: Failed).
    #[arg(long)]
    pub command: Option<String>,
    /// End the command's run after this many seconds (1 to 2592000): it
    /// fails with error code -1006. Without it the default applies: the
    /// store's command.timeout_secs, else `joblog run --command-timeout`.
    #[arg(long, requires = "command", value_parser = parse_timeout)]
    pub timeout: Option<u64>,
    /// The job is run by a program that embeds joblog and registers a
    /// handler for it: `joblog run` alone runs only command jobs, so a job
    /// without --command is refused unless this says who runs it.
    #[arg(long = "external-handler", conflicts_with = "command")]
    pub external_handler: bool,
}

/// The filters `list`, `replay` and the bulk actions share.
#[derive(Args, Debug, Clone, Default)]
pub struct Filters {
    /// System Job Type: a code or a name (workflow, bulk-email, …).
    #[arg(long = "type")]
    pub operationtype: Option<String>,
    /// State: a code or a name (ready, suspended, locked, completed).
    #[arg(long)]
    pub state: Option<String>,
    /// Status Reason: a code or a name (waiting-for-resources, failed, …).
    #[arg(long)]
    pub status: Option<String>,
    /// Process Session: the jobs of one workflow definition.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Background Processes: the jobs regarding one row (TABLE:ID).
    #[arg(long)]
    pub regarding: Option<String>,
    #[arg(long)]
    pub owner: Option<String>,
    /// RFC 3339.
    #[arg(long = "created-before")]
    pub created_before: Option<String>,
    /// RFC 3339.
    #[arg(long = "created-after")]
    pub created_after: Option<String>,
    /// RFC 3339.
    #[arg(long = "completed-before")]
    pub completed_before: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub filters: Filters,
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub after: Option<String>,
    /// Print only {"count": N}.
    #[arg(long)]
    pub count: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ActArgs {
    /// The job; or give filters and --all-matching.
    pub id: Option<String>,
    #[command(flatten)]
    pub filters: Filters,
    #[arg(long = "all-matching")]
    pub all_matching: bool,
    /// With --all-matching and no filter: act on every job the user may
    /// see (without it, --all-matching needs at least one filter).
    #[arg(long, requires = "all_matching")]
    pub everything: bool,
    /// With --all-matching: say how many jobs would change, and which,
    /// without changing any.
    #[arg(long = "dry-run", requires = "all_matching")]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Also serve HTTP on this address (`HOST:PORT`, e.g. 127.0.0.1:8080):
    /// the native API, the Dataverse-compatible Web API, the dashboard,
    /// /metrics and /healthz (docs/http.md). Without it no TCP port is opened.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// With --http: serve HTTPS with this PEM certificate chain.
    #[arg(long = "tls-cert", value_name = "FILE", requires_all = ["http", "tls_key"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// With --http: the PEM private key of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE", requires_all = ["http", "tls_cert"])]
    pub tls_key: Option<std::path::PathBuf>,
    /// Worker threads (1 to 256, `docs/limits.md`).
    #[arg(long, default_value_t = 2, value_parser = parse_workers)]
    pub workers: usize,
    /// Run what is due now and return.
    #[arg(long, conflicts_with_all = ["until_idle", "for_"])]
    pub once: bool,
    /// Return when nothing is due.
    #[arg(long = "until-idle", conflicts_with = "for_")]
    pub until_idle: bool,
    /// Run this long (e.g. 30s, 10m, 2h), then stop gracefully.
    #[arg(long = "for")]
    pub for_: Option<String>,
    /// End a command job's run after this many seconds when the job
    /// carries no timeout of its own (`submit --timeout`) and the store
    /// sets no command.timeout_secs; default: none.
    #[arg(long = "command-timeout", value_parser = parse_timeout)]
    pub command_timeout: Option<u64>,
    /// The operator log on stderr: one line per job start and end, back-off
    /// hold and release, deletion, compaction; human or JSON lines.
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// error, warn, info (the default), debug, trace or off; RUST_LOG when
    /// not given.
    #[arg(long = "log-level")]
    pub log_level: Option<String>,
}

/// How `joblog run` writes its operator log.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug, Clone)]
pub enum BulkDeleteCmd {
    /// The Immediately option: deletes now and gives the space back.
    #[command(after_help = "Example:\n  joblog bulk-delete now --type workflow --status succeeded --older-than 30")]
    Now {
        #[command(flatten)]
        criteria: CriteriaArgs,
        /// At most this many jobs (1,000,000 at most), oldest first.
        #[arg(long, default_value_t = 1_000_000)]
        limit: u64,
    },
    /// A Bulk Delete job that the service runs when due.
    #[command(
        after_help = "Example:\n  joblog bulk-delete create --name Nightly --type workflow --recurrence 'FREQ=DAILY;INTERVAL=1'"
    )]
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        criteria: CriteriaArgs,
        /// When it first runs (RFC 3339; default now).
        #[arg(long)]
        start: Option<String>,
        /// FREQ=HOURLY|DAILY|WEEKLY[;INTERVAL=N]
        #[arg(long)]
        recurrence: Option<String>,
    },
    /// Bulk Delete jobs with their successcount and failurecount.
    #[command(after_help = "Example:\n  joblog bulk-delete list --json")]
    List,
}

#[derive(Args, Debug, Clone)]
pub struct CriteriaArgs {
    /// A System Job Type to delete (code or name; repeat for more).
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// A Completed reason: succeeded, failed, canceled (repeat; default: all three).
    #[arg(long = "status")]
    pub reasons: Vec<String>,
    /// Only jobs completed more than this many days ago.
    #[arg(long = "older-than", default_value_t = 30)]
    pub older_than: u32,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Jobs to simulate.
    #[arg(long, default_value_t = 1_000_000)]
    pub jobs: u64,
    /// Simulated days.
    #[arg(long, default_value_t = 120)]
    pub days: u32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// `--timeout`, `--command-timeout`: whole seconds, digits only, 1 to
/// [`joblog::domain::limits::MAX_COMMAND_TIMEOUT_SECS`].
fn parse_timeout(s: &str) -> Result<u64, String> {
    let max = joblog::domain::limits::MAX_COMMAND_TIMEOUT_SECS;
    joblog::domain::limits::parse_command_timeout(s)
        .ok_or_else(|| format!("{s:?}: give a timeout in whole seconds (digits only), from 1 to {max}"))
}

/// `--workers`: 1 to [`joblog::domain::limits::MAX_WORKERS`].
fn parse_workers(s: &str) -> Result<usize, String> {
    let max = joblog::domain::limits::MAX_WORKERS;
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: give a number of workers from 1 to {max}")),
    }
}
