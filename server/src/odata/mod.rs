//! OData v4 query options over `asyncoperation` (docs/http.md, "Dataverse
//! Web API"): the columns and their JSON, `$select`, `$filter`
//! ([`filter`]), `$orderby`, `$top`, `$count`, `Prefer:
//! odata.maxpagesize`, and the opaque `$skiptoken`. Evaluating a filter on a
//! job and planning it onto the engine's indexed [`joblog::Filter`] is
//! [`eval`].

pub mod eval;
pub mod filter;

use std::hash::{Hash, Hasher};

use base64::Engine as _;
use joblog::{Cursor, Job, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use filter::{parse as parse_filter, Expr, FilterError};

/// The default and largest page (`Prefer: odata.maxpagesize`), as the platform's.
pub const MAX_PAGE: usize = 5000;

/// What kind of value a column holds, which decides how it compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer.
    Int,
    /// Free text: compared ignoring case, as the platform does.
    Text,
    /// A joblog name (user, business unit, workflow, `table:id`, token):
    /// compared exactly, as joblog's names are case-sensitive.
    Ident,
    /// A GUID.
    Guid,
    /// A date-time, compared at the whole second it is shown with.
    Time,
}

impl Kind {
    /// Text or a name.
    pub fn is_text(self) -> bool {
        matches!(self, Kind::Text | Kind::Ident)
    }

    /// For messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Int => "an integer",
            Kind::Text => "text",
            Kind::Ident => "a name (text)",
            Kind::Guid => "a GUID",
            Kind::Time => "a date-time",
        }
    }
}

/// A column of `asyncoperation` joblog serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// `asyncoperationid`
    Id,
    /// `name`
    Name,
    /// `operationtype`
    OperationType,
    /// `statecode`
    StateCode,
    /// `statuscode`
    StatusCode,
    /// `_ownerid_value` (`ownerid`): the owner's user name in joblog.
    Owner,
    /// `_owningbusinessunit_value` (`owningbusinessunit`): a business unit's name.
    BusinessUnit,
    /// `_regardingobjectid_value` (`regardingobjectid`): `table:id`.
    Regarding,
    /// `_workflowactivationid_value` (`workflowactivationid`): the workflow's id (a name).
    Workflow,
    /// `createdon`
    CreatedOn,
    /// `startedon`
    StartedOn,
    /// `completedon`
    CompletedOn,
    /// `modifiedon`
    ModifiedOn,
    /// `postponeuntil`
    PostponeUntil,
    /// `retrycount`
    RetryCount,
    /// `errorcode`
    ErrorCode,
    /// `message`
    Message,
    /// `friendlymessage`
    FriendlyMessage,
    /// `depth`
    Depth,
    /// `correlationid`
    CorrelationId,
    /// `dependencytoken`
    DependencyToken,
}

impl Column {
    /// Every column, in the order a row shows them.
    pub const ALL: [Column; 21] = [
        Column::Id,
        Column::Name,
        Column::OperationType,
        Column::StateCode,
        Column::StatusCode,
        Column::Owner,
        Column::BusinessUnit,
        Column::Regarding,
        Column::Workflow,
        Column::CreatedOn,
        Column::StartedOn,
        Column::CompletedOn,
        Column::ModifiedOn,
        Column::PostponeUntil,
        Column::RetryCount,
        Column::ErrorCode,
        Column::Message,
        Column::FriendlyMessage,
        Column::Depth,
        Column::CorrelationId,
        Column::DependencyToken,
    ];

    /// The name a row's JSON uses (lookups as `_X_value`, as the platform).
    pub fn name(self) -> &'static str {
        match self {
            Column::Id => "asyncoperationid",
            Column::Name => "name",
            Column::OperationType => "operationtype",
            Column::StateCode => "statecode",
            Column::StatusCode => "statuscode",
            Column::Owner => "_ownerid_value",
            Column::BusinessUnit => "_owningbusinessunit_value",
            Column::Regarding => "_regardingobjectid_value",
            Column::Workflow => "_workflowactivationid_value",
            Column::CreatedOn => "createdon",
            Column::StartedOn => "startedon",
            Column::CompletedOn => "completedon",
            Column::ModifiedOn => "modifiedon",
            Column::PostponeUntil => "postponeuntil",
            Column::RetryCount => "retrycount",
            Column::ErrorCode => "errorcode",
            Column::Message => "message",
            Column::FriendlyMessage => "friendlymessage",
            Column::Depth => "depth",
            Column::CorrelationId => "correlationid",
            Column::DependencyToken => "dependencytoken",
        }
    }

    /// The attribute's logical name (`ownerid` for `_ownerid_value`).
    pub fn logical_name(self) -> &'static str {
        match self {
            Column::Owner => "ownerid",
            Column::BusinessUnit => "owningbusinessunit",
            Column::Regarding => "regardingobjectid",
            Column::Workflow => "workflowactivationid",
            other => other.name(),
        }
    }

    /// A column by its JSON name or its logical name.
    pub fn parse(s: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == s || c.logical_name() == s)
    }

    /// How it compares.
    pub fn kind(self) -> Kind {
        match self {
            Column::Id | Column::CorrelationId => Kind::Guid,
            Column::Name | Column::Message | Column::FriendlyMessage => Kind::Text,
            Column::Owner | Column::BusinessUnit | Column::Regarding | Column::Workflow | Column::DependencyToken => {
                Kind::Ident
            }
            Column::CreatedOn
            | Column::StartedOn
            | Column::CompletedOn
            | Column::ModifiedOn
            | Column::PostponeUntil => Kind::Time,
            Column::OperationType
            | Column::StateCode
            | Column::StatusCode
            | Column::RetryCount
            | Column::ErrorCode
            | Column::Depth => Kind::Int,
        }
    }
}

/// A value of a job's column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// No value.
    Null,
    /// An integer.
    Int(i64),
    /// Text (or a name).
    Text(String),
    /// A GUID.
    Guid(Uuid),
    /// A date-time.
    Time(Timestamp),
}

/// The value of `col` on `job`.
pub fn value(job: &Job, col: Column) -> Val {
    let text = |s: &Option<String>| s.clone().map_or(Val::Null, Val::Text);
    let time = |t: Option<Timestamp>| t.map_or(Val::Null, Val::Time);
    match col {
        Column::Id => Val::Guid(job.id),
        Column::Name => Val::Text(job.name.clone()),
        Column::OperationType => Val::Int(i64::from(job.operationtype.0)),
        Column::StateCode => Val::Int(i64::from(job.status.statecode())),
        Column::StatusCode => Val::Int(i64::from(job.status.statuscode())),
        Column::Owner => Val::Text(job.owner.clone()),
        Column::BusinessUnit => Val::Text(job.owningbusinessunit.clone()),
        Column::Regarding => job.regarding.as_ref().map_or(Val::Null, |r| Val::Text(r.to_string())),
        Column::Workflow => text(&job.workflow),
        Column::CreatedOn => Val::Time(job.createdon),
        Column::StartedOn => time(job.startedon),
        Column::CompletedOn => time(job.completedon),
        Column::ModifiedOn => Val::Time(job.modifiedon),
        Column::PostponeUntil => time(job.postponeuntil),
        Column::RetryCount => Val::Int(i64::from(job.retrycount)),
        Column::ErrorCode => job.errorcode.map_or(Val::Null, |e| Val::Int(i64::from(e))),
        Column::Message => text(&job.message),
        Column::FriendlyMessage => text(&job.friendlymessage),
        Column::Depth => Val::Int(i64::from(job.depth)),
        Column::CorrelationId => job.correlationid.map_or(Val::Null, Val::Guid),
        Column::DependencyToken => text(&job.dependencytoken),
    }
}

/// A date-time as the platform shows it: UTC, whole seconds
/// (`2026-01-01T00:00:00Z`).
pub fn show_time(t: Timestamp) -> String {
    t.to_datetime().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A job's `@odata.etag`: a weak tag of its `modifiedon` in microseconds
/// (every change a job goes through sets it, and time never goes backwards
/// in a store).
pub fn etag(job: &Job) -> String {
    etag_of(job.modifiedon)
}

/// The tag of a row modified at `modifiedon`.
pub fn etag_of(modifiedon: Timestamp) -> String {
    format!("W/\"{}\"", modifiedon.micros())
}

/// A job as a row of the Web API: `@odata.etag`, `asyncoperationid` (always)
/// and the selected columns (every column when `select` is `None`). With
/// `annotate` (the client's `Prefer: odata.include-annotations`), the
/// option columns also carry their labels and the owner its name, as
/// `COLUMN@OData.Community.Display.V1.FormattedValue`.
pub fn row(job: &Job, select: Option<&[Column]>, annotate: bool) -> Value {
    let mut m = Map::new();
    m.insert("@odata.etag".into(), Value::String(etag(job)));
    let all = Column::ALL;
    let cols: &[Column] = select.unwrap_or(&all);
    if !cols.contains(&Column::Id) {
        m.insert(Column::Id.name().into(), Value::String(job.id.to_string()));
    }
    for &c in cols {
        let v = match value(job, c) {
            Val::Null => Value::Null,
            Val::Int(i) => Value::from(i),
            Val::Text(s) => Value::String(s),
            Val::Guid(g) => Value::String(g.to_string()),
            Val::Time(t) => Value::String(show_time(t)),
        };
        m.insert(c.name().into(), v);
        let label = match c {
            Column::StateCode if annotate => Some(job.status.state().name().to_string()),
            Column::StatusCode if annotate => Some(job.status.reason().name().to_string()),
            Column::OperationType if annotate => Some(job.operationtype.display_name()),
            Column::Owner if annotate => Some(job.owner.clone()),
            _ => None,
        };
        if let Some(l) = label {
            m.insert(format!("{}@{FORMATTED}", c.name()), Value::String(l));
        }
    }
    Value::Object(m)
}

/// The platform's annotation of a value's label.
pub const FORMATTED: &str = "OData.Community.Display.V1.FormattedValue";

/// `$select=a,b`: the columns (unknown → an error naming it).
pub fn parse_select(s: &str) -> Result<Vec<Column>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let c = Column::parse(part).ok_or_else(|| format!("$select: column '{part}' is not supported"))?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// What `$orderby` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortCol {
    /// `createdon`
    CreatedOn,
    /// `completedon`
    CompletedOn,
    /// `name`
    Name,
}

/// `$orderby`: a list of columns, each `asc` (the default) or `desc`.
pub fn parse_orderby(s: &str) -> Result<Vec<(SortCol, bool)>, String> {
    let mut out: Vec<(SortCol, bool)> = Vec::new();
    for item in s.split(',').map(str::trim) {
        let mut words = item.split_whitespace();
        let col = words.next().unwrap_or("");
        let col = match col {
            "createdon" => SortCol::CreatedOn,
            "completedon" => SortCol::CompletedOn,
            "name" => SortCol::Name,
            "" => return Err("$orderby: an empty item".into()),
            other => {
                return Err(format!(
                    "$orderby: column '{other}' is not supported (createdon, completedon and name are)"
                ))
            }
        };
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(format!("$orderby: '{other}' after '{item}' is not asc or desc")),
        };
        if let Some(extra) = words.next() {
            return Err(format!("$orderby: '{extra}' in '{item}' was not expected"));
        }
        if out.iter().any(|o| o.0 == col) {
            return Err(format!("$orderby: '{item}' names a column twice"));
        }
        out.push((col, desc));
    }
    Ok(out)
}

/// Where the next page starts, inside a `$skiptoken`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Position {
    /// The engine's order (`createdon desc`): its cursor (`None` only when
    /// a page stopped at its scan budget before any row).
    Engine(Option<String>),
    /// Any other order: the sort key of the last row given, and its id.
    Sorted(Vec<eval::SortVal>, Uuid),
}

/// The content of a `$skiptoken`: where to go on, how many rows were given
/// (for `$top`), and a hash of the query it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipToken {
    /// The token's format.
    pub v: u8,
    /// The hash of the query ([`query_hash`]).
    pub q: u64,
    /// Rows given so far.
    pub n: u64,
    /// Where to start.
    pub at: Position,
}

impl SkipToken {
    /// base64url of its JSON.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a token and checks it belongs to the query with hash `q`.
    pub fn decode(s: &str, q: u64) -> Result<SkipToken, String> {
        let bad = || "$skiptoken: not a token this server gave for this query".to_string();
        if s.len() > 4096 {
            return Err(bad());
        }
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| bad())?;
        let t: SkipToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if t.v != 1 || t.q != q {
            return Err(bad());
        }
        if let Position::Engine(Some(c)) = &t.at {
            c.parse::<Cursor>().map_err(|_| bad())?;
        }
        Ok(t)
    }
}

/// A hash of what decides a query's rows and their order (`$filter`,
/// `$orderby`, `$top`, the acting user): a token from another query is
/// refused instead of resuming somewhere meaningless.
pub fn query_hash(user: &str, filter: &str, orderby: &str, top: Option<usize>) -> u64 {
    // SipHash with fixed keys: the same within one build of the server,
    // which is as long as a token needs to live across restarts of it.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (user, filter, orderby, top).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_orderby() {
        assert_eq!(parse_select("name, ownerid,_ownerid_value").unwrap(), vec![Column::Name, Column::Owner]);
        assert!(parse_select("name,nosuch").unwrap_err().contains("'nosuch'"));
        assert_eq!(
            parse_orderby("name desc,createdon").unwrap(),
            vec![(SortCol::Name, true), (SortCol::CreatedOn, false)]
        );
        assert!(parse_orderby("statecode").unwrap_err().contains("'statecode'"));
        assert!(parse_orderby("name sideways").is_err());
    }

    #[test]
    fn tokens_belong_to_their_query() {
        let t = SkipToken { v: 1, q: 7, n: 10, at: Position::Engine(None) };
        let s = t.encode();
        assert_eq!(SkipToken::decode(&s, 7).unwrap(), t);
        assert!(SkipToken::decode(&s, 8).is_err());
        assert!(SkipToken::decode("!!", 7).is_err());
        assert_ne!(query_hash("a", "x", "", None), query_hash("a", "y", "", None));
    }
}
