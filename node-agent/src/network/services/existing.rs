//! What the service table holds now, read from `nft --json list table`
//! (parsing is pure): its chains, and its counters with their values.

use std::collections::BTreeMap;

use super::render::Existing;

/// Packets and bytes of one named counter. In the NAT chains only a
/// connection's first packet passes, so `packets` counts connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValue {
    pub packets: u64,
    pub bytes: u64,
}

/// The chains and counters in `json` (the output of `nft -j list table`).
/// Unparsable output reads as an empty table that exists: the next apply
/// then flushes it without deleting anything.
pub fn parse(json: &str) -> Existing {
    let mut existing = Existing {
        table: true,
        ..Existing::default()
    };
    for (kind, name, _) in objects(json) {
        match kind {
            Kind::Chain => existing.chains.insert(name),
            Kind::Counter => existing.counters.insert(name),
        };
    }
    existing
}

/// Every named counter in `json` with its values.
pub fn counters(json: &str) -> BTreeMap<String, CounterValue> {
    objects(json)
        .into_iter()
        .filter(|(k, _, _)| *k == Kind::Counter)
        .map(|(_, name, value)| (name, value))
        .collect()
}

#[derive(PartialEq, Eq)]
enum Kind {
    Chain,
    Counter,
}

fn objects(json: &str) -> Vec<(Kind, String, CounterValue)> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let Some(items) = value.get("nftables").and_then(|v| v.as_array()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let (kind, body) = if let Some(c) = item.get("chain") {
            (Kind::Chain, c)
        } else if let Some(c) = item.get("counter") {
            (Kind::Counter, c)
        } else {
            continue;
        };
        let Some(name) = body.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        let num = |k: &str| body.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let value = CounterValue {
            packets: num("packets"),
            bytes: num("bytes"),
        };
        out.push((kind, name.to_string(), value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
      {"table": {"family": "ip", "name": "drover_svc_drover0", "handle": 7}},
      {"counter": {"family": "ip", "name": "svc/default/web/http", "table": "drover_svc_drover0", "handle": 2, "packets": 5, "bytes": 300}},
      {"chain": {"family": "ip", "table": "drover_svc_drover0", "name": "prerouting", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
      {"chain": {"family": "ip", "table": "drover_svc_drover0", "name": "svc/default/web/http", "handle": 3}},
      {"rule": {"family": "ip", "table": "drover_svc_drover0", "chain": "prerouting", "handle": 4, "expr": []}}]}"#;

    #[test]
    fn reads_chains_and_counters() {
        let e = parse(LISTED);
        assert!(e.table);
        assert_eq!(
            e.chains.iter().collect::<Vec<_>>(),
            ["prerouting", "svc/default/web/http"]
        );
        assert_eq!(
            counters(LISTED).get("svc/default/web/http"),
            Some(&CounterValue {
                packets: 5,
                bytes: 300
            })
        );
        let garbage = parse("not json");
        assert!(garbage.table && garbage.chains.is_empty());
    }
}
