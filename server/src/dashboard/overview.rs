//! The overview (`/overview`: throughput and failures over time drawn from
//! the event log, queue age, log size) and the failing workflows
//! (`/failing`: the service's back-off, as `joblog stats` shows it).

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use joblog::domain::{Event, State as JobState, StatusReason, Timestamp};
use joblog::Filter;
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;
use uuid::Uuid;

use super::{error_page, layout, respond, span, time, urlencode, Nav, Viewer};
use crate::{blocking, ApiError, AppState};

/// Events the overview's charts read at most, newest last: the cost of the
/// page is one sequential read of this many events of the log (its tail,
/// memory-mapped), about 0.1 to 0.3 s in a debug build, independent of the
/// store's size. A window holding more events starts later; the page says
/// from when it counts.
const MAX_EVENTS: usize = 200_000;

/// Events decoded at once.
const CHUNK: usize = 10_000;

#[derive(Deserialize)]
pub(crate) struct OverviewQuery {
    /// The window: 1 to 14 days back from now (default 1).
    days: Option<u32>,
}

/// Counts per bucket of the window.
#[derive(Default, Clone, Copy)]
struct Bucket {
    created: u32,
    succeeded: u32,
    failed: u32,
    canceled: u32,
}

struct Overview {
    buckets: Vec<Bucket>,
    bucket_micros: i64,
    from: Timestamp,
    /// Where counting really starts, when the window held more than
    /// [`MAX_EVENTS`] events.
    counted_from: Option<Timestamp>,
    events_read: usize,
    oldest_ready: Option<(Uuid, Timestamp)>,
    ready: usize,
    in_progress: usize,
    disk_bytes: u64,
    data_bytes: u64,
    last_seq: u64,
    now: Timestamp,
}

/// `GET /overview`.
pub(crate) async fn page(v: Viewer, State(s): State<AppState>, Query(q): Query<OverviewQuery>) -> Response {
    let days = q.days.unwrap_or(1).clamp(1, 14);
    let engine = s.engine.clone();
    let session = v.session().clone();
    let reads_all = v.reads_all;
    let loaded = blocking(move || {
        let now = engine.now();
        let bucket_micros: i64 = if days <= 2 { 3_600_000_000 } else { 6 * 3_600_000_000 };
        let n = (days as i64 * 86_400_000_000 / bucket_micros) as usize;
        // The window ends with the bucket that holds now.
        let end = (now.micros().div_euclid(bucket_micros) + 1) * bucket_micros;
        let from = Timestamp::from_micros(end - n as i64 * bucket_micros);
        let mut buckets = vec![Bucket::default(); n];
        let start = engine.next_seq().saturating_sub(MAX_EVENTS as u64);
        // A reader who does not see every job counts only the jobs they may
        // read (checked once per job).
        let mut visible: HashMap<Uuid, bool> = HashMap::new();
        let mut sees = |id: Uuid| reads_all || *visible.entry(id).or_insert_with(|| session.may_read(id));
        let mut first_at = None;
        let mut events_read = 0;
        let mut reader = engine.tail(start);
        // A chunk at a time, so that memory stays bounded whatever the
        // events hold (a job's data is up to 1 MiB).
        while events_read < MAX_EVENTS {
            let chunk = reader.next_events(CHUNK.min(MAX_EVENTS - events_read))?;
            if chunk.is_empty() {
                break;
            }
            events_read += chunk.len();
            for (_, env) in &chunk {
                first_at.get_or_insert(env.at);
                if env.at < from {
                    continue;
                }
                let Ok(i) = usize::try_from((env.at.micros() - from.micros()) / bucket_micros) else { continue };
                let Some(b) = buckets.get_mut(i) else { continue };
                match &env.event {
                    Event::JobCreated(j) if sees(j.id) => b.created += 1,
                    Event::Transition(t) if t.to.is_completed() && sees(t.job) => match t.to.reason() {
                        StatusReason::Succeeded => b.succeeded += 1,
                        StatusReason::Failed => b.failed += 1,
                        _ => b.canceled += 1,
                    },
                    _ => {}
                }
            }
        }
        let counted_from = first_at.filter(|&t| start > 0 && t > from);
        let vis = session.visibility();
        let st = engine.state();
        let oldest_ready = if reads_all {
            st.ready().next().and_then(|id| st.job(id).ok()).map(|j| (j.id, j.createdon))
        } else {
            None
        };
        let ready = st.count(&Filter { state: Some(JobState::Ready), ..Filter::default() }, &vis)?;
        let in_progress = st.count(
            &Filter {
                state: Some(JobState::Locked),
                status_reason: Some(StatusReason::InProgress),
                ..Filter::default()
            },
            &vis,
        )?;
        let last_seq = st.last_seq();
        drop(st);
        Ok(Overview {
            buckets,
            bucket_micros,
            from,
            counted_from,
            events_read,
            oldest_ready,
            ready,
            in_progress,
            disk_bytes: engine.disk_bytes(),
            data_bytes: engine.data_bytes(),
            last_seq,
            now,
        })
    })
    .await;
    let o = match loaded {
        Ok(o) => o,
        Err(e) => return error_page(Some(&v), e),
    };
    let body = render(&v, &o, days);
    respond(StatusCode::OK, layout(Some(&v), Nav::Overview, "Overview", body))
}

fn render(v: &Viewer, o: &Overview, days: u32) -> Markup {
    let sum = |f: fn(&Bucket) -> u32| o.buckets.iter().map(f).map(u64::from).sum::<u64>();
    html! {
        h1 { "Overview" }
        p {
            "Window: "
            @for d in [1u32, 7, 14] {
                a.chip class=[(d == days).then_some("on")] href=(format!("/overview?days={d}")) { (d) @if d == 1 { " day" } @else { " days" } }
            }
        }
        div.tiles {
            div.tile { div.n #ready-count { (o.ready) } div { "Ready" } }
            div.tile { div.n { (o.in_progress) } div { "In Progress" } }
            div.tile { div.n #queue-age {
                @if let Some((_, t)) = o.oldest_ready { (span(o.now.micros() - t.micros())) } @else if v.reads_all { "—" } @else { "n/a" }
            } div { "queue age (oldest Ready job)" } }
            div.tile { div.n { (bytes(o.data_bytes)) } div { "log (events)" } }
            div.tile { div.n #disk { (bytes(o.disk_bytes)) } div { "on disk" } }
            div.tile { div.n { (o.last_seq) } div { "last event #" } }
        }
        @if let Some((id, _)) = o.oldest_ready { p.muted { "Oldest Ready job: " a href=(format!("/jobs/{id}")) { (id) } } }
        @if !v.reads_all { p.muted { "Queue age is shown to users who may read every job; the charts count the jobs you may read." } }
        h2 { "Throughput" }
        p.muted {
            "Jobs completed per " (if o.bucket_micros == 3_600_000_000 { "hour" } else { "6 hours" })
            " since " (time(o.from)) " UTC: "
            b.ok { (sum(|b| b.succeeded)) " succeeded" } ", "
            b.bad { (sum(|b| b.failed)) " failed" } ", "
            (sum(|b| b.canceled)) " canceled; " (sum(|b| b.created)) " created."
        }
        (chart(o, &[("succeeded", |b: &Bucket| b.succeeded, "#2e7d32"), ("failed", |b: &Bucket| b.failed, "#c62828"), ("canceled", |b: &Bucket| b.canceled, "#9e9e9e")]))
        h2 { "Created" }
        (chart(o, &[("created", |b: &Bucket| b.created, "#1565c0")]))
        p.muted {
            "Drawn from the last " (o.events_read) " events of the log (at most " (MAX_EVENTS) ")."
            @if let Some(t) = o.counted_from { " The window holds more: counting starts at " (time(t)) " UTC." }
        }
    }
}

type Series = (&'static str, fn(&Bucket) -> u32, &'static str);

/// A stacked bar chart as inline SVG, one bar per bucket (no script).
fn chart(o: &Overview, series: &[Series]) -> Markup {
    let (w, h, pad) = (1180.0_f64, 180.0_f64, 24.0_f64);
    let n = o.buckets.len().max(1) as f64;
    let max = o.buckets.iter().map(|b| series.iter().map(|s| (s.1)(b)).sum::<u32>()).max().unwrap_or(0).max(1);
    let bw = (w - pad) / n;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {w} {}" width="100%" role="img" aria-label="{}">"#,
        h + 18.0,
        series.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
    );
    let _ = write!(
        svg,
        r##"<text x="0" y="12" class="axis">{max}</text><line x1="{pad}" y1="{h}" x2="{w}" y2="{h}" stroke="#bbb"/>"##
    );
    for (i, b) in o.buckets.iter().enumerate() {
        let x = pad + i as f64 * bw;
        let mut y = h;
        for s in series {
            let c = (s.1)(b);
            if c == 0 {
                continue;
            }
            let bh = (h - 16.0) * c as f64 / max as f64;
            y -= bh;
            let at = Timestamp::from_micros(o.from.micros() + i as i64 * o.bucket_micros);
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} {}: {c}</title></rect>"#,
                (bw - 1.0).max(1.0),
                s.2,
                time(at),
                s.0
            );
        }
        // A tick every 6 buckets, labelled with the bucket's start.
        if i % 6 == 0 {
            let at = Timestamp::from_micros(o.from.micros() + i as i64 * o.bucket_micros);
            let label = at.to_datetime().format(if o.bucket_micros == 3_600_000_000 { "%H:%M" } else { "%m-%d %H" });
            let _ = write!(svg, r#"<text x="{x:.1}" y="{}" class="axis">{label}</text>"#, h + 14.0);
        }
    }
    svg.push_str("</svg>");
    // Every value written above is a number, a constant of this file or a
    // formatted time: nothing from the store.
    html! {
        div.legend { @for s in series { span { i style={ "background:" (s.2) } {} (s.0) } } }
        (PreEscaped(svg))
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..=9_999 => format!("{n} B"),
        10_000..=9_999_999 => format!("{:.1} KB", n as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

/// A failing workflow, as the page lists it.
struct Failing {
    workflow: String,
    failures: u32,
    since: Option<Timestamp>,
    held_until: Option<Timestamp>,
    held_runs: usize,
}

/// `GET /failing`: the workflows whose runs fail in a row, since when, the
/// back-off's release and how many runs it holds.
pub(crate) async fn failing(v: Viewer, State(s): State<AppState>) -> Response {
    if !v.reads_all {
        let body = html! {
            h1 { "Failing workflows" }
            p.notice { "Back-off holds whole workflows across owners: it is shown to users who may read every job (as in `joblog stats`)." }
        };
        return respond(StatusCode::OK, layout(Some(&v), Nav::Failing, "Failing workflows", body));
    }
    let engine = s.engine.clone();
    let session = v.session().clone();
    let loaded = blocking(move || {
        let policy = engine.state().policy().clone();
        // The store's policy over the defaults, as `joblog stats` computes
        // it; a service started with other settings is not seen here.
        let in_force = joblog::ServiceConfig::default().with_store_policy(&policy);
        let report = joblog::service::backoff_report(&engine, &in_force.backoff);
        let mut out = Vec::new();
        for b in report {
            // Since: the completion of the oldest of the failures in a row
            // (the newest failed runs, by creation; a close reading of the
            // back-off's own count, which orders by completion).
            let failed = Filter {
                workflow: Some(b.workflow.clone()),
                state: Some(JobState::Completed),
                status_reason: Some(StatusReason::Failed),
                ..Filter::default()
            };
            let (runs, _) = session.list(&failed, None, b.consecutive_failures as usize).map_err(ApiError::from)?;
            let since = runs.iter().filter_map(|j| j.completedon).min();
            let held_runs = if b.held_until.is_some() {
                session
                    .count(&Filter {
                        workflow: Some(b.workflow.clone()),
                        state: Some(JobState::Ready),
                        ..Filter::default()
                    })
                    .map_err(ApiError::from)?
            } else {
                0
            };
            out.push(Failing {
                workflow: b.workflow,
                failures: b.consecutive_failures,
                since,
                held_until: b.held_until,
                held_runs,
            });
        }
        out.sort_by(|a, b| b.held_until.cmp(&a.held_until).then(b.failures.cmp(&a.failures)));
        Ok((out, in_force.backoff.threshold, engine.now()))
    })
    .await;
    let (rows, threshold, now) = match loaded {
        Ok(x) => x,
        Err(e) => return error_page(Some(&v), e),
    };
    let body = html! {
        h1 { "Failing workflows" }
        p.muted { "A workflow whose runs fail " (threshold) " times in a row is held back: its Ready runs wait until the hold ends (docs/domain.md §5)." }
        @if rows.is_empty() {
            p #no-failing { "No workflow is failing." }
        } @else {
            table.grid #failing {
                thead { tr { th { "Workflow" } th { "Failures in a row" } th { "Failing since" } th { "Held until" } th { "Runs held" } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { a href=(format!("/process-session/{}", urlencode(&r.workflow))) { (r.workflow) } }
                            td { (r.failures) }
                            td { (r.since.map(time).unwrap_or_default()) }
                            td {
                                @if let Some(t) = r.held_until { b.bad { (time(t)) } " (in " (span(t.micros() - now.micros())) ")" }
                                @else if r.failures >= threshold { "not held now: the hold ended; the next failure holds it longer" }
                                @else { "not held: below the threshold" }
                            }
                            td { (r.held_runs) }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout(Some(&v), Nav::Failing, "Failing workflows", body))
}
