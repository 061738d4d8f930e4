//! The Dataverse-compatible Web API, `/api/data/v9.2/` (docs/http.md,
//! "Dataverse Web API"): `asyncoperations` (list with OData query options,
//! one row, `PATCH` for the four actions, `DELETE`), the `BulkDelete`
//! action, `bulkdeleteoperations`, and the metadata clients read first
//! (`EntityDefinitions`). Every answer carries `OData-Version: 4.0`; every
//! error the platform's body ([`ApiError`]).
//!
//! Paths like `asyncoperations(ID)` do not fit a router's segments, so one
//! handler takes everything under the prefix and reads the resource path
//! itself.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use joblog::domain::{DeletionCriteria, DomainError, State as JobState, StatusReason};
use joblog::engine::NewBulkDelete;
use joblog::{Cursor, Error, Filter, Job, OperationType, Session, Status, Timestamp, UserAction};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::odata::eval::{self, SortVal};
use crate::odata::{self, Column, Expr, Position, SkipToken, SortCol, MAX_PAGE};
use crate::{blocking, ApiError, AppState};

/// The Web API's path prefix.
pub const PREFIX: &str = "/api/data/v9.2";

/// Rows one engine call hands over while a filter's residual conditions
/// are checked row by row.
const CHUNK: usize = 1000;
/// Rows a page may examine in the engine's order before it answers with
/// what it found and a `@odata.nextLink` that goes on from there (a short
/// page, as the platform allows).
pub const SCAN_BUDGET: usize = 100_000;
/// Rows a query may examine to sort by anything but `createdon desc`, or
/// to count a filter the indexes cannot count: beyond it, a 400 names the
/// option (docs/http.md, "Costs and bounds").
pub const SCAN_MAX: usize = 200_000;

/// The scan bounds a list query runs within ([`SCAN_BUDGET`], [`SCAN_MAX`];
/// smaller in the tests).
#[derive(Debug, Clone, Copy)]
struct Bounds {
    budget: usize,
    max: usize,
}

const BOUNDS: Bounds = Bounds { budget: SCAN_BUDGET, max: SCAN_MAX };

/// The routes of the Web API, merged into [`crate::router`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PREFIX, any(service_document))
        .route(&format!("{PREFIX}/"), any(service_document))
        .route(&format!("{PREFIX}/{{*rest}}"), any(dispatch))
}

/// What a path under the prefix names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    AsyncOperations,
    /// `asyncoperations/$count`: the number alone, as text.
    AsyncOperationsCount,
    AsyncOperation(Uuid),
    BulkDeleteOperations,
    BulkDeleteOperation(Uuid),
    BulkDelete,
    EntityDefinitions,
    EntityDefinition(String),
    Attributes(String),
    Attribute(String, String),
}

impl Resource {
    fn parse(path: &str) -> Result<Resource, ApiError> {
        let unknown = || {
            ApiError::not_found(format!(
                "no such resource '{path}': joblog serves asyncoperations, bulkdeleteoperations, BulkDelete and EntityDefinitions"
            ))
        };
        let keyed = |s: &str, set: &str| -> Option<Result<Uuid, ApiError>> {
            let inner = s.strip_prefix(set)?.strip_prefix('(')?.strip_suffix(')')?;
            let inner = inner.strip_prefix(&format!("{}id=", set.trim_end_matches('s'))).unwrap_or(inner);
            Some(Uuid::parse_str(inner).map_err(|_| ApiError::bad_request(format!("'{inner}' is not a GUID"))))
        };
        let logical = |s: &str, set: &str| -> Option<String> {
            let inner = s.strip_prefix(set)?.strip_prefix("(LogicalName='")?.strip_suffix("')")?;
            Some(inner.to_string())
        };
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        Ok(match parts.as_slice() {
            ["asyncoperations"] => Resource::AsyncOperations,
            ["bulkdeleteoperations"] => Resource::BulkDeleteOperations,
            ["BulkDelete" | "Microsoft.Dynamics.CRM.BulkDelete"] => Resource::BulkDelete,
            ["EntityDefinitions"] => Resource::EntityDefinitions,
            [one] => {
                if let Some(id) = keyed(one, "asyncoperations") {
                    Resource::AsyncOperation(id?)
                } else if let Some(id) = keyed(one, "bulkdeleteoperations") {
                    Resource::BulkDeleteOperation(id?)
                } else if let Some(name) = logical(one, "EntityDefinitions") {
                    Resource::EntityDefinition(name)
                } else {
                    return Err(unknown());
                }
            }
            ["asyncoperations", "$count"] => Resource::AsyncOperationsCount,
            [def, rest @ ..] if !rest.is_empty() && rest.len() <= 2 => {
                let name = logical(def, "EntityDefinitions").ok_or_else(unknown)?;
                // A cast segment (`/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`) changes nothing here.
                let cast_ok = rest.get(1).is_none_or(|c| c.starts_with("Microsoft.Dynamics.CRM."));
                match rest[0] {
                    "Attributes" if rest.len() == 1 => Resource::Attributes(name),
                    a if cast_ok => Resource::Attribute(name, logical(a, "Attributes").ok_or_else(unknown)?),
                    _ => return Err(unknown()),
                }
            }
            _ => return Err(unknown()),
        })
    }
}

/// What every answer of this face carries.
fn odata(mut r: Response) -> Response {
    r.headers_mut().insert("OData-Version", HeaderValue::from_static("4.0"));
    r
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; odata.metadata=minimal"));
    odata(r)
}

/// The request's own URL base (`https://host/api/data/v9.2/`), for
/// `@odata.context`, `@odata.nextLink` and `OData-EntityId`.
fn base_url(s: &AppState, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if s.tls { "https" } else { "http" };
    format!("{scheme}://{host}{PREFIX}/")
}

/// `GET /api/data/v9.2/`: the service document.
async fn service_document(State(s): State<AppState>, _caller: Caller, req: Request) -> Response {
    if req.method() != Method::GET {
        return odata(ApiError::method().into_response());
    }
    let base = base_url(&s, req.headers());
    let sets = ["asyncoperations", "bulkdeleteoperations", "EntityDefinitions"];
    json_answer(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{base}$metadata"),
            "value": sets.iter().map(|n| json!({"name": n, "kind": "EntitySet", "url": n})).collect::<Vec<_>>(),
        }),
    )
}

/// Everything under the prefix.
async fn dispatch(State(s): State<AppState>, caller: Caller, req: Request) -> Response {
    match serve(s, caller, req).await {
        Ok(r) => odata(r),
        Err(e) => odata(e.into_response()),
    }
}

/// The query string's options, percent-decoded (`+` is a space, as in
/// every form-encoded query; a literal plus is `%2B`).
struct Options(Vec<(String, String)>);

impl Options {
    fn parse(query: Option<&str>) -> Result<Options, ApiError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if out.iter().any(|(x, _)| *x == k) {
                return Err(ApiError::bad_request(format!("the query option {k} is given twice")));
            }
            out.push((k.into_owned(), v.into_owned()));
        }
        Ok(Options(out))
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
    }

    /// Refuses a `$` option not in `allowed`; other names are custom options, ignored.
    fn only(&self, allowed: &[&str], resource: &str) -> Result<(), ApiError> {
        for (k, _) in &self.0 {
            if k.starts_with('$') && !allowed.contains(&k.as_str()) {
                let why = if k == "$skip" { " (page with odata.maxpagesize and @odata.nextLink)" } else { "" };
                return Err(ApiError::bad_request(format!("{k} is not supported on {resource}{why}")));
            }
        }
        Ok(())
    }
}

/// The `Prefer` header's preferences (`odata.maxpagesize=N`, `return=representation`).
struct Prefer {
    maxpagesize: Option<usize>,
    representation: bool,
    /// `odata.include-annotations="…"` as asked (labels are given for `*`
    /// and for any list that names the formatted value).
    annotations: Option<String>,
}

impl Prefer {
    fn annotate(&self) -> bool {
        self.annotations.as_deref().is_some_and(|a| {
            a.split(',')
                .map(str::trim)
                .any(|x| x == "*" || x == odata::FORMATTED || x == "OData.Community.Display.V1.*")
        })
    }

    /// `Preference-Applied` for what was honoured.
    fn applied(&self, r: &mut Response) {
        let mut parts = Vec::new();
        if let Some(n) = self.maxpagesize {
            parts.push(format!("odata.maxpagesize={n}"));
        }
        if let (true, Some(a)) = (self.annotate(), &self.annotations) {
            parts.push(format!("odata.include-annotations=\"{a}\""));
        }
        if let (false, Ok(v)) = (parts.is_empty(), HeaderValue::from_str(&parts.join(","))) {
            r.headers_mut().insert("Preference-Applied", v);
        }
    }
}

impl Prefer {
    fn parse(headers: &HeaderMap) -> Result<Prefer, ApiError> {
        let mut p = Prefer { maxpagesize: None, representation: false, annotations: None };
        for h in headers.get_all("prefer") {
            let h = h.to_str().map_err(|_| ApiError::bad_request("the Prefer header is not text"))?;
            for item in split_outside_quotes(h).into_iter().map(str::trim) {
                let (k, v) = item.split_once('=').map_or((item, ""), |(k, v)| (k.trim(), v.trim().trim_matches('"')));
                match k {
                    "odata.maxpagesize" => {
                        let n: usize = v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                            ApiError::bad_request(format!("Prefer: odata.maxpagesize={v} is not a positive number"))
                        })?;
                        p.maxpagesize = Some(n.min(MAX_PAGE));
                    }
                    "return" if v == "representation" => p.representation = true,
                    "odata.include-annotations" => p.annotations = Some(v.to_string()),
                    _ => {}
                }
            }
        }
        Ok(p)
    }
}

/// A header's comma-separated items; commas inside double quotes stay
/// (`odata.include-annotations="a,b"` is one item).
fn split_outside_quotes(h: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in h.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&h[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&h[start..]);
    out
}

async fn serve(s: AppState, caller: Caller, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().strip_prefix(PREFIX).unwrap_or("").to_string();
    let path = percent_encoding::percent_decode_str(&path)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("the path is not UTF-8"))?
        .into_owned();
    let resource = Resource::parse(&path)?;
    let opts = Options::parse(req.uri().query())?;
    let base = base_url(&s, req.headers());
    let prefer = Prefer::parse(req.headers())?;
    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), s.limits.max_body)
        .await
        .map_err(|_| ApiError::too_large(s.limits.max_body))?;
    // The face takes JSON only: a form (the one body a cross-site page can
    // send with a browser's cookie unchecked) is refused outright.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !body.is_empty() && !json {
        return Err(ApiError::bad_request("the body must be JSON (Content-Type: application/json)"));
    }
    let Caller { user, session, .. } = caller;
    match (resource, method) {
        (Resource::AsyncOperations, Method::GET) => list_async(&user, session, opts, prefer, base).await,
        (Resource::AsyncOperationsCount, Method::GET) => count_async(&user, session, opts).await,
        (Resource::AsyncOperation(id), Method::GET) => get_async(session, id, opts, prefer, base).await,
        (Resource::AsyncOperation(id), Method::PATCH) => {
            patch_async(session, id, opts, prefer, headers, body, base).await
        }
        (Resource::AsyncOperation(id), Method::DELETE) => delete_async(session, id, headers).await,
        (Resource::BulkDelete, Method::POST) => bulk_delete(session, body, base).await,
        (Resource::BulkDeleteOperations, Method::GET) => bulk_delete_operations(session, None, opts, base).await,
        (Resource::BulkDeleteOperation(id), Method::GET) => bulk_delete_operations(session, Some(id), opts, base).await,
        (Resource::EntityDefinitions, Method::GET) => metadata::entity_definitions(None, &opts, &base),
        (Resource::EntityDefinition(n), Method::GET) => metadata::entity_definitions(Some(&n), &opts, &base),
        (Resource::Attributes(n), Method::GET) => metadata::attributes(&n, None, &opts, &base),
        (Resource::Attribute(n, a), Method::GET) => metadata::attributes(&n, Some(&a), &opts, &base),
        _ => Err(ApiError::method()),
    }
}

/// A read of one job: a job the caller may not read is as absent as one
/// that does not exist (the contract's 404 for both).
fn get_visible(session: &Session, id: Uuid) -> Result<Job, ApiError> {
    match session.get(id) {
        Ok(j) => Ok(j),
        Err(Error::Domain(DomainError::Denied { .. } | DomainError::NotFound { .. })) => {
            Err(ApiError::not_found(format!("asyncoperation With Id = {id} Does Not Exist")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A list query's options, checked.
struct ListQuery {
    select: Option<Vec<Column>>,
    filter: Option<Expr>,
    orderby: Vec<(SortCol, bool)>,
    top: Option<usize>,
    count: bool,
    token: Option<SkipToken>,
    hash: u64,
    page: usize,
}

impl ListQuery {
    fn parse(user: &str, opts: &Options, prefer: &Prefer) -> Result<ListQuery, ApiError> {
        opts.only(&["$select", "$filter", "$orderby", "$top", "$count", "$skiptoken"], "asyncoperations")?;
        let select = opts.get("$select").map(odata::parse_select).transpose().map_err(ApiError::bad_request)?;
        let filter_text = opts.get("$filter").unwrap_or("");
        let filter = opts
            .get("$filter")
            .map(odata::parse_filter)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let orderby_text = opts.get("$orderby").unwrap_or("");
        let orderby = opts.get("$orderby").map(odata::parse_orderby).transpose().map_err(ApiError::bad_request)?;
        let top = opts
            .get("$top")
            .map(|t| t.parse::<usize>().map_err(|_| ApiError::bad_request(format!("$top={t} is not a whole number"))))
            .transpose()?;
        let count = match opts.get("$count") {
            None | Some("false") => false,
            Some("true") => true,
            Some(o) => return Err(ApiError::bad_request(format!("$count={o} is not true or false"))),
        };
        let hash = odata::query_hash(user, filter_text, orderby_text, top);
        let token =
            opts.get("$skiptoken").map(|t| SkipToken::decode(t, hash)).transpose().map_err(ApiError::bad_request)?;
        // `createdon desc` is the engine's own order; said or not, it is one.
        let orderby = match orderby {
            Some(o) if o != [(SortCol::CreatedOn, true)] => o,
            _ => Vec::new(),
        };
        Ok(ListQuery { select, filter, orderby, top, count, token, hash, page: prefer.maxpagesize.unwrap_or(MAX_PAGE) })
    }
}

/// One page: its rows, where the next starts (if there may be more), the count.
struct ListPage {
    rows: Vec<Job>,
    next: Option<SkipToken>,
    count: Option<usize>,
}

fn list_page(session: &Session, q: &ListQuery, bounds: Bounds) -> Result<ListPage, ApiError> {
    if let Some(id) = eval::single_id(q.filter.as_ref()) {
        // One row at most: read it (as the caller may), check the whole
        // predicate, done. A token here can only follow a full first page.
        let job = match get_visible(session, id) {
            Ok(j) => Some(j).filter(|j| q.filter.as_ref().is_none_or(|p| eval::matches(p, j))),
            Err(e) if e.status == StatusCode::NOT_FOUND => None,
            Err(e) => return Err(e),
        };
        let count = q.count.then_some(usize::from(job.is_some()));
        let room = q.token.is_none() && q.top.is_none_or(|t| t > 0) && q.page > 0;
        let rows = job.filter(|_| room).into_iter().collect();
        return Ok(ListPage { rows, next: None, count });
    }
    let (filter, exact) = eval::plan(q.filter.as_ref());
    let given = q.token.as_ref().map_or(0, |t| t.n);
    let given_usize = usize::try_from(given).unwrap_or(usize::MAX);
    let want = q.top.map_or(q.page, |t| t.saturating_sub(given_usize).min(q.page));
    let (rows, at) = if q.orderby.is_empty() {
        let start = match q.token.as_ref().map(|t| &t.at) {
            None => None,
            Some(Position::Engine(c)) => c.as_deref().map(|c| c.parse::<Cursor>()).transpose().map_err(Error::from)?,
            Some(Position::Sorted(..)) => return Err(ApiError::bad_request("$skiptoken: not a token for this query")),
        };
        page_engine_order(session, q.filter.as_ref(), &filter, exact, start, want, bounds.budget)?
    } else {
        let after = match q.token.as_ref().map(|t| &t.at) {
            None => None,
            Some(Position::Sorted(k, id)) => Some((k.clone(), *id)),
            Some(Position::Engine(_)) => return Err(ApiError::bad_request("$skiptoken: not a token for this query")),
        };
        page_sorted(session, q.filter.as_ref(), &filter, &q.orderby, after, want, bounds.max)?
    };
    let n = given + rows.len() as u64;
    let capped = q.top.is_some_and(|t| n >= t as u64);
    let next = at.filter(|_| !capped).map(|at| SkipToken { v: 1, q: q.hash, n, at });
    let count = if q.count { Some(count(session, q.filter.as_ref(), &filter, exact, bounds.max)?) } else { None };
    Ok(ListPage { rows, next, count })
}

/// A page in the engine's order (newest `createdon` first) from `start`:
/// the engine walks its smallest index for `filter`; each row is checked
/// against the whole predicate. Stops at `want` rows (then looks for one
/// more to know whether there is a next page) or after [`SCAN_BUDGET`] rows
/// examined (a short page that goes on from the last row examined).
fn page_engine_order(
    session: &Session,
    pred: Option<&Expr>,
    filter: &Filter,
    exact: bool,
    start: Option<Cursor>,
    want: usize,
    budget: usize,
) -> Result<(Vec<Job>, Option<Position>), ApiError> {
    let mut rows: Vec<Job> = Vec::new();
    if want == 0 {
        return Ok((rows, None));
    }
    let mut cursor = start;
    let mut scanned = 0usize;
    loop {
        let need = want + 1 - rows.len();
        // Fully indexed: every row the engine gives matches. Otherwise read
        // ahead in chunks, within what is left of the budget.
        let chunk = if exact { need } else { need.max(CHUNK.min(budget.saturating_sub(scanned))) };
        let (jobs, next) = session.list(filter, cursor.as_ref(), chunk)?;
        for mut job in jobs {
            scanned += 1;
            if pred.is_none_or(|p| eval::matches(p, &job)) {
                if rows.len() == want {
                    let last = rows.last().map(|j| Cursor { createdon: j.createdon, id: j.id });
                    return Ok((rows, Some(Position::Engine(last.map(|c| c.to_string())))));
                }
                // The job's input is never shown here; do not hold it.
                job.data = Vec::new();
                rows.push(job);
            }
        }
        let Some(next) = next else { return Ok((rows, None)) };
        cursor = Some(next);
        if scanned >= budget {
            return Ok((rows, Some(Position::Engine(cursor.map(|c| c.to_string())))));
        }
    }
}

/// A page in any other order: one pass over every row the engine's filter
/// lets through (at most [`SCAN_MAX`]), keeping the `want + 1` first rows
/// after `after` in the order asked (bounded memory: at most twice that
/// many rows at a time).
fn page_sorted(
    session: &Session,
    pred: Option<&Expr>,
    filter: &Filter,
    spec: &[(SortCol, bool)],
    after: Option<(Vec<SortVal>, Uuid)>,
    want: usize,
    max: usize,
) -> Result<(Vec<Job>, Option<Position>), ApiError> {
    if want == 0 {
        return Ok((Vec::new(), None));
    }
    let mut kept: Vec<(Vec<SortVal>, Job)> = Vec::new();
    let order = |a: &(Vec<SortVal>, Job), b: &(Vec<SortVal>, Job)| eval::sort_cmp(spec, (&a.0, a.1.id), (&b.0, b.1.id));
    let mut cursor = None;
    let mut scanned = 0usize;
    loop {
        let (jobs, next) = session.list(filter, cursor.as_ref(), CHUNK)?;
        for mut job in jobs {
            scanned += 1;
            if scanned > max {
                return Err(ApiError::bad_request(format!(
                    "$orderby: ordering by anything but createdon desc examines every matching job, and this query has over {max}; narrow $filter (statecode, statuscode, operationtype, ownerid, workflowactivationid, regardingobjectid, createdon, completedon) or order by createdon desc"
                )));
            }
            if !pred.is_none_or(|p| eval::matches(p, &job)) {
                continue;
            }
            let key = eval::sort_key(&job, spec);
            if let Some((k, id)) = &after {
                if eval::sort_cmp(spec, (&key, job.id), (k, *id)) != std::cmp::Ordering::Greater {
                    continue;
                }
            }
            job.data = Vec::new();
            kept.push((key, job));
            if kept.len() > 2 * (want + 1) {
                kept.sort_by(order);
                kept.truncate(want + 1);
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    kept.sort_by(order);
    let more = kept.len() > want;
    kept.truncate(want);
    let at = if more { kept.last().map(|(k, j)| Position::Sorted(k.clone(), j.id)) } else { None };
    Ok((kept.into_iter().map(|(_, j)| j).collect(), at))
}

/// `@odata.count`: the engine's count when the filter is all indexed, else
/// a pass over the rows the indexed part lets through (at most [`SCAN_MAX`]).
fn count(session: &Session, pred: Option<&Expr>, filter: &Filter, exact: bool, max: usize) -> Result<usize, ApiError> {
    if exact {
        return Ok(session.count(filter)?);
    }
    let mut n = 0;
    let mut scanned = 0usize;
    let mut cursor = None;
    loop {
        let (jobs, next) = session.list(filter, cursor.as_ref(), CHUNK)?;
        scanned += jobs.len();
        if scanned > max {
            return Err(ApiError::bad_request(format!(
                "$count: this $filter's conditions that no index serves would be checked on over {max} jobs; narrow it with an indexed condition (docs/http.md) or leave $count out"
            )));
        }
        n += jobs.iter().filter(|j| pred.is_none_or(|p| eval::matches(p, j))).count();
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(n),
        }
    }
}

fn context(base: &str, set: &str, select: Option<&[Column]>, entity: bool) -> String {
    let cols =
        select.map(|s| format!("({})", s.iter().map(|c| c.name()).collect::<Vec<_>>().join(","))).unwrap_or_default();
    let suffix = if entity { "/$entity" } else { "" };
    format!("{base}$metadata#{set}{cols}{suffix}")
}

async fn list_async(
    user: &str,
    session: Session,
    opts: Options,
    prefer: Prefer,
    base: String,
) -> Result<Response, ApiError> {
    let q = ListQuery::parse(user, &opts, &prefer)?;
    let (q, page) = blocking(move || {
        let page = list_page(&session, &q, BOUNDS)?;
        Ok((q, page))
    })
    .await?;
    let mut body = Map::new();
    body.insert("@odata.context".into(), Value::String(context(&base, "asyncoperations", q.select.as_deref(), false)));
    if let Some(c) = page.count {
        body.insert("@odata.count".into(), Value::from(c));
    }
    body.insert(
        "value".into(),
        Value::Array(page.rows.iter().map(|j| odata::row(j, q.select.as_deref(), prefer.annotate())).collect()),
    );
    if let Some(t) = &page.next {
        body.insert("@odata.nextLink".into(), Value::String(next_link(&base, &opts, &t.encode())));
    }
    let mut r = json_answer(StatusCode::OK, Value::Object(body));
    prefer.applied(&mut r);
    Ok(r)
}

/// What a query value keeps escaped in a link: controls, space, and the
/// characters that would end or split it (`&`, `=`, `#`, `+`, `%`, …);
/// `$`, quotes, parentheses and commas stay as they are, as in the
/// platform's links.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `GET asyncoperations/$count[?$filter=…]`: how many rows the query
/// matches, as plain text (the same count as `@odata.count`).
async fn count_async(user: &str, session: Session, opts: Options) -> Result<Response, ApiError> {
    opts.only(&["$filter"], "asyncoperations/$count")?;
    let mut q = ListQuery::parse(user, &opts, &Prefer { maxpagesize: None, representation: false, annotations: None })?;
    // A page of no rows with its count: the list's own planning, one id included.
    q.count = true;
    q.page = 0;
    let n = blocking(move || Ok(list_page(&session, &q, BOUNDS)?.count.unwrap_or(0))).await?;
    let mut r = (StatusCode::OK, n.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}

/// The next page's absolute URL: the same options with the new `$skiptoken`.
fn next_link(base: &str, opts: &Options, token: &str) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string();
    let mut parts: Vec<String> =
        opts.0.iter().filter(|(k, _)| k != "$skiptoken").map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    parts.push(format!("$skiptoken={token}"));
    format!("{base}asyncoperations?{}", parts.join("&"))
}

async fn get_async(
    session: Session,
    id: Uuid,
    opts: Options,
    prefer: Prefer,
    base: String,
) -> Result<Response, ApiError> {
    opts.only(&["$select"], "asyncoperations(ID)")?;
    let select = opts.get("$select").map(odata::parse_select).transpose().map_err(ApiError::bad_request)?;
    let job = blocking(move || get_visible(&session, id)).await?;
    Ok(one_row(&job, select.as_deref(), &base, &prefer))
}

fn one_row(job: &Job, select: Option<&[Column]>, base: &str, prefer: &Prefer) -> Response {
    let mut row = odata::row(job, select, prefer.annotate());
    if let Value::Object(m) = &mut row {
        m.insert("@odata.context".into(), Value::String(context(base, "asyncoperations", select, true)));
    }
    let mut r = json_answer(StatusCode::OK, row);
    prefer.applied(&mut r);
    if let Ok(v) = HeaderValue::from_str(&odata::etag(job)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// What a `PATCH` body asks, as one of the four actions (or nothing).
fn action_of(body: &Bytes) -> Result<Option<UserAction>, ApiError> {
    let v: Value = if body.is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?
    };
    let Value::Object(m) = v else { return Err(ApiError::bad_request("the body must be a JSON object")) };
    let mut statecode = None;
    let mut statuscode = None;
    let mut postpone = None;
    for (k, v) in &m {
        let int = |v: &Value| v.as_i64().ok_or_else(|| ApiError::bad_request(format!("{k}: {v} is not an integer")));
        match k.as_str() {
            "statecode" => statecode = Some(int(v)?),
            "statuscode" => statuscode = Some(int(v)?),
            "postponeuntil" => {
                let s = v.as_str().ok_or_else(|| {
                    ApiError::bad_request(format!("postponeuntil: {v} is not a date-time (2026-01-01T00:00:00Z)"))
                })?;
                postpone = Some(Timestamp::parse(s).map_err(|e| ApiError::bad_request(format!("postponeuntil: {e}")))?);
            }
            // Annotations a client copies from a row it read change nothing.
            k if k.starts_with('@') => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "the column '{other}' cannot be written: only statecode, statuscode and postponeuntil can (docs/http.md)"
                )))
            }
        }
    }
    let refuse = |what: String| {
        ApiError::bad_request(format!(
            "{what} is not a change a user can ask for: Cancel is {{\"statecode\":3,\"statuscode\":32}}, Pause {{\"statecode\":1}}, Resume {{\"statecode\":0}}, Postpone {{\"postponeuntil\":\"…\"}}"
        ))
    };
    Ok(match (statecode, statuscode, postpone) {
        (None, None, None) => None,
        (None, None, Some(t)) => Some(UserAction::Postpone(t)),
        (_, _, Some(_)) => {
            return Err(ApiError::bad_request(
                "postponeuntil cannot be written together with statecode or statuscode: one action at a time",
            ))
        }
        (Some(3) | None, Some(32), None) | (Some(3), None, None) => Some(UserAction::Cancel),
        (Some(1), None | Some(12), None) | (None, Some(12), None) => Some(UserAction::Pause),
        (Some(0), None | Some(0), None) | (None, Some(0), None) => Some(UserAction::Resume),
        (s, r, None) => {
            let mut parts = Vec::new();
            if let Some(s) = s {
                parts.push(format!("statecode {s}"));
            }
            if let Some(r) = r {
                parts.push(format!("statuscode {r}"));
            }
            return Err(refuse(parts.join(" with ")));
        }
    })
}

/// The tags a conditional header lists (`W/` dropped; `*` kept), if the
/// request has it.
fn tags(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<String>> {
    let v = headers.get(name)?.to_str().unwrap_or("");
    Some(v.split(',').map(|t| t.trim().trim_start_matches("W/").to_string()).collect())
}

/// Whether `tags` names the tag of a row modified at `modifiedon`.
fn lists(tags: &[String], modifiedon: Timestamp) -> bool {
    let tag = odata::etag_of(modifiedon);
    let bare = tag.trim_start_matches("W/");
    tags.iter().any(|t| t == "*" || t == bare)
}

/// `If-None-Match` against the job as read: 412 when it names the row's
/// tag, or is `*` ("create only": the row exists, and joblog creates no
/// job through this face).
fn none_match(headers: &HeaderMap, job: &Job) -> Result<(), ApiError> {
    match tags(headers, header::IF_NONE_MATCH) {
        Some(t) if lists(&t, job.modifiedon) => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            crate::error::code::PRECONDITION,
            "If-None-Match: the row exists (joblog does not create rows through PATCH)",
        )),
        _ => Ok(()),
    }
}

/// The `If-Match` condition of a request, for the engine to check against
/// the job's tag in the same write as the change (`Session::act_if`):
/// `Changed` (412) when not met.
fn unchanged(headers: &HeaderMap) -> impl Fn(Timestamp) -> bool {
    let if_match = tags(headers, header::IF_MATCH);
    move |modifiedon| if_match.as_deref().is_none_or(|t| lists(t, modifiedon))
}

#[allow(clippy::too_many_arguments)]
async fn patch_async(
    session: Session,
    id: Uuid,
    opts: Options,
    prefer: Prefer,
    headers: HeaderMap,
    body: Bytes,
    base: String,
) -> Result<Response, ApiError> {
    opts.only(&["$select"], "asyncoperations(ID)")?;
    let select = opts.get("$select").map(odata::parse_select).transpose().map_err(ApiError::bad_request)?;
    let action = action_of(&body)?;
    let job = blocking(move || {
        let job = get_visible(&session, id)?;
        none_match(&headers, &job)?;
        match action {
            None if unchanged(&headers)(job.modifiedon) => Ok(job),
            None => Err(DomainError::Changed { job: id, modifiedon: job.modifiedon }.into()),
            Some(a) => Ok(session.act_if(id, a, unchanged(&headers))?),
        }
    })
    .await?;
    if prefer.representation {
        return Ok(one_row(&job, select.as_deref(), &base, &prefer));
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{base}asyncoperations({id})")) {
        r.headers_mut().insert("OData-EntityId", v);
    }
    if let Ok(v) = HeaderValue::from_str(&odata::etag(&job)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

/// `DELETE asyncoperations(ID)`: the job deleted (`Session::delete_jobs`),
/// 204. A job the caller may not read is 404 like one that does not exist;
/// one they may read but not delete 403; one not Completed 400 (refused);
/// `If-Match` is honored as on `PATCH`.
async fn delete_async(session: Session, id: Uuid, headers: HeaderMap) -> Result<Response, ApiError> {
    blocking(move || {
        none_match(&headers, &get_visible(&session, id)?)?;
        match session.delete_job_if(id, unchanged(&headers)) {
            Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
            // Gone between the read and the deletion (another caller).
            Err(Error::Domain(DomainError::NotFound { .. })) => {
                Err(ApiError::not_found(format!("asyncoperation With Id = {id} Does Not Exist")))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// `POST BulkDelete`: the platform's `BulkDeleteRequest` as JSON, onto a
/// Bulk Delete system job. A condition joblog's deletion criteria cannot
/// say exactly is refused, naming it.
async fn bulk_delete(session: Session, body: Bytes, base: String) -> Result<Response, ApiError> {
    let spec = bulk::parse(&body)?;
    let job = blocking(move || Ok(session.create_bulk_delete(&spec)?)).await?;
    Ok(json_answer(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{base}$metadata#Microsoft.Dynamics.CRM.BulkDeleteResponse"),
            "JobId": job.id.to_string(),
        }),
    ))
}

async fn bulk_delete_operations(
    session: Session,
    id: Option<Uuid>,
    opts: Options,
    base: String,
) -> Result<Response, ApiError> {
    opts.only(&["$select"], "bulkdeleteoperations")?;
    let select: Option<Vec<String>> = opts.get("$select").map(|s| s.split(',').map(|c| c.trim().to_string()).collect());
    if let Some(sel) = &select {
        if let Some(bad) = sel.iter().find(|c| !bulk::COLUMNS.contains(&c.as_str())) {
            return Err(ApiError::bad_request(format!(
                "$select: column '{bad}' is not supported on bulkdeleteoperations"
            )));
        }
    }
    let records = blocking(move || Ok(session.bulk_delete_jobs()?)).await?;
    let rows: Vec<Value> = records.iter().map(|r| bulk::row(r, select.as_deref())).collect();
    match id {
        None => Ok(json_answer(
            StatusCode::OK,
            json!({"@odata.context": format!("{base}$metadata#bulkdeleteoperations"), "value": rows}),
        )),
        Some(id) => {
            let at = records
                .iter()
                .position(|r| r.job.id == id)
                .ok_or_else(|| ApiError::not_found(format!("bulkdeleteoperation With Id = {id} Does Not Exist")))?;
            let mut row = rows[at].clone();
            if let Value::Object(m) = &mut row {
                m.insert(
                    "@odata.context".into(),
                    Value::String(format!("{base}$metadata#bulkdeleteoperations/$entity")),
                );
            }
            Ok(json_answer(StatusCode::OK, row))
        }
    }
}

/// The `BulkDelete` action's body and the `bulkdeleteoperation` rows.
mod bulk {
    use super::*;
    use joblog::domain::Recurrence;
    use joblog::engine::BulkDeleteRecord;

    /// The columns of a `bulkdeleteoperation` row.
    pub const COLUMNS: [&str; 11] = [
        "bulkdeleteoperationid",
        "name",
        "successcount",
        "failurecount",
        "isrecurring",
        "nextrun",
        "statecode",
        "statuscode",
        "_asyncoperationid_value",
        "createdon",
        "modifiedon",
    ];

    /// A Bulk Delete job as a `bulkdeleteoperation` row: joblog keeps one
    /// record per Bulk Delete job, so the row's id is the job's.
    pub fn row(r: &BulkDeleteRecord, select: Option<&[String]>) -> Value {
        let j = &r.job;
        let nextrun = if j.status.is_completed() { None } else { j.postponeuntil.or(j.recurrencestarttime) };
        let all = json!({
            "bulkdeleteoperationid": j.id.to_string(),
            "name": j.name,
            "successcount": r.successcount,
            "failurecount": r.failurecount,
            "isrecurring": j.recurrencepattern.is_some(),
            "nextrun": nextrun.map(odata::show_time),
            "statecode": j.status.statecode(),
            "statuscode": j.status.statuscode(),
            "_asyncoperationid_value": j.id.to_string(),
            "createdon": odata::show_time(j.createdon),
            "modifiedon": odata::show_time(j.modifiedon),
        });
        let Value::Object(all) = all else { return all };
        let mut m = Map::new();
        m.insert("@odata.etag".into(), Value::String(odata::etag(j)));
        for (k, v) in all {
            if k == "bulkdeleteoperationid" || select.is_none_or(|s| s.contains(&k)) {
                m.insert(k, v);
            }
        }
        Value::Object(m)
    }

    fn bad(m: String) -> ApiError {
        ApiError::bad_request(format!("BulkDelete: {m}"))
    }

    /// A condition's values as integers (`[{"Value":"3","Type":"System.Int32"}]`, or bare numbers/strings).
    fn ints(c: &Value, attr: &str) -> Result<Vec<i64>, ApiError> {
        let vals = c.get("Values").and_then(Value::as_array).cloned().unwrap_or_default();
        if vals.is_empty() {
            return Err(bad(format!("the condition on {attr} has no Values")));
        }
        vals.iter()
            .map(|v| {
                let v = v.get("Value").unwrap_or(v);
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| bad(format!("{attr}: {v} is not an integer")))
            })
            .collect()
    }

    /// The action's body onto joblog's Bulk Delete job.
    pub fn parse(body: &[u8]) -> Result<NewBulkDelete, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
        let known = [
            "QuerySet",
            "JobName",
            "SendEmailNotification",
            "ToRecipients",
            "CCRecipients",
            "RecurrencePattern",
            "StartDateTime",
            "SourceImportId",
            "RunNow",
        ];
        let Value::Object(m) = &v else { return Err(bad("the body must be a JSON object".into())) };
        if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str()) && !k.starts_with('@')) {
            return Err(bad(format!("the parameter '{k}' is not one of BulkDelete's")));
        }
        let name = m
            .get("JobName")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| bad("JobName is required".into()))?
            .to_string();
        if m.get("SendEmailNotification").and_then(Value::as_bool) == Some(true) {
            return Err(bad("SendEmailNotification true is not supported: joblog sends no e-mail".into()));
        }
        for r in ["ToRecipients", "CCRecipients"] {
            if m.get(r).and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
                return Err(bad(format!("{r} is not supported: joblog sends no e-mail (send an empty list)")));
            }
        }
        if m.get("SourceImportId").is_some_and(|v| !v.is_null()) {
            return Err(bad("SourceImportId is not supported".into()));
        }
        let recurrence = match m.get("RecurrencePattern") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                Recurrence::parse(s).map_err(|e| bad(format!("RecurrencePattern: {e}")))?;
                Some(s.clone())
            }
            Some(o) => return Err(bad(format!("RecurrencePattern: {o} is not text"))),
        };
        let start = match m.get("StartDateTime") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Timestamp::parse(s).map_err(|e| bad(format!("StartDateTime: {e}")))?),
            Some(o) => return Err(bad(format!("StartDateTime: {o} is not a date-time"))),
        };
        let queries = m.get("QuerySet").and_then(Value::as_array).ok_or_else(|| bad("QuerySet is required".into()))?;
        let [query] = queries.as_slice() else {
            return Err(bad(format!("QuerySet holds {} queries; joblog takes exactly one", queries.len())));
        };
        let criteria = criteria(query)?;
        Ok(NewBulkDelete { name, criteria, start, recurrence })
    }

    /// One QueryExpression on `asyncoperation` onto [`DeletionCriteria`].
    fn criteria(q: &Value) -> Result<DeletionCriteria, ApiError> {
        let entity = q.get("EntityName").and_then(Value::as_str).unwrap_or("");
        if entity != "asyncoperation" {
            return Err(bad(format!("EntityName '{entity}': joblog deletes system jobs only (asyncoperation)")));
        }
        for unsupported in ["LinkEntities", "Orders"] {
            if q.get(unsupported).and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
                return Err(bad(format!("{unsupported} are not supported")));
            }
        }
        let criteria = q.get("Criteria").cloned().unwrap_or(Value::Null);
        let op = criteria.get("FilterOperator").and_then(Value::as_str).unwrap_or("And");
        if op != "And" {
            return Err(bad(format!("FilterOperator '{op}' is not supported: conditions are joined with And")));
        }
        if criteria.get("Filters").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
            return Err(bad("nested Filters are not supported".into()));
        }
        let conditions = criteria.get("Conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut types: Option<Vec<OperationType>> = None;
        let mut reasons: Option<Vec<StatusReason>> = None;
        let mut completed_state = false;
        let mut days: Option<u32> = None;
        for c in &conditions {
            let attr = c.get("AttributeName").and_then(Value::as_str).unwrap_or("");
            let op = c.get("Operator").and_then(Value::as_str).unwrap_or("");
            let cannot = || {
                bad(format!(
                    "the condition {attr} {op} cannot be expressed by joblog's deletion criteria (docs/http.md)"
                ))
            };
            match (attr, op) {
                ("operationtype", "Equal" | "In") if types.is_none() => {
                    let t = ints(c, attr)?
                        .into_iter()
                        .map(|n| u32::try_from(n).map(OperationType).map_err(|_| bad(format!("operationtype {n}"))))
                        .collect::<Result<Vec<_>, _>>()?;
                    types = Some(t);
                }
                ("statuscode", "Equal" | "In") if reasons.is_none() => {
                    let r = ints(c, attr)?
                        .into_iter()
                        .map(|n| {
                            let r = StatusReason::parse(&n.to_string()).map_err(|_| bad(format!("statuscode {n}")))?;
                            if Status::of_reason(r).is_completed() {
                                Ok(r)
                            } else {
                                Err(bad(format!("statuscode {n}: only Completed jobs (30, 31, 32) are ever deleted")))
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    reasons = Some(r);
                }
                ("statecode", "Equal") => {
                    if ints(c, attr)? != [JobState::Completed as i64] {
                        return Err(bad("statecode: only Completed jobs (statecode 3) are ever deleted".into()));
                    }
                    completed_state = true;
                }
                ("completedon", "OlderThanXDays") if days.is_none() => {
                    let n = ints(c, attr)?;
                    let d = n
                        .first()
                        .and_then(|&d| u32::try_from(d).ok())
                        .ok_or_else(|| bad(format!("OlderThanXDays {n:?}")))?;
                    days = Some(d);
                }
                _ => return Err(cannot()),
            }
        }
        let types = types.ok_or_else(|| {
            bad("a condition on operationtype (Equal or In) is required: joblog's deletion names its System Job Types".into())
        })?;
        let reasons = match reasons {
            Some(r) => r,
            None if completed_state => vec![StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled],
            None => {
                return Err(bad(
                    "a condition statecode Equal 3 or statuscode In (30, 31, 32) is required: joblog deletes Completed jobs only".into(),
                ))
            }
        };
        Ok(DeletionCriteria { types, reasons, older_than_days: days.unwrap_or(0) })
    }
}

/// `EntityDefinitions`: what clients read before they read or write.
mod metadata {
    use super::*;
    use joblog::domain::State as JobState;

    fn label(text: &str) -> Value {
        let l = json!({"Label": text, "LanguageCode": 1033, "IsManaged": true});
        json!({"LocalizedLabels": [l.clone()], "UserLocalizedLabel": l})
    }

    fn options(col: &str) -> Option<Value> {
        let opts: Vec<Value> = match col {
            "statecode" => JobState::all()
                .into_iter()
                .map(|s| {
                    let default = Status::all().find(|x| x.state() == s).map_or(0, |x| x.statuscode());
                    json!({"Value": s as u32, "Label": label(s.name()), "DefaultStatus": default, "InvariantName": s.name()})
                })
                .collect(),
            "statuscode" => Status::all()
                .map(|s| json!({"Value": s.statuscode(), "Label": label(s.reason().name()), "State": s.statecode()}))
                .collect(),
            "operationtype" => OperationType::named()
                .map(|t| json!({"Value": t.0, "Label": label(t.name().unwrap_or(""))}))
                .collect(),
            _ => return None,
        };
        let kind = match col {
            "statecode" => "State",
            "statuscode" => "Status",
            _ => "Picklist",
        };
        Some(
            json!({"Name": format!("asyncoperation_{col}"), "IsGlobal": false, "OptionSetType": kind, "Options": opts}),
        )
    }

    /// (logical name, attribute type, metadata type)
    fn attribute_type(col: &str) -> (&'static str, &'static str) {
        match col {
            "statecode" => ("State", "StateAttributeMetadata"),
            "statuscode" => ("Status", "StatusAttributeMetadata"),
            "operationtype" => ("Picklist", "PicklistAttributeMetadata"),
            "ownerid" => ("Owner", "LookupAttributeMetadata"),
            "owningbusinessunit" | "regardingobjectid" | "workflowactivationid" | "asyncoperationid_lookup" => {
                ("Lookup", "LookupAttributeMetadata")
            }
            _ => ("String", "StringAttributeMetadata"),
        }
    }

    fn attribute(entity: &str, i: usize, name: &str, kind: (&'static str, &'static str), desc: &str) -> Value {
        let mut a = json!({
            "@odata.type": format!("#Microsoft.Dynamics.CRM.{}", kind.1),
            "MetadataId": Uuid::from_u128(0x6a6f_626c_6f67_0000_0000_0000_0000_0000 + ((entity.len() as u128) << 32) + i as u128).to_string(),
            "LogicalName": name,
            "SchemaName": name,
            "EntityLogicalName": entity,
            "AttributeType": kind.0,
            "AttributeTypeName": {"Value": format!("{}Type", kind.0)},
            "DisplayName": label(desc),
            "IsValidForRead": true,
            "IsValidForCreate": false,
            "IsValidForUpdate": entity == "asyncoperation" && matches!(name, "statecode" | "statuscode" | "postponeuntil"),
            "IsPrimaryId": name == format!("{entity}id"),
            "IsPrimaryName": name == "name",
        });
        if let (Some(o), Value::Object(m)) = (options(name).filter(|_| entity == "asyncoperation"), &mut a) {
            m.insert("OptionSet".into(), o);
        }
        a
    }

    fn columns(entity: &str) -> Vec<Value> {
        match entity {
            "asyncoperation" => Column::ALL
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let n = c.logical_name();
                    let kind = match c.kind() {
                        crate::odata::Kind::Int if attribute_type(n).0 == "String" => {
                            ("Integer", "IntegerAttributeMetadata")
                        }
                        crate::odata::Kind::Time => ("DateTime", "DateTimeAttributeMetadata"),
                        crate::odata::Kind::Guid if *c == Column::Id => ("Uniqueidentifier", "AttributeMetadata"),
                        crate::odata::Kind::Guid => ("Uniqueidentifier", "AttributeMetadata"),
                        _ => attribute_type(n),
                    };
                    attribute(entity, i, n, kind, n)
                })
                .collect(),
            _ => bulk::COLUMNS
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let n = n.trim_start_matches('_').trim_end_matches("_value");
                    let kind = match n {
                        "bulkdeleteoperationid" => ("Uniqueidentifier", "AttributeMetadata"),
                        "successcount" | "failurecount" => ("Integer", "IntegerAttributeMetadata"),
                        "isrecurring" => ("Boolean", "BooleanAttributeMetadata"),
                        "nextrun" | "createdon" | "modifiedon" => ("DateTime", "DateTimeAttributeMetadata"),
                        "statecode" => ("State", "StateAttributeMetadata"),
                        "statuscode" => ("Status", "StatusAttributeMetadata"),
                        "asyncoperationid" => ("Lookup", "LookupAttributeMetadata"),
                        _ => ("String", "StringAttributeMetadata"),
                    };
                    attribute(entity, i, n, kind, n)
                })
                .collect(),
        }
    }

    fn definition(entity: &str, with_attributes: bool) -> Value {
        let (set, display, code, id) = match entity {
            "asyncoperation" => ("asyncoperations", "System Job", 4700, "9c1d5f2e-0a4b-4c55-8f53-6a6f626c6f67"),
            _ => ("bulkdeleteoperations", "Bulk Delete Operation", 4424, "1b7c3d4e-5f60-4718-9a2b-6a6f626c6f68"),
        };
        let mut d = json!({
            "MetadataId": id,
            "LogicalName": entity,
            "SchemaName": if entity == "asyncoperation" { "AsyncOperation" } else { "BulkDeleteOperation" },
            "EntitySetName": set,
            "LogicalCollectionName": set,
            "CollectionSchemaName": if entity == "asyncoperation" { "AsyncOperations" } else { "BulkDeleteOperations" },
            "PrimaryIdAttribute": format!("{entity}id"),
            "PrimaryNameAttribute": "name",
            "ObjectTypeCode": code,
            "OwnershipType": if entity == "asyncoperation" { "UserOwned" } else { "None" },
            "IsCustomEntity": false,
            "IsActivity": false,
            "DisplayName": label(display),
            "DisplayCollectionName": label(&format!("{display}s")),
            "Description": label(display),
            "OneToManyRelationships": [],
            "ManyToOneRelationships": [],
            "ManyToManyRelationships": [],
            "Keys": [],
            "Privileges": [],
        });
        if let (true, Value::Object(m)) = (with_attributes, &mut d) {
            m.insert("Attributes".into(), Value::Array(columns(entity)));
        }
        d
    }

    const ENTITIES: [&str; 2] = ["asyncoperation", "bulkdeleteoperation"];

    fn known(name: &str) -> Result<&'static str, ApiError> {
        ENTITIES.into_iter().find(|e| *e == name).ok_or_else(|| {
            ApiError::not_found(format!("no entity '{name}': joblog has asyncoperation and bulkdeleteoperation"))
        })
    }

    /// `$select` on metadata: keep these properties (and `MetadataId`).
    fn select(v: Value, opts: &Options) -> Value {
        let Some(sel) = opts.get("$select") else { return v };
        let keep: Vec<&str> = sel.split(',').map(str::trim).collect();
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| {
                        k == "MetadataId" || k == "Attributes" || k.starts_with('@') || keep.contains(&k.as_str())
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    fn expands_attributes(opts: &Options) -> Result<bool, ApiError> {
        match opts.get("$expand") {
            None => Ok(false),
            Some(e) if e.split(['(', ',']).next().map(str::trim) == Some("Attributes") => Ok(true),
            Some(e) => Err(ApiError::bad_request(format!("$expand={e} is not supported (Attributes is)"))),
        }
    }

    /// `EntityDefinitions`, filtered on `LogicalName eq '…'`, or one of them.
    pub fn entity_definitions(name: Option<&str>, opts: &Options, base: &str) -> Result<Response, ApiError> {
        opts.only(&["$select", "$filter", "$expand"], "EntityDefinitions")?;
        let attrs = expands_attributes(opts)?;
        if let Some(n) = name {
            if opts.get("$filter").is_some() {
                return Err(ApiError::bad_request("$filter is not supported on one EntityDefinition"));
            }
            let e = known(n)?;
            let mut d = select(definition(e, attrs), opts);
            if let Value::Object(m) = &mut d {
                m.insert("@odata.context".into(), Value::String(format!("{base}$metadata#EntityDefinitions/$entity")));
            }
            return Ok(json_answer(StatusCode::OK, d));
        }
        let wanted: Vec<&str> = match opts.get("$filter") {
            None => ENTITIES.to_vec(),
            Some(f) => {
                let mut out = Vec::new();
                for part in f.split(" or ") {
                    let n = part
                        .trim()
                        .trim_start_matches('(')
                        .trim_end_matches(')')
                        .trim()
                        .strip_prefix("LogicalName eq '")
                        .and_then(|s| s.strip_suffix('\''))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "$filter on EntityDefinitions: only LogicalName eq 'NAME' (joined with or) is supported, not '{}'",
                                part.trim()
                            ))
                        })?;
                    if let Some(e) = ENTITIES.into_iter().find(|e| *e == n) {
                        out.push(e);
                    }
                }
                out
            }
        };
        let value: Vec<Value> = wanted.into_iter().map(|e| select(definition(e, attrs), opts)).collect();
        Ok(json_answer(
            StatusCode::OK,
            json!({"@odata.context": format!("{base}$metadata#EntityDefinitions"), "value": value}),
        ))
    }

    /// `EntityDefinitions(LogicalName='…')/Attributes[(LogicalName='…')]`.
    pub fn attributes(entity: &str, one: Option<&str>, opts: &Options, base: &str) -> Result<Response, ApiError> {
        opts.only(&["$select", "$expand", "$filter"], "Attributes")?;
        if opts.get("$filter").is_some() {
            return Err(ApiError::bad_request("$filter is not supported on Attributes"));
        }
        let e = known(entity)?;
        let all = columns(e);
        match one {
            None => Ok(json_answer(
                StatusCode::OK,
                json!({"@odata.context": format!("{base}$metadata#EntityDefinitions('{e}')/Attributes"), "value": all}),
            )),
            Some(a) => {
                let mut v = all
                    .into_iter()
                    .find(|x| x.get("LogicalName").and_then(Value::as_str) == Some(a))
                    .ok_or_else(|| ApiError::not_found(format!("no attribute '{a}' on {e}")))?;
                if let Value::Object(m) = &mut v {
                    m.insert(
                        "@odata.context".into(),
                        Value::String(format!("{base}$metadata#EntityDefinitions('{e}')/Attributes/$entity")),
                    );
                }
                Ok(json_answer(StatusCode::OK, v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use joblog::NewJob;

    /// 40 jobs, one a second, every fifth named "needle".
    fn store() -> (tempfile::TempDir, Session) {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let clock = std::sync::Arc::new(joblog::ManualClock::new(t0));
        let engine = joblog::Engine::open(dir.path(), joblog::Config::default(), clock.clone()).unwrap();
        let admin = engine.session("admin").unwrap();
        for i in 0..40 {
            clock.set(t0.plus_micros(i * 1_000_000));
            admin.create(NewJob::new(if i % 5 == 0 { "needle" } else { "hay" }, OperationType::WORKFLOW)).unwrap();
        }
        (dir, admin)
    }

    fn query(s: &Session, q: &str, page: usize) -> ListQuery {
        let opts = Options::parse(Some(q)).unwrap();
        ListQuery::parse(s.user(), &opts, &Prefer { maxpagesize: Some(page), representation: false, annotations: None })
            .unwrap()
    }

    /// A residual filter over a small scan budget: short pages, each going
    /// on from the last row examined, and together every match once.
    #[test]
    fn a_scan_budget_gives_short_pages_that_lose_nothing() {
        let (_dir, s) = store();
        let bounds = Bounds { budget: 7, max: 1000 };
        let mut q = query(&s, "$filter=name eq 'needle'", 3);
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let p = list_page(&s, &q, bounds).unwrap();
            assert!(p.rows.iter().all(|j| j.name == "needle"));
            seen.extend(p.rows.iter().map(|j| j.id));
            pages += 1;
            match p.next {
                Some(t) => q.token = Some(t),
                None => break,
            }
        }
        let all = s.list(&Filter::default(), None, 100).unwrap().0;
        let want: Vec<Uuid> = all.iter().filter(|j| j.name == "needle").map(|j| j.id).collect();
        assert_eq!(seen, want);
        assert!(pages > want.len().div_ceil(3), "short pages: {pages}");
    }

    /// Sorting or counting over more rows than the bound: a 400 naming the option.
    #[test]
    fn sorting_and_counting_past_the_bound_are_refused() {
        let (_dir, s) = store();
        let small = Bounds { budget: 7, max: 30 };
        let e = list_page(&s, &query(&s, "$orderby=name", 5), small).err().unwrap();
        assert!(e.message.starts_with("$orderby"), "{}", e.message);
        let e = list_page(&s, &query(&s, "$count=true&$filter=contains(name,'n')", 5), small).err().unwrap();
        assert!(e.message.starts_with("$count"), "{}", e.message);
        // Indexed: the engine counts, no bound applies.
        let p = list_page(&s, &query(&s, "$count=true&$filter=operationtype eq 10", 5), small).unwrap();
        assert_eq!(p.count, Some(40));
        let p = list_page(&s, &query(&s, "$orderby=name", 5), BOUNDS).unwrap();
        assert_eq!(p.rows.len(), 5);
        assert!(p.rows.iter().all(|j| j.name == "hay"));
    }

    #[test]
    fn resources() {
        let id = Uuid::now_v7();
        assert_eq!(Resource::parse("/asyncoperations").unwrap(), Resource::AsyncOperations);
        assert_eq!(Resource::parse(&format!("/asyncoperations({id})")).unwrap(), Resource::AsyncOperation(id));
        assert_eq!(
            Resource::parse(&format!("/asyncoperations(asyncoperationid={id})")).unwrap(),
            Resource::AsyncOperation(id)
        );
        assert_eq!(
            Resource::parse("/EntityDefinitions(LogicalName='asyncoperation')/Attributes(LogicalName='statecode')/Microsoft.Dynamics.CRM.StateAttributeMetadata").unwrap(),
            Resource::Attribute("asyncoperation".into(), "statecode".into())
        );
        assert_eq!(Resource::parse("/asyncoperations(nope)").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(Resource::parse("/accounts").unwrap_err().status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn prefer_items() {
        let mut h = HeaderMap::new();
        h.insert(
            "prefer",
            HeaderValue::from_static(
                "odata.include-annotations=\"OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.lookuplogicalname\", odata.maxpagesize=9000, return=representation",
            ),
        );
        let p = Prefer::parse(&h).unwrap();
        assert_eq!(p.maxpagesize, Some(MAX_PAGE), "capped at the platform's 5,000");
        assert!(p.representation && p.annotate());
        assert!(p.annotations.unwrap().ends_with("lookuplogicalname"));
        h.insert("prefer", HeaderValue::from_static("odata.maxpagesize=0"));
        assert!(Prefer::parse(&h).is_err());
    }

    #[test]
    fn patch_bodies() {
        let a = |s: &str| action_of(&Bytes::from(s.to_string()));
        assert_eq!(a(r#"{"statecode":3,"statuscode":32}"#).unwrap(), Some(UserAction::Cancel));
        assert_eq!(a(r#"{"statecode":1}"#).unwrap(), Some(UserAction::Pause));
        assert_eq!(a(r#"{"statecode":0}"#).unwrap(), Some(UserAction::Resume));
        assert!(matches!(a(r#"{"postponeuntil":"2030-01-01T00:00:00Z"}"#).unwrap(), Some(UserAction::Postpone(_))));
        assert_eq!(a("{}").unwrap(), None);
        assert!(a(r#"{"name":"x"}"#).unwrap_err().message.contains("'name'"));
        assert!(a(r#"{"statecode":3,"statuscode":30}"#)
            .unwrap_err()
            .message
            .contains("statecode 3 with statuscode 30"));
        assert!(a(r#"{"statecode":2}"#).is_err());
        assert!(a(r#"{"statecode":0,"postponeuntil":"2030-01-01T00:00:00Z"}"#).is_err());
    }

    #[test]
    fn bulk_delete_bodies() {
        let body = |conds: &str| {
            format!(
                r#"{{"QuerySet":[{{"EntityName":"asyncoperation","Criteria":{{"FilterOperator":"And","Conditions":[{conds}]}}}}],"JobName":"cleanup","SendEmailNotification":false,"ToRecipients":[],"CCRecipients":[],"RecurrencePattern":"FREQ=DAILY;INTERVAL=1","StartDateTime":"2030-01-01T00:00:00Z"}}"#
            )
        };
        let ok = bulk::parse(body(r#"{"AttributeName":"operationtype","Operator":"Equal","Values":[{"Value":"10","Type":"System.Int32"}]},{"AttributeName":"statecode","Operator":"Equal","Values":[{"Value":"3","Type":"System.Int32"}]},{"AttributeName":"completedon","Operator":"OlderThanXDays","Values":[{"Value":"30","Type":"System.Int32"}]}"#).as_bytes()).unwrap();
        assert_eq!(ok.criteria.types, vec![OperationType::WORKFLOW]);
        assert_eq!(ok.criteria.reasons.len(), 3);
        assert_eq!(ok.criteria.older_than_days, 30);
        assert_eq!(ok.recurrence.as_deref(), Some("FREQ=DAILY;INTERVAL=1"));
        let e = bulk::parse(body(r#"{"AttributeName":"operationtype","Operator":"Equal","Values":[10]},{"AttributeName":"statecode","Operator":"Equal","Values":[3]},{"AttributeName":"completedon","Operator":"LessThan","Values":["2026-01-01T00:00:00Z"]}"#).as_bytes()).unwrap_err();
        assert!(e.message.contains("completedon LessThan"), "{}", e.message);
        let e = bulk::parse(body(r#"{"AttributeName":"asyncoperationid","Operator":"In","Values":["x"]}"#).as_bytes())
            .unwrap_err();
        assert!(e.message.contains("asyncoperationid In"), "{}", e.message);
        let e = bulk::parse(body(r#"{"AttributeName":"statecode","Operator":"Equal","Values":[3]}"#).as_bytes())
            .unwrap_err();
        assert!(e.message.contains("operationtype"), "{}", e.message);
    }
}
