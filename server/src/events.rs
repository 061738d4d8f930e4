//! The live event stream, `GET /api/v1/events` (Server-Sent Events;
//! docs/http.md, "Live events"): each job transition as it is written,
//! `id:` the log's sequence number, so a client that reconnects with
//! `Last-Event-ID` (or `?since=SEQ`) resumes exactly after the last event
//! it saw, from the log itself: nothing is missed while it was away.
//!
//! One follower task ([`follow`]) watches the log's next sequence number
//! and wakes the streams (a `watch` channel); each stream reads the log
//! from its own position and shows only the jobs its user may read.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use joblog::domain::{Envelope, Event, Status};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::{blocking, AppState};

/// How often the follower looks for new events.
pub const POLL: Duration = Duration::from_millis(20);
/// Events read from the log per step of a stream.
const CHUNK: usize = 1024;

/// Follows the log: publishes its next sequence number whenever it moves,
/// and counts what the metrics report (runs started, succeeded, failed).
pub async fn follow(state: AppState) {
    let mut seen = state.engine.next_seq();
    let _ = state.log_head.send(seen);
    loop {
        tokio::time::sleep(POLL).await;
        let next = state.engine.next_seq();
        if next == seen {
            continue;
        }
        let engine = state.engine.clone();
        let metrics = state.metrics.clone();
        let from = seen;
        let counted = blocking(move || {
            let mut at = from;
            while at < next {
                let events = engine.events_from(at, CHUNK.max(1))?;
                let Some(last) = events.last().map(|e| e.0) else { break };
                for (_, env) in &events {
                    metrics.count(env);
                }
                at = last + 1;
            }
            Ok(at)
        })
        .await;
        match counted {
            Ok(at) => seen = at.max(seen),
            Err(e) => {
                tracing::warn!(error = %e, "the event follower could not read the log");
                seen = next;
            }
        }
        let _ = state.log_head.send(seen);
    }
}

fn codes(s: Status) -> Value {
    json!({"statecode": s.statecode(), "statuscode": s.statuscode(), "state": s.state().name(), "status": s.reason().name()})
}

/// What a stream says of one event, if anything: job events only, each
/// shown to users who may read the job now.
fn describe(seq: u64, env: &Envelope) -> Option<(uuid::Uuid, &'static str, Value)> {
    let at = env.at.to_rfc3339();
    let actor = env.actor.to_string();
    match &env.event {
        Event::JobCreated(j) => Some((
            j.id,
            "created",
            json!({"seq": seq, "job": j.id, "at": at, "actor": actor, "name": j.name,
                   "operationtype": j.operationtype.0, "to": codes(j.status)}),
        )),
        Event::Transition(t) => Some((
            t.job,
            "transition",
            json!({"seq": seq, "job": t.job, "at": at, "actor": actor, "action": t.action.name(),
                   "from": codes(t.from), "to": codes(t.to),
                   "postponeuntil": t.postponeuntil.map(|p| p.to_rfc3339()), "message": t.message}),
        )),
        Event::OwnerChanged { job, owner, .. } => {
            Some((*job, "owner", json!({"seq": seq, "job": job, "at": at, "actor": actor, "owner": owner})))
        }
        _ => None,
    }
}

/// The stream's query: `?since=SEQ`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Resume after this sequence number (as `Last-Event-ID`).
    pub since: Option<u64>,
}

/// `GET /api/v1/events`.
pub(crate) async fn stream(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(p): Query<StreamParams>,
) -> Result<Response, ApiError> {
    let last_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID: a log sequence number (an integer)"))?,
        ),
        None => p.since,
    };
    let n = s.streams.fetch_add(1, Ordering::AcqRel);
    let guard = crate::Decrement(std::sync::Arc::clone(&s.streams));
    if n >= s.limits.max_streams {
        return Err(ApiError::too_many(5));
    }
    let mut pos = last_id.map_or_else(|| s.engine.next_seq(), |l| l + 1);
    let mut head = s.log_head.subscribe();
    let engine = s.engine.clone();
    let session = caller.session.clone();
    let admin = matches!(session.visibility(), joblog::Visibility::All);
    let events = async_stream(move |tx| async move {
        let _guard = guard;
        loop {
            let next = *head.borrow_and_update();
            while pos < next {
                let (engine, session, from) = (engine.clone(), session.clone(), pos);
                let read = blocking(move || {
                    let events = engine.events_from(from, CHUNK)?;
                    let end = events.last().map_or(from, |e| e.0 + 1);
                    let mut out = Vec::new();
                    for (seq, env) in &events {
                        if let Some((job, kind, data)) = describe(*seq, env) {
                            if session.may_read(job) {
                                out.push((*seq, kind, data));
                            }
                        } else if let (true, Event::JobsDeleted(d)) = (admin, &env.event) {
                            out.push((
                                *seq,
                                "deleted",
                                json!({"seq": seq, "at": env.at.to_rfc3339(),
                                "actor": env.actor.to_string(), "deleted": d.deleted, "definition": d.definition}),
                            ));
                        }
                    }
                    Ok((out, end))
                })
                .await;
                let Ok((out, end)) = read else { return };
                if end == from {
                    break;
                }
                for (seq, kind, data) in out {
                    let ev = SseEvent::default().id(seq.to_string()).event(kind).data(data.to_string());
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                pos = end;
            }
            if head.changed().await.is_err() {
                return;
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// A stream fed by a task through a small channel (the client's slowness
/// holds the task, not the server).
fn async_stream<F, Fut>(f: F) -> impl futures_util::Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
