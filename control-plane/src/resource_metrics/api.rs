//! `GET /apis/metrics.k8s.io/v1beta1/{nodes[/NAME] | pods |
//! namespaces/NS/pods[/NAME]}` with `labelSelector`, as metrics-server
//! answers them (the response is built purely from the last scrape).

use drover_proto::selector::Selector;
use drover_proto::types::metrics::{METRICS_API_VERSION, MetricsList};
use serde_json::Value;

use super::Aggregate;
use crate::api::{ApiError, ErrorCode};

/// Why the metrics API could not answer.
fn unavailable() -> ApiError {
    ApiError {
        code: ErrorCode::Unavailable,
        message: "metrics not available yet: the control plane has not scraped the nodes (it does every second once they are Ready)".into(),
    }
}

fn not_found(what: &str, name: &str) -> ApiError {
    ApiError {
        code: ErrorCode::NotFound,
        message: format!("{what} \"{name}\" not found (no metrics for it yet)"),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::invalid(e.to_string()))
}

/// The answer for `version` and the path segments after it.
pub fn answer(
    agg: Option<&Aggregate>,
    version: &str,
    rest: &[&str],
    labels: &str,
) -> Result<Value, ApiError> {
    let expected = METRICS_API_VERSION.rsplit('/').next().unwrap_or_default();
    if version != expected {
        return Err(ApiError {
            code: ErrorCode::NotFound,
            message: format!("metrics.k8s.io serves {expected}, not {version}"),
        });
    }
    let selector = Selector::parse(labels).map_err(|e| ApiError::invalid(e.to_string()))?;
    let agg = agg.ok_or_else(unavailable)?;
    match rest {
        ["nodes"] => to_value(&MetricsList::new(
            "NodeMetrics",
            agg.nodes
                .iter()
                .filter(|n| selector.matches(&n.metadata.labels))
                .cloned()
                .collect(),
        )),
        ["nodes", name] => agg
            .nodes
            .iter()
            .find(|n| n.metadata.name == *name)
            .map(to_value)
            .unwrap_or_else(|| Err(not_found("nodemetrics", name))),
        ["pods"] | ["namespaces", _, "pods"] => {
            let ns = match rest {
                ["namespaces", ns, _] => Some(*ns),
                _ => None,
            };
            to_value(&MetricsList::new(
                "PodMetrics",
                agg.pods
                    .iter()
                    .filter(|((n, _), m)| {
                        ns.is_none_or(|ns| ns == n) && selector.matches(&m.metadata.labels)
                    })
                    .map(|(_, m)| m.clone())
                    .collect(),
            ))
        }
        ["namespaces", ns, "pods", name] => agg
            .pods
            .get(&(ns.to_string(), name.to_string()))
            .map(to_value)
            .unwrap_or_else(|| Err(not_found("podmetrics", name))),
        _ => Err(ApiError {
            code: ErrorCode::NotFound,
            message: format!(
                "no such path: /apis/metrics.k8s.io/{version}/{} (nodes, pods, namespaces/NS/pods)",
                rest.join("/")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::ObjectMeta;
    use drover_proto::types::metrics::{NodeMetrics, PodMetrics};
    use std::collections::BTreeMap;

    fn view() -> Aggregate {
        let pod = |ns: &str, name: &str, app: &str| {
            let m = PodMetrics {
                metadata: ObjectMeta {
                    name: name.into(),
                    namespace: Some(ns.into()),
                    labels: BTreeMap::from([("app".into(), app.into())]),
                    ..Default::default()
                },
                ..Default::default()
            };
            ((ns.to_string(), name.to_string()), m)
        };
        Aggregate {
            nodes: vec![NodeMetrics {
                metadata: ObjectMeta {
                    name: "n1".into(),
                    ..Default::default()
                },
                ..Default::default()
            }],
            pods: BTreeMap::from([
                pod("default", "web-1", "web"),
                pod("default", "db-1", "db"),
                pod("other", "web-2", "web"),
            ]),
            services: BTreeMap::new(),
            held: BTreeMap::new(),
        }
    }

    fn names(v: &Value) -> Vec<&str> {
        v["items"]
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .collect()
    }

    #[test]
    fn lists_filter_by_namespace_and_labels() {
        let v = view();
        let all = answer(Some(&v), "v1beta1", &["pods"], "").expect("answers");
        assert_eq!(all["kind"], "PodMetricsList");
        assert_eq!(names(&all), ["db-1", "web-1", "web-2"]);
        let web = answer(
            Some(&v),
            "v1beta1",
            &["namespaces", "default", "pods"],
            "app=web",
        );
        assert_eq!(names(&web.expect("answers")), ["web-1"]);
        let node = answer(Some(&v), "v1beta1", &["nodes", "n1"], "").expect("answers");
        assert_eq!(node["metadata"]["name"], "n1");
    }

    #[test]
    fn errors_say_what_is_missing() {
        let v = view();
        let e = answer(None, "v1beta1", &["nodes"], "").expect_err("no scrape yet");
        assert_eq!(e.code, ErrorCode::Unavailable);
        let e = answer(
            Some(&v),
            "v1beta1",
            &["namespaces", "default", "pods", "nope"],
            "",
        )
        .expect_err("unknown pod");
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(e.message.contains("nope"));
        let e = answer(Some(&v), "v1", &["nodes"], "").expect_err("wrong version");
        assert_eq!(e.code, ErrorCode::NotFound);
        let e = answer(Some(&v), "v1beta1", &["pods"], "a in (").expect_err("bad selector");
        assert_eq!(e.code, ErrorCode::Invalid);
    }
}
