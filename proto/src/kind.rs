//! The kinds the API serves, with their group/version, plural and short names.

use std::fmt;

/// Every kind of object the API stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Pod,
    Service,
    Endpoints,
    Node,
    Namespace,
    ConfigMap,
    Secret,
    Event,
    Deployment,
    ReplicaSet,
    HorizontalPodAutoscaler,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Pod,
        Kind::Service,
        Kind::Endpoints,
        Kind::Node,
        Kind::Namespace,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::Event,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::HorizontalPodAutoscaler,
    ];

    /// The kind's name as written in manifests (`Deployment`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::Endpoints => "Endpoints",
            Kind::Node => "Node",
            Kind::Namespace => "Namespace",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::Event => "Event",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
        }
    }

    /// API group, empty for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet => "apps",
            Kind::HorizontalPodAutoscaler => "autoscaling",
            _ => "",
        }
    }

    /// The `apiVersion` objects of this kind carry.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet => "apps/v1",
            Kind::HorizontalPodAutoscaler => "autoscaling/v2",
            _ => "v1",
        }
    }

    /// Lower-case plural used in URLs and by `drover get`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::Endpoints => "endpoints",
            Kind::Node => "nodes",
            Kind::Namespace => "namespaces",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::Event => "events",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::HorizontalPodAutoscaler => "horizontalpodautoscalers",
        }
    }

    /// kubectl's short names.
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Pod => &["po"],
            Kind::Service => &["svc"],
            Kind::Endpoints => &["ep"],
            Kind::Node => &["no"],
            Kind::Namespace => &["ns"],
            Kind::ConfigMap => &["cm"],
            Kind::Secret => &[],
            Kind::Event => &["ev"],
            Kind::Deployment => &["deploy"],
            Kind::ReplicaSet => &["rs"],
            Kind::HorizontalPodAutoscaler => &["hpa"],
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Node | Kind::Namespace)
    }

    /// Parses what a user types: `Deployment`, `deployment`, `deployments`, `deploy`.
    pub fn parse(input: &str) -> Option<Kind> {
        let lower = input.to_ascii_lowercase();
        // `deployment.apps` and `deployments.apps/v1` style qualifiers are accepted.
        let base = lower.split('.').next().unwrap_or(&lower);
        Kind::ALL.into_iter().find(|k| {
            k.name().eq_ignore_ascii_case(base)
                || k.plural() == base
                || k.short_names().contains(&base)
        })
    }

    /// Resolves `apiVersion` + `kind` from a manifest, checking they agree.
    pub fn from_type_meta(api_version: &str, kind: &str) -> Result<Kind, String> {
        let k = Kind::ALL
            .into_iter()
            .find(|k| k.name() == kind)
            .ok_or_else(|| format!("kind {kind:?} is not served by Drover"))?;
        if api_version != k.api_version() {
            return Err(format!(
                "apiVersion {api_version:?} does not serve kind {kind}; use {:?}",
                k.api_version()
            ));
        }
        Ok(k)
    }

    /// Resolves a kind from a URL's group, version and plural.
    pub fn from_path(group: &str, version: &str, plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| {
            k.group() == group && k.plural() == plural && k.api_version().ends_with(version)
        })
    }

    /// Lower-case name used in messages like `deployment/web`.
    pub fn lower(self) -> String {
        self.name().to_ascii_lowercase()
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown kind {s:?}")))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        for (input, want) in [
            ("po", Kind::Pod),
            ("pods", Kind::Pod),
            ("Pod", Kind::Pod),
            ("deploy", Kind::Deployment),
            ("deployments.apps", Kind::Deployment),
            ("rs", Kind::ReplicaSet),
            ("svc", Kind::Service),
            ("no", Kind::Node),
            ("ns", Kind::Namespace),
            ("cm", Kind::ConfigMap),
            ("hpa", Kind::HorizontalPodAutoscaler),
            ("ev", Kind::Event),
            ("secret", Kind::Secret),
        ] {
            assert_eq!(Kind::parse(input), Some(want), "{input}");
        }
        assert_eq!(Kind::parse("widgets"), None);
    }

    #[test]
    fn type_meta_must_agree() {
        assert_eq!(
            Kind::from_type_meta("apps/v1", "Deployment"),
            Ok(Kind::Deployment)
        );
        assert!(Kind::from_type_meta("v1", "Deployment").is_err());
        assert!(Kind::from_type_meta("v1", "Widget").is_err());
        assert_eq!(
            Kind::from_path("apps", "v1", "replicasets"),
            Some(Kind::ReplicaSet)
        );
        assert_eq!(Kind::from_path("", "v1", "pods"), Some(Kind::Pod));
    }
}
