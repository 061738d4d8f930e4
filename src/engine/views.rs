//! A store opened for the reads of jobs alone (`joblog list`, `joblog
//! show`): [`Views`]. Where [`Engine::open_read_only`] decodes the hot
//! rows of the newest checkpoint and indexes them, this maps their image
//! (a run that may hold open jobs, written by every checkpoint of format 9
//! on: `Projection::write_hot_run`) as it maps the cold runs, so that a
//! single command costs what its answer reads, not what the store holds
//! (ARCHITECTURE.md, "A data directory"). It answers a job, its history, a
//! page of a view and a count, as a [`super::Session`] does, and nothing
//! else. The events the log holds after the checkpoint are folded in as
//! an open folds them, each job they touch taken out of its run (the image,
//! or a cold run) into memory alone (`Projection::thaw_row`), read from
//! where the checkpoint's last event is (checkpoint format 10), so a
//! command after a few writes costs what it did before them and the few
//! events' replay. When the
//! checkpoint keeps no image, or anything is not as it should be (a torn
//! tail, a run that does not check, an event that does not fold),
//! [`Views::open`] answers `None` and the caller opens the engine.
//!
//! [`Engine::open_read_only`]: super::Engine::open_read_only

use std::path::Path;

use uuid::Uuid;

use super::reads::{count_in, get_in, history_in, list_in, HistoryEntry, Reads};
use super::Config;
use crate::domain::Job;
use crate::error::Error;
use crate::log::Log;
use crate::projection::query::{Cursor, Filter};
use crate::projection::Projection;

/// A store opened read-only for the reads of jobs alone (see the module's
/// documentation).
pub struct Views {
    log: Log,
    state: Projection,
}

impl Views {
    /// Opens the store in `dir` as [`super::Engine::open_read_only`] does
    /// (a shared lock, nothing written, the same refusals of a store not
    /// its owner's or damaged), with the state of its newest checkpoint
    /// mapped and the events after it folded in; `None` when the store
    /// cannot be read so (a torn tail the engine would report, a
    /// checkpoint of an older format or none, a run that does not check,
    /// an event that does not fold): then open the engine.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Option<Views>, Error> {
        let dir = dir.as_ref();
        let mut config = config;
        let log = super::open::open_log_read_only(dir, &mut config)?;
        if log.recovery().torn_offset.is_some() {
            return Ok(None);
        }
        let Some(mut state) = Projection::load_views(&dir.join("snapshots"), log.next_seq(), &log.generations()) else {
            return Ok(None);
        };
        // The events since the checkpoint, folded in: each job they touch
        // leaves its run for memory, alone. One that does not fold is the
        // engine's to report. None: no fold at all (not even the check of
        // the frame the checkpoint ends at).
        let tail = state.last_seq() + 1 < log.next_seq();
        if tail && super::open::fold_read_only(&log, &mut state, &config).is_err() {
            return Ok(None);
        }
        state.drop_scratch();
        Ok(Some(Views { log, state }))
    }

    /// The reads of `user`, who must exist and be active.
    pub fn reader(&self, user: &str) -> Result<Reader<'_>, Error> {
        super::check_user(&self.state, user)?;
        Ok(Reader { views: self, user: user.to_string() })
    }
}

/// The reads of one user in a [`Views`].
pub struct Reader<'v> {
    views: &'v Views,
    user: String,
}

impl Reads for Reader<'_> {
    fn get(&self, id: Uuid) -> Result<Job, Error> {
        get_in(&self.views.state, &self.views.log, &self.user, id)
    }

    fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>, Error> {
        history_in(&self.views.state, &self.views.log, &self.user, id)
    }

    fn list(&self, filter: &Filter, after: Option<&Cursor>, limit: usize) -> Result<(Vec<Job>, Option<Cursor>), Error> {
        list_in(&self.views.state, &self.views.log, &self.user, filter, after, limit)
    }

    fn count(&self, filter: &Filter) -> Result<usize, Error> {
        count_in(&self.views.state, &self.user, filter)
    }
}
