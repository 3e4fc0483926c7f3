//! Which pods a drain evicts, skips or refuses to touch: kubectl's rules as
//! a pure function of the node's pods and the flags.

use drover_proto::Resource;
use drover_proto::types::Pod;
use drover_proto::types::pod::PodPhase;

/// Annotation of a pod mirrored from a node's static manifest.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

#[derive(Debug, Clone, Copy, Default)]
pub struct DrainFlags {
    /// Also evict pods no controller will re-create.
    pub force: bool,
    /// Leave DaemonSet pods in place instead of refusing.
    pub ignore_daemonsets: bool,
}

/// What a drain will do with the pods of one node.
#[derive(Debug, Default, PartialEq)]
pub struct DrainPlan {
    /// `namespace/name` of pods to evict.
    pub evict: Vec<String>,
    /// Pods left alone, with why (warnings).
    pub skipped: Vec<(String, &'static str)>,
    /// Pods that stop the drain unless a flag allows them, with why.
    pub blocked: Vec<(String, &'static str)>,
}

fn id(p: &Pod) -> String {
    format!("{}/{}", p.namespace(), p.name())
}

/// Sorts the node's pods into evict / skip / blocked.
pub fn plan(pods: &[Pod], flags: DrainFlags) -> DrainPlan {
    let mut out = DrainPlan::default();
    for p in pods {
        let finished = p
            .status
            .as_ref()
            .is_some_and(|s| matches!(s.phase, PodPhase::Succeeded | PodPhase::Failed));
        let controller = p.metadata.controller_ref();
        if p.metadata.annotations.contains_key(MIRROR_ANNOTATION) {
            out.skipped
                .push((id(p), "mirror pod (managed by the node)"));
        } else if finished {
            // Nothing runs any more: removing it loses nothing.
            out.evict.push(id(p));
        } else if controller.is_some_and(|c| c.kind == "DaemonSet") {
            if flags.ignore_daemonsets {
                out.skipped.push((id(p), "DaemonSet-managed"));
            } else {
                out.blocked.push((
                    id(p),
                    "DaemonSet-managed (use --ignore-daemonsets to leave it)",
                ));
            }
        } else if controller.is_none() && !flags.force {
            out.blocked.push((
                id(p),
                "declares no controller, so nothing would re-create it (use --force to override)",
            ));
        } else {
            out.evict.push(id(p));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::OwnerReference;
    use drover_proto::types::pod::PodStatus;

    fn pod(name: &str, owner: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        if let Some(kind) = owner {
            p.metadata.owner_references.push(OwnerReference {
                kind: kind.into(),
                name: "o".into(),
                uid: "u".into(),
                controller: Some(true),
                ..OwnerReference::default()
            });
        }
        p
    }

    fn names(v: &[(String, &str)]) -> Vec<String> {
        v.iter().map(|(n, _)| n.clone()).collect()
    }

    #[test]
    fn kubectl_rules() {
        let mut mirror = pod("mirror", None);
        mirror
            .metadata
            .annotations
            .insert(MIRROR_ANNOTATION.into(), "x".into());
        let mut done = pod("done", None);
        done.status = Some(PodStatus {
            phase: PodPhase::Succeeded,
            ..PodStatus::default()
        });
        let pods = vec![
            pod("rs", Some("ReplicaSet")),
            pod("bare", None),
            pod("ds", Some("DaemonSet")),
            mirror,
            done,
        ];

        let p = plan(&pods, DrainFlags::default());
        assert_eq!(p.evict, ["default/rs", "default/done"]);
        assert_eq!(names(&p.blocked), ["default/bare", "default/ds"]);
        assert_eq!(names(&p.skipped), ["default/mirror"]);

        let p = plan(
            &pods,
            DrainFlags {
                force: true,
                ignore_daemonsets: true,
            },
        );
        assert_eq!(p.evict, ["default/rs", "default/bare", "default/done"]);
        assert!(p.blocked.is_empty());
        assert_eq!(names(&p.skipped), ["default/ds", "default/mirror"]);
    }
}
