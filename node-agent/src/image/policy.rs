//! `imagePullPolicy`: whether to pull, as a pure decision.

use serde::{Deserialize, Serialize};

/// Kubernetes' `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Pull every time (resolve the tag again).
    Always,
    /// Pull only when the image is not in the store.
    IfNotPresent,
    /// Never pull; the image must have been imported or pulled before.
    Never,
}

impl PullPolicy {
    /// Kubernetes' default: `Always` for `:latest` or untagged references,
    /// `IfNotPresent` otherwise (a digest pins the content, so never re-pull).
    pub fn default_for(reference: &str) -> Self {
        if reference.contains('@') {
            return PullPolicy::IfNotPresent;
        }
        let last = reference.rsplit('/').next().unwrap_or(reference);
        match last.split_once(':') {
            Some((_, "latest")) | None => PullPolicy::Always,
            Some(_) => PullPolicy::IfNotPresent,
        }
    }
}

/// What to do about an image before starting a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullAction {
    /// Fetch from the registry.
    Pull,
    /// Use what the store has.
    UseLocal,
}

/// The image is absent and the policy forbids pulling it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("image {0} is not present on the node and imagePullPolicy is Never")]
pub struct NeverPullError(pub String);

/// Decides whether to pull `name` given whether the store has it.
pub fn decide(policy: PullPolicy, name: &str, present: bool) -> Result<PullAction, NeverPullError> {
    match (policy, present) {
        (PullPolicy::Always, _) | (PullPolicy::IfNotPresent, false) => Ok(PullAction::Pull),
        (PullPolicy::IfNotPresent, true) | (PullPolicy::Never, true) => Ok(PullAction::UseLocal),
        (PullPolicy::Never, false) => Err(NeverPullError(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        use PullAction::*;
        use PullPolicy::*;
        let cases = [
            (Always, true, Ok(Pull)),
            (Always, false, Ok(Pull)),
            (IfNotPresent, true, Ok(UseLocal)),
            (IfNotPresent, false, Ok(Pull)),
            (Never, true, Ok(UseLocal)),
            (Never, false, Err(NeverPullError("x:1".into()))),
        ];
        for (policy, present, want) in cases {
            assert_eq!(decide(policy, "x:1", present), want, "{policy:?} {present}");
        }
    }

    #[test]
    fn defaults_follow_kubernetes() {
        assert_eq!(PullPolicy::default_for("busybox"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::default_for("busybox:latest"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::default_for("example/busybox:1"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::default_for("127.0.0.1:5000/busybox"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::default_for("127.0.0.1:5000/busybox:1"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::default_for("busybox@sha256:abc"),
            PullPolicy::IfNotPresent
        );
    }
}
