//! The two events nearly every log is made of, a job created and a step of
//! its state machine, read straight from their bytes: the fast path of
//! [`Envelope::decode`]. A full replay decodes tens of millions of them,
//! and through serde's visitors their decoding cost as much as folding
//! them into the state.
//!
//! It reads exactly the bytes `src/codec.rs` writes (`docs/format.md`,
//! "Payloads: events": bincode's variable-length integers, a string as its
//! length then its bytes, an option as 0 or 1 then the value, an enum as
//! its variant's index, a UUID as the length 16 then its bytes) and accepts
//! nothing that decoder would refuse. Anything else (another event,
//! version or variant, a byte out of place, bytes left over) returns `None`,
//! and the payload is decoded by serde as always: every refusal keeps its
//! usual error. A property test holds the two decoders to the same result,
//! on valid payloads and on damaged ones.
//!
//! Written by hand rather than with bincode's own `Decode` derive: the
//! derive would have to be put on every type of every event (all share
//! `Event`), with serde's encoding of a UUID and the check of a status pair
//! written for it anyway; this reads two events and falls back for the rest.

// A decoder of bytes from disk: never panics nor loses bits in a cast.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation, clippy::indexing_slicing)]

use uuid::Uuid;

use super::event::{Actor, Envelope, Event, Transition, EVENT_VERSION, TODAYS_TYPES_SINCE};
use super::job::{Job, JobColumns, Regarding};
use super::machine::Action;
use super::operation::OperationType;
use super::status::Status;
use super::time::Timestamp;

/// The envelope in `bytes` if it is a `JobCreated` or a `Transition` of a
/// version decoded with today's types, exactly as serde would read it;
/// `None` for anything else.
#[inline(always)]
pub(super) fn decode_common(bytes: &[u8]) -> Option<Envelope> {
    let (version, at, mut r) = header(bytes)?;
    let actor = match actor(&mut r)? {
        (0, name) => Actor::User(name.to_owned()),
        (1, name) => Actor::Worker(name.to_owned()),
        _ => Actor::System,
    };
    let event = match r.u32()? {
        0 => Event::JobCreated(Box::new(job(&mut r)?.into_job())),
        1 => Event::Transition(transition(&mut r)?),
        _ => return None,
    };
    // Not `then_some`: that builds the envelope first, then copies it.
    if !r.0.is_empty() {
        return None;
    }
    Some(Envelope { version, at, actor, event })
}

/// What a replay keeps of a job's creation or of a step of one, read
/// from its bytes without an allocation but for a step's message (the
/// creation's strings are borrowed).
#[derive(Debug, PartialEq)]
pub(crate) struct Kept<'a> {
    pub version: u16,
    pub at: Timestamp,
    /// Whether a user did it (the state machine refuses a user some
    /// steps, `machine.rs`); the actor's name is checked, not kept.
    pub by_user: bool,
    pub event: KeptEvent<'a>,
}

/// The event of a [`Kept`].
#[derive(Debug, PartialEq)]
pub(crate) enum KeptEvent<'a> {
    /// A job's creation: the columns a state keeps of it, its other
    /// fields checked as [`decode_common`] checks them.
    Created(JobColumns<&'a str>),
    Transition(Transition),
}

/// What a replay keeps of the event in `bytes`, exactly when
/// [`decode_common`] reads it, and the same as it reads.
#[inline(always)]
pub(crate) fn decode_kept(bytes: &[u8]) -> Option<Kept<'_>> {
    let (version, at, mut r) = header(bytes)?;
    let (actor, _) = actor(&mut r)?;
    let event = match r.u32()? {
        0 => KeptEvent::Created(job(&mut r)?.kept),
        1 => KeptEvent::Transition(transition(&mut r)?),
        _ => return None,
    };
    if !r.0.is_empty() {
        return None;
    }
    Some(Kept { version, at, by_user: actor == 0, event })
}

/// The job of a `JobCreated` payload, exactly as [`decode_common`] reads
/// it but without its envelope: the actor's name is checked, not kept (a
/// page of a view shows the job, not who created it), and the job is not
/// boxed. `None` for any payload [`decode_common`] would not return as a
/// `JobCreated`.
pub(super) fn decode_created(bytes: &[u8]) -> Option<Job> {
    let (_, _, mut r) = header(bytes)?;
    actor(&mut r)?;
    if r.u32()? != 0 {
        return None;
    }
    let job = job(&mut r)?.into_job();
    if !r.0.is_empty() {
        return None;
    }
    Some(job)
}

/// The actor: its variant's index (0 a user, 1 a worker, 2 the system)
/// and its name ("" for the system).
fn actor<'a>(r: &mut Bytes<'a>) -> Option<(u32, &'a str)> {
    match r.u32()? {
        k @ (0 | 1) => Some((k, r.str()?)),
        2 => Some((2, "")),
        _ => None,
    }
}

/// The version and time every event starts with, if this path reads that
/// version; the rest of the bytes.
fn header(bytes: &[u8]) -> Option<(u16, Timestamp, Bytes<'_>)> {
    // bincode's limit counts what it decodes, not the bytes read: a string
    // its length and 8 for the length, each number its width. For these
    // two events that is the payload and a few hundred bytes; left to serde
    // beyond half the limit, so serde alone refuses a payload near it (no
    // write makes one: a job's data is at most 1 MiB).
    if bytes.len() > crate::codec::MAX_DECODE_BYTES / 2 {
        return None;
    }
    let mut r = Bytes(bytes);
    let version = r.u16()?;
    if !(TODAYS_TYPES_SINCE..=EVENT_VERSION).contains(&version) {
        return None;
    }
    let at = r.time()?;
    Some((version, at, r))
}

/// A job read from its bytes, every string borrowed: the columns a state
/// keeps, and the rest.
struct JobBytes<'a> {
    kept: JobColumns<&'a str>,
    name: &'a str,
    message: Option<&'a str>,
    friendlymessage: Option<&'a str>,
    depth: u32,
    correlationid: Option<Uuid>,
    recurrencepattern: Option<&'a str>,
    recurrencestarttime: Option<Timestamp>,
    data: &'a [u8],
}

/// A `Job`: its fields in declaration order, each read in a statement of
/// its own.
// Inlined, as `transition` is, so that a replay's reading thread builds
// the columns in place instead of copying them out of a returned value
// twice (`decode_kept`).
#[inline(always)]
fn job<'a>(r: &mut Bytes<'a>) -> Option<JobBytes<'a>> {
    let id = r.uuid()?;
    let name = r.str()?;
    let operationtype = OperationType(r.u32()?);
    let status = r.status()?;
    let owner = r.str()?;
    let owningbusinessunit = r.str()?;
    let regarding = r.option(|r| Some((r.str()?, r.str()?)))?;
    let workflow = r.option(Bytes::str)?;
    let createdon = r.time()?;
    let startedon = r.option(Bytes::time)?;
    let completedon = r.option(Bytes::time)?;
    let modifiedon = r.time()?;
    let postponeuntil = r.option(Bytes::time)?;
    let retrycount = r.u32()?;
    let errorcode = r.option(Bytes::i32)?;
    let message = r.option(Bytes::str)?;
    let friendlymessage = r.option(Bytes::str)?;
    let depth = r.u32()?;
    let correlationid = r.option(Bytes::uuid)?;
    let dependencytoken = r.option(Bytes::str)?;
    let recurrencepattern = r.option(Bytes::str)?;
    let recurrencestarttime = r.option(Bytes::time)?;
    let executiontimespan_ms = r.u64()?;
    let data = r.bytes()?;
    let kept = JobColumns {
        id,
        operationtype,
        status,
        owner,
        owningbusinessunit,
        regarding,
        workflow,
        createdon,
        startedon,
        completedon,
        modifiedon,
        postponeuntil,
        retrycount,
        errorcode,
        dependencytoken,
        executiontimespan_ms,
    };
    Some(JobBytes {
        kept,
        name,
        message,
        friendlymessage,
        depth,
        correlationid,
        recurrencepattern,
        recurrencestarttime,
        data,
    })
}

impl JobBytes<'_> {
    fn into_job(self) -> Job {
        let k = self.kept;
        let owned = |s: Option<&str>| s.map(str::to_owned);
        Job {
            id: k.id,
            name: self.name.to_owned(),
            operationtype: k.operationtype,
            status: k.status,
            owner: k.owner.to_owned(),
            owningbusinessunit: k.owningbusinessunit.to_owned(),
            regarding: k.regarding.map(|(table, id)| Regarding { table: table.to_owned(), id: id.to_owned() }),
            workflow: owned(k.workflow),
            createdon: k.createdon,
            startedon: k.startedon,
            completedon: k.completedon,
            modifiedon: k.modifiedon,
            postponeuntil: k.postponeuntil,
            retrycount: k.retrycount,
            errorcode: k.errorcode,
            message: owned(self.message),
            friendlymessage: owned(self.friendlymessage),
            depth: self.depth,
            correlationid: self.correlationid,
            dependencytoken: owned(k.dependencytoken),
            recurrencepattern: owned(self.recurrencepattern),
            recurrencestarttime: self.recurrencestarttime,
            executiontimespan_ms: k.executiontimespan_ms,
            data: self.data.to_vec(),
        }
    }
}

/// A `Transition`, its fields in declaration order.
#[inline(always)]
fn transition(r: &mut Bytes<'_>) -> Option<Transition> {
    Some(Transition {
        job: r.uuid()?,
        action: *Action::ALL.get(usize::try_from(r.u32()?).ok()?)?,
        from: r.status()?,
        to: r.status()?,
        postponeuntil: r.option(Bytes::time)?,
        retrycount: r.u32()?,
        errorcode: r.option(Bytes::i32)?,
        message: r.option(Bytes::string)?,
    })
}

/// The bytes not read yet.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    /// A variable-length integer: one byte below 251, else 251, 252 or 253
    /// then 2, 4 or 8 bytes little-endian (bincode's encoding, which
    /// accepts a wider form than needed, as this does).
    fn u64(&mut self) -> Option<u64> {
        Some(match self.byte()? {
            b @ 0..=250 => u64::from(b),
            251 => u64::from(u16::from_le_bytes(self.array()?)),
            252 => u64::from(u32::from_le_bytes(self.array()?)),
            253 => u64::from_le_bytes(self.array()?),
            _ => return None,
        })
    }

    /// As [`Bytes::u64`], without the 8-byte form (bincode refuses it).
    fn u32(&mut self) -> Option<u32> {
        Some(match self.byte()? {
            b @ 0..=250 => u32::from(b),
            251 => u32::from(u16::from_le_bytes(self.array()?)),
            252 => u32::from_le_bytes(self.array()?),
            _ => return None,
        })
    }

    fn u16(&mut self) -> Option<u16> {
        Some(match self.byte()? {
            b @ 0..=250 => u16::from(b),
            251 => u16::from_le_bytes(self.array()?),
            _ => return None,
        })
    }

    /// Zigzag: 0, -1, 1, -2… as 0, 1, 2, 3…
    fn i64(&mut self) -> Option<i64> {
        let n = self.u64()?;
        Some(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn i32(&mut self) -> Option<i32> {
        let n = self.u32()?;
        Some(((n >> 1) as i32) ^ -((n & 1) as i32))
    }

    fn time(&mut self) -> Option<Timestamp> {
        self.i64().map(Timestamp::from_micros)
    }

    /// A length, then that many bytes.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }

    fn uuid(&mut self) -> Option<Uuid> {
        Uuid::from_slice(self.bytes()?).ok()
    }

    /// 0 (none) or 1 then the value; any other tag is refused.
    fn option<T>(&mut self, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            0 => Some(None),
            1 => value(self).map(Some),
            _ => None,
        }
    }

    /// The State's index then the Status Reason's; a pair that does not
    /// exist is refused.
    fn status(&mut self) -> Option<Status> {
        let state = self.u32()?;
        let reason = self.u32()?;
        Status::from_indices(state, reason)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::cast_possible_truncation)]
    use super::*;
    use proptest::prelude::*;

    fn time() -> impl Strategy<Value = Timestamp> {
        prop_oneof![any::<i64>(), -1_000_000i64..1_000_000, Just(i64::MIN), Just(i64::MAX)]
            .prop_map(Timestamp::from_micros)
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![".{0,12}", "[a-z:0-9]{0,300}"]
    }

    fn number() -> impl Strategy<Value = u32> {
        prop_oneof![any::<u32>(), 0u32..300, 65_000u32..66_000]
    }

    fn status() -> impl Strategy<Value = Status> {
        proptest::sample::select(Status::all().collect::<Vec<_>>())
    }

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn job() -> impl Strategy<Value = Job> {
        let a = (uuid(), text(), number(), status(), text(), text(), proptest::option::of((text(), text())));
        let b = (proptest::option::of(text()), time(), proptest::option::of(time()), proptest::option::of(time()));
        let c = (time(), proptest::option::of(time()), number(), proptest::option::of(any::<i32>()));
        let d = (proptest::option::of(text()), proptest::option::of(text()), number(), proptest::option::of(uuid()));
        let e = (proptest::option::of(text()), proptest::option::of(text()), proptest::option::of(time()));
        let f = (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300));
        (a, b, c, d, e, f).prop_map(|(a, b, c, d, e, f)| Job {
            id: a.0,
            name: a.1,
            operationtype: OperationType(a.2),
            status: a.3,
            owner: a.4,
            owningbusinessunit: a.5,
            regarding: a.6.map(|(table, id)| Regarding { table, id }),
            workflow: b.0,
            createdon: b.1,
            startedon: b.2,
            completedon: b.3,
            modifiedon: c.0,
            postponeuntil: c.1,
            retrycount: c.2,
            errorcode: c.3,
            message: d.0,
            friendlymessage: d.1,
            depth: d.2,
            correlationid: d.3,
            dependencytoken: e.0,
            recurrencepattern: e.1,
            recurrencestarttime: e.2,
            executiontimespan_ms: f.0,
            data: f.1,
        })
    }

    fn transition() -> impl Strategy<Value = Transition> {
        let a = (uuid(), proptest::sample::select(Action::ALL.to_vec()), status(), status());
        let b =
            (proptest::option::of(time()), number(), proptest::option::of(any::<i32>()), proptest::option::of(text()));
        (a, b).prop_map(|(a, b)| Transition {
            job: a.0,
            action: a.1,
            from: a.2,
            to: a.3,
            postponeuntil: b.0,
            retrycount: b.1,
            errorcode: b.2,
            message: b.3,
        })
    }

    fn envelope() -> impl Strategy<Value = Envelope> {
        let actor = prop_oneof![text().prop_map(Actor::User), text().prop_map(Actor::Worker), Just(Actor::System)];
        let event =
            prop_oneof![job().prop_map(|j| Event::JobCreated(Box::new(j))), transition().prop_map(Event::Transition)];
        (time(), actor, event).prop_map(|(at, actor, event)| Envelope { version: EVENT_VERSION, at, actor, event })
    }

    /// What the general decoder makes of `bytes`.
    fn by_serde(bytes: &[u8]) -> Option<Envelope> {
        Envelope::decode_by_serde(bytes).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every job creation and transition reads back as written, as
        /// serde reads it; and bytes changed anywhere (a byte flipped or
        /// set, cut short, a byte added) are either refused by both or read
        /// the same by both. `decode_created` reads the creations alone.
        #[test]
        fn reads_what_serde_reads_and_refuses_what_it_refuses(
            env in envelope(),
            at in any::<prop::sample::Index>(),
            value in any::<u8>(),
            change in 0..4u8,
        ) {
            let bytes = env.encode().unwrap();
            prop_assert_eq!(decode_common(&bytes), Some(env.clone()));
            prop_assert_eq!(by_serde(&bytes), Some(env));
            let mut changed = bytes.clone();
            let i = at.index(bytes.len());
            match change {
                0 => changed[i] ^= 1 << (value % 8),
                1 => changed[i] = value,
                2 => changed.truncate(i),
                _ => changed.insert(i, value),
            }
            if let Some(fast) = decode_common(&changed) {
                prop_assert_eq!(Some(fast), by_serde(&changed));
            }
            // The view's reader of a creation returns the job exactly
            // when the fast path returns a creation, and the same job.
            for b in [&bytes, &changed] {
                let created = match decode_common(b).map(|e| e.event) {
                    Some(Event::JobCreated(job)) => Some(*job),
                    _ => None,
                };
                prop_assert_eq!(decode_created(b), created);
            }
            // A replay's reader keeps an event exactly when the fast path
            // reads it, and keeps what the state needs of it.
            for b in [&bytes, &changed] {
                let kept = decode_kept(b).map(|k| {
                    let event = match k.event {
                        KeptEvent::Created(job) => Err(job.map(str::to_owned)),
                        KeptEvent::Transition(t) => Ok(t),
                    };
                    (k.version, k.at, k.by_user, event)
                });
                let common = decode_common(b).map(|e| {
                    let event = match e.event {
                        Event::JobCreated(job) => Err(job.columns().map(str::to_owned)),
                        Event::Transition(t) => Ok(t),
                        other => panic!("the fast path read {other:?}"),
                    };
                    (e.version, e.at, matches!(e.actor, Actor::User(_)), event)
                });
                prop_assert_eq!(kept, common);
            }
        }
    }

    /// The tables the fast path builds values from are in the enums'
    /// declaration order (the encoding is the index).
    #[test]
    fn actions_and_statuses_by_index_are_the_encoded_ones() {
        // Exhaustive, in declaration order: a new action stops the build
        // here until it is given its index and listed in `Action::ALL`.
        let index = |a: Action| match a {
            Action::Cancel => 0,
            Action::Pause => 1,
            Action::Resume => 2,
            Action::Postpone => 3,
            Action::Lock => 4,
            Action::Succeed => 5,
            Action::Fail => 6,
            Action::Wait => 7,
            Action::Retry => 8,
            Action::StopPausing => 9,
            Action::StopCanceling => 10,
            Action::ReturnToReady => 11,
            Action::Wake => 12,
        };
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(crate::codec::encode(a).unwrap(), [i as u8], "{a:?}");
            assert_eq!(index(*a), i);
        }
        for s in Status::all() {
            let bytes = crate::codec::encode(&s).unwrap();
            assert_eq!(Status::from_indices(u32::from(bytes[0]), u32::from(bytes[1])), Some(s));
        }
        for state in 0..5 {
            for reason in 0..12 {
                let valid = Status::all().any(|s| crate::codec::encode(&s).unwrap() == [state as u8, reason as u8]);
                assert_eq!(Status::from_indices(state, reason).is_some(), valid, "{state} {reason}");
            }
        }
    }

    /// A version this build does not read with today's types, another
    /// event, a wide form of a number that bincode refuses, bytes left
    /// over: the general decoder is asked.
    #[test]
    fn anything_else_is_left_to_serde() {
        let env = Envelope {
            version: EVENT_VERSION,
            at: Timestamp::from_micros(5),
            actor: Actor::System,
            event: Event::UserDeactivated { name: "x".into() },
        };
        assert_eq!(decode_common(&env.encode().unwrap()), None);
        let mut t = Envelope { event: Event::Transition(transition_sample()), ..env };
        let good = t.encode().unwrap();
        assert!(decode_common(&good).is_some());
        let mut left_over = good.clone();
        left_over.push(0);
        assert_eq!(decode_common(&left_over), None);
        // The version, 0 and one past this build's.
        for v in [0, EVENT_VERSION + 1] {
            let mut b = good.clone();
            b[0] = v as u8;
            assert_eq!(decode_common(&b), None);
        }
        // A u32 field (`retrycount`, 300) in the 8-byte form: bincode
        // refuses it, so does this; its 4-byte form, wider than needed, both read.
        let at = good.windows(3).position(|w| w == [251, 0x2c, 0x01]).unwrap();
        let wide = |form: &[u8]| [&good[..at], form, &good[at + 3..]].concat();
        let eight = wide(&[253, 0x2c, 0x01, 0, 0, 0, 0, 0, 0]);
        assert_eq!((decode_common(&eight), by_serde(&eight)), (None, None));
        let four = wide(&[252, 0x2c, 0x01, 0, 0]);
        assert_eq!(decode_common(&four), by_serde(&four));
        assert!(decode_common(&four).is_some());
        // A job's data near bincode's limit (which counts more than the
        // bytes): serde refuses it, and so does `Envelope::decode`.
        let mut job = Job::new("big", OperationType::WORKFLOW, "admin", "root", Timestamp::from_micros(0));
        job.data = vec![7; crate::codec::MAX_DECODE_BYTES - 100];
        let big = Envelope { event: Event::JobCreated(Box::new(job)), ..t.clone() }.encode().unwrap();
        assert!(big.len() < crate::codec::MAX_DECODE_BYTES);
        assert_eq!((decode_common(&big), by_serde(&big)), (None, None));
        assert!(Envelope::decode(&big).is_err());
        // `at`, an i64, in the 8-byte form is read.
        t.at = Timestamp::from_micros(1 << 40);
        assert!(decode_common(&t.encode().unwrap()).is_some());
    }

    fn transition_sample() -> Transition {
        Transition {
            job: Uuid::from_u128(7),
            action: Action::Lock,
            from: Status::READY,
            to: Status::IN_PROGRESS,
            postponeuntil: None,
            retrycount: 300,
            errorcode: Some(-5),
            message: Some("m".into()),
        }
    }
}
