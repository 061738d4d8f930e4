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

use axum::extract::rejection::QueryRejection;
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

/// How often the follower looks for new events (a load of one atomic
/// counter; the streams wake only when it moved).
pub const POLL: Duration = Duration::from_millis(5);
/// Events the follower reads from the log per step.
const CHUNK: usize = 1024;
/// Events a stream reads from the log per step (a slow client holds at
/// most this many, and its channel's, in memory).
const STREAM_CHUNK: usize = 128;

/// Follows the log: publishes its next sequence number whenever it moves
/// (first, so the streams read at once), then counts what the metrics
/// report (runs started, succeeded, failed).
pub async fn follow(state: AppState) {
    let mut seen = state.engine.next_seq();
    let _ = state.log_head.send(seen);
    let mut tail = Some(state.engine.tail(seen));
    loop {
        tokio::time::sleep(POLL).await;
        let next = state.engine.next_seq();
        if next == seen {
            continue;
        }
        let _ = state.log_head.send(next);
        let metrics = state.metrics.clone();
        let mut reader = tail.take().unwrap_or_else(|| state.engine.tail(seen));
        let counted = blocking(move || loop {
            let events = reader.next_events(CHUNK)?;
            for (_, env) in &events {
                metrics.count(env);
            }
            if events.len() < CHUNK {
                return Ok(reader);
            }
        })
        .await;
        match counted {
            Ok(reader) => tail = Some(reader),
            // A new reader from the head on at the next turn.
            Err(e) => tracing::warn!(error = %e, "the event follower could not read the log"),
        }
        seen = next;
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
    share: Option<axum::Extension<crate::HeldShare>>,
    query: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    let bad_id = || ApiError::bad_request("Last-Event-ID: a log sequence number (an integer)");
    let last_id = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(bad_id)?),
        None => p.since,
    };
    let pos = match last_id {
        None => s.engine.next_seq(),
        Some(l) => l.checked_add(1).ok_or_else(bad_id)?,
    };
    let n = s.streams.fetch_add(1, Ordering::AcqRel);
    let guard = crate::Decrement(std::sync::Arc::clone(&s.streams));
    if n >= s.limits.max_streams {
        return Err(ApiError::too_many(5));
    }
    let mut head = s.log_head.subscribe();
    let engine = s.engine.clone();
    let session = caller.session.clone();
    let credential = caller.credential.clone();
    let admin = matches!(session.visibility(), joblog::Visibility::All);
    let events = async_stream(move |tx| async move {
        // The slots (everyone's and the user's) last as long as the stream.
        let _slots = (guard, share);
        let mut reader = Some(engine.tail(pos));
        loop {
            head.borrow_and_update();
            loop {
                let (Some(mut r), session, credential) = (reader.take(), session.clone(), credential.clone()) else {
                    return;
                };
                let engine = engine.clone();
                let read = blocking(move || {
                    // The token is checked again before anything more is
                    // sent: a revoked token or a deactivated user ends the
                    // stream, as it ends every other request.
                    if !crate::auth::still_valid(&engine, &credential, session.user()) {
                        return Ok(None);
                    }
                    let events = r.next_events(STREAM_CHUNK)?;
                    let more = events.len() == STREAM_CHUNK;
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
                        } else if let Event::JobsDeletedById { ids } = &env.event {
                            // The jobs are gone, so who could read them is
                            // no longer known: shown to users who read
                            // every job, and to the one who deleted them.
                            let mine = matches!(&env.actor, joblog::domain::Actor::User(u) if u == session.user());
                            if admin || mine {
                                out.push((
                                    *seq,
                                    "deleted",
                                    json!({"seq": seq, "at": env.at.to_rfc3339(),
                                    "actor": env.actor.to_string(), "deleted": ids.len(), "ids": ids,
                                    "definition": null}),
                                ));
                            }
                        }
                    }
                    Ok(Some((r, out, more)))
                })
                .await;
                let Ok(Some((r, out, more))) = read else { return };
                reader = Some(r);
                for (seq, kind, data) in out {
                    let ev = SseEvent::default().id(seq.to_string()).event(kind).data(data.to_string());
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                if !more {
                    break;
                }
            }
            // Wait for the log to move, or for the client to go (its slot
            // is given back at once, not at the next event).
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
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
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
