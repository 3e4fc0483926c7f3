//! A watch: the backlog after a revision, then the live feed, filtered to one
//! kind, namespace and selectors, without gaps or duplicates.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::{Kind, Object};
use tokio::sync::broadcast;

use crate::state::{Change, ChangeType, StateMachine, TooOld};

/// What a watch wants to see.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    pub kind: Kind,
    /// None: every namespace.
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, o: &Object) -> bool {
        if let Some(ns) = &self.namespace
            && self.kind.namespaced()
            && o.metadata.namespace.as_deref() != Some(ns.as_str())
        {
            return false;
        }
        self.labels.matches(&o.metadata.labels)
            && (self.fields.is_empty() || self.fields.matches(&o.to_value()))
    }

    /// How `change` looks through this filter, if at all.
    fn view(&self, change: &Change) -> Option<&'static str> {
        if change.kind != self.kind {
            return None;
        }
        let now = self.matches(&change.object);
        match change.type_ {
            ChangeType::Added => now.then_some("ADDED"),
            ChangeType::Deleted => now.then_some("DELETED"),
            ChangeType::Modified => {
                let before = change.prev.as_deref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }
    }
}

/// One event delivered to a watcher.
#[derive(Debug, Clone)]
pub struct WatchItem {
    pub type_: &'static str,
    pub object: Arc<Object>,
    pub revision: u64,
    /// The change it shows, whose JSON every watcher shares.
    pub(crate) change: Arc<Change>,
}

impl WatchItem {
    /// `object` as JSON: the change's shared bytes unless `object` was
    /// replaced on the way (an opened Secret).
    pub fn object_json(&self) -> Cow<'_, [u8]> {
        if Arc::ptr_eq(&self.object, &self.change.object) {
            Cow::Borrowed(self.change.object_json())
        } else {
            Cow::Owned(self.object.to_json())
        }
    }
}

/// A running watch.
pub struct Watch {
    filter: WatchFilter,
    last: u64,
    backlog: std::collections::VecDeque<Arc<Change>>,
    live: broadcast::Receiver<Arc<Change>>,
    state: Arc<RwLock<StateMachine>>,
}

impl Watch {
    pub(super) fn new(
        filter: WatchFilter,
        since: u64,
        backlog: Vec<Arc<Change>>,
        live: broadcast::Receiver<Arc<Change>>,
        state: Arc<RwLock<StateMachine>>,
    ) -> Watch {
        Watch {
            filter,
            last: since,
            backlog: backlog.into(),
            live,
            state,
        }
    }

    /// The next matching event; an error when the watcher fell so far behind
    /// that the history it needs was compacted.
    pub async fn next(&mut self) -> Option<Result<WatchItem, TooOld>> {
        loop {
            let change = match self.backlog.pop_front() {
                Some(c) => c,
                None => match self.live.recv().await {
                    // Revisions are consecutive; a jump means the state was
                    // replaced (a replicated member restored from a snapshot):
                    // resume from the history, or tell the watcher to relist.
                    Ok(c) if c.revision > self.last + 1 => {
                        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
                        match state.changes_since(self.last) {
                            Ok(b) if b.first().is_some_and(|f| f.revision == self.last + 1) => {
                                self.backlog = b.into();
                                continue;
                            }
                            Ok(_) => {
                                return Some(Err(TooOld {
                                    requested: self.last,
                                    oldest: state.compacted().max(self.last + 1),
                                }));
                            }
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Closed) => return None,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Catch up from the history instead of dropping events.
                        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
                        match state.changes_since(self.last) {
                            Ok(b) => self.backlog = b.into(),
                            Err(e) => return Some(Err(e)),
                        }
                        continue;
                    }
                },
            };
            if change.revision <= self.last {
                continue;
            }
            self.last = change.revision;
            if let Some(type_) = self.filter.view(&change) {
                return Some(Ok(WatchItem {
                    type_,
                    object: change.object.clone(),
                    revision: change.revision,
                    change,
                }));
            }
        }
    }

    /// The revision of the last change this watch has passed.
    pub fn revision(&self) -> u64 {
        self.last
    }
}
