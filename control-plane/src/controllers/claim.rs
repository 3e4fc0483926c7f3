//! Adoption and release of dependents (Kubernetes' ControllerRefManager):
//! an owner claims the objects its selector matches. An orphan (no
//! controller reference) that matches is adopted; an object it controls
//! that no longer matches is released; objects controlled by others are
//! never touched. [`claim`] decides, [`Claimer`] writes.

use std::sync::Arc;

use drover_proto::client::ClientError;
use drover_proto::selector::Selector;
use drover_proto::{OwnerReference, Resource};

use crate::controllers::api::ControllerApi;
use crate::controllers::error::ControllerError;

/// What an owner does with the candidates in its namespace.
#[derive(Debug)]
pub struct Claims<T> {
    /// Already controlled by the owner and still matching.
    pub owned: Vec<Arc<T>>,
    /// Orphans that match: to be adopted.
    pub adopt: Vec<Arc<T>>,
    /// Controlled by the owner but no longer matching: to be released.
    pub release: Vec<Arc<T>>,
}

/// Sorts `candidates` for the owner with `owner_uid`. An owner being
/// deleted neither adopts nor releases.
pub fn claim<T: Resource>(
    owner_uid: &str,
    owner_deleting: bool,
    selector: &Selector,
    candidates: Vec<Arc<T>>,
) -> Claims<T> {
    let mut out = Claims {
        owned: vec![],
        adopt: vec![],
        release: vec![],
    };
    for c in candidates {
        let meta = c.metadata();
        // An empty selector would match everything: it claims nothing new.
        let matches = !selector.is_empty() && selector.matches(&meta.labels);
        match meta.controller_ref() {
            Some(r) if r.uid == owner_uid => {
                if matches {
                    out.owned.push(c);
                } else if !owner_deleting {
                    out.release.push(c);
                }
            }
            Some(_) => {}
            None => {
                if matches && !owner_deleting && meta.deletion_timestamp.is_none() {
                    out.adopt.push(c);
                }
            }
        }
    }
    out
}

/// The controller reference an owner puts on what it controls.
pub fn controller_ref_to<O: Resource>(owner: &O) -> OwnerReference {
    OwnerReference {
        api_version: O::KIND.api_version().to_string(),
        kind: O::KIND.name().to_string(),
        name: owner.name().to_string(),
        uid: owner.metadata().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Performs the adoptions and releases of one owner.
pub struct Claimer<'a, A: ControllerApi, O: Resource> {
    pub api: &'a A,
    pub owner: &'a O,
}

impl<A: ControllerApi, O: Resource> Claimer<'_, A, O> {
    fn owner_name(&self) -> String {
        format!("{}/{}", O::KIND.lower(), self.owner.name())
    }

    /// Whether the owner, read fresh, is still the one we cached and not
    /// being deleted: a stale cache must not adopt for a deleted owner.
    async fn can_adopt(&self) -> Result<bool, ControllerError> {
        let o = self.owner;
        match self.api.get(O::KIND, o.namespace(), o.name()).await {
            Ok(fresh) => Ok(fresh.metadata.uid == o.metadata().uid
                && fresh.metadata.deletion_timestamp.is_none()),
            Err(ClientError::NotFound(_)) => Ok(false),
            Err(e) => Err(ControllerError::api("re-reading", self.owner_name(), e)),
        }
    }

    /// Adopts `orphans`; returns those now owned (as stored). Each write is
    /// a compare-and-set, so an object changed meanwhile is left for the
    /// next reconcile.
    pub async fn adopt<T: Resource>(
        &self,
        orphans: Vec<Arc<T>>,
    ) -> Result<Vec<Arc<T>>, ControllerError> {
        if orphans.is_empty() || !self.can_adopt().await? {
            return Ok(vec![]);
        }
        let reference = controller_ref_to(self.owner);
        let mut adopted = Vec::with_capacity(orphans.len());
        for o in orphans {
            let mut updated = o.as_ref().clone();
            updated
                .metadata_mut()
                .owner_references
                .push(reference.clone());
            match self.api.update(&updated.to_object()).await {
                Ok(stored) => {
                    let t = T::from_object(&stored).map_err(|e| ControllerError::Invalid {
                        object: format!("{}/{}", T::KIND.lower(), o.name()),
                        message: e.to_string(),
                    })?;
                    adopted.push(Arc::new(t));
                }
                Err(ClientError::NotFound(_)) => {}
                Err(e) => {
                    return Err(ControllerError::api(
                        "adopting",
                        format!("{}/{} for {}", T::KIND.lower(), o.name(), self.owner_name()),
                        e,
                    ));
                }
            }
        }
        Ok(adopted)
    }

    /// Removes the owner's reference from `objects`.
    pub async fn release<T: Resource>(&self, objects: Vec<Arc<T>>) -> Result<(), ControllerError> {
        let uid = self.owner.metadata().uid.clone().unwrap_or_default();
        for o in objects {
            let mut updated = o.as_ref().clone();
            updated
                .metadata_mut()
                .owner_references
                .retain(|r| r.uid != uid);
            match self.api.update(&updated.to_object()).await {
                Ok(_) | Err(ClientError::NotFound(_)) => {}
                Err(e) => {
                    return Err(ControllerError::api(
                        "releasing",
                        format!(
                            "{}/{} from {}",
                            T::KIND.lower(),
                            o.name(),
                            self.owner_name()
                        ),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Keys (`namespace/name`) of the owners in `owners` whose selector matches
/// an orphan's labels: they may want to adopt it.
pub fn owners_matching<O: Resource>(
    owners: &[Arc<O>],
    selector_of: impl Fn(&O) -> Option<Selector>,
    labels: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    owners
        .iter()
        .filter(|o| selector_of(o).is_some_and(|s| !s.is_empty() && s.matches(labels)))
        .map(|o| crate::controllers::runtime::key_of(o.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::types::Pod;

    fn pod(name: &str, app: &str, controller: Option<&str>) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.labels.insert("app".into(), app.into());
        if let Some(uid) = controller {
            p.metadata.owner_references.push(OwnerReference {
                kind: "ReplicaSet".into(),
                uid: uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            });
        }
        Arc::new(p)
    }

    fn names(v: &[Arc<Pod>]) -> Vec<&str> {
        v.iter().map(|p| p.name()).collect()
    }

    #[test]
    fn adopts_orphans_releases_mismatches_and_ignores_others() {
        let selector = Selector::parse("app=web").expect("selector");
        let mut terminating = (*pod("dying-orphan", "web", None)).clone();
        terminating.metadata.deletion_timestamp = Some(chrono::Utc::now());
        let candidates = vec![
            pod("mine", "web", Some("me")),
            pod("mine-relabelled", "db", Some("me")),
            pod("orphan", "web", None),
            pod("orphan-other-app", "db", None),
            pod("theirs", "web", Some("someone-else")),
            Arc::new(terminating),
        ];
        let c = claim("me", false, &selector, candidates.clone());
        assert_eq!(names(&c.owned), ["mine"]);
        assert_eq!(names(&c.adopt), ["orphan"]);
        assert_eq!(names(&c.release), ["mine-relabelled"]);

        let c = claim("me", true, &selector, candidates);
        assert_eq!(names(&c.owned), ["mine"]);
        assert!(
            c.adopt.is_empty() && c.release.is_empty(),
            "an owner being deleted claims nothing new"
        );
    }
}
