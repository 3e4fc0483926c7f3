//! Label selectors (equality- and set-based, as `-l` takes them and as
//! `spec.selector` writes them) and field selectors over object JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// `spec.selector`: matchLabels plus matchExpressions, all ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement of a [`LabelSelector`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Operators of label and node selector requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    /// Node selectors only: numeric comparison.
    Gt,
    Lt,
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: SelectorOperator,
    values: Vec<String>,
}

/// A selector string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {input:?}: {reason}")]
pub struct SelectorError {
    pub input: String,
    pub reason: String,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
            SelectorOperator::Gt | SelectorOperator::Lt => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == SelectorOperator::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

impl Selector {
    /// The selector that matches everything.
    pub fn everything() -> Selector {
        Selector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Parses kubectl's `-l` syntax: `app=web,tier!=db,env in (a,b),!legacy`.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let err = |reason: &str| SelectorError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let mut requirements = Vec::new();
        for term in split_terms(input).map_err(|r| err(&r))? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_term(term).map_err(|r| err(&r))?);
        }
        Ok(Selector { requirements })
    }

    /// Converts a structured selector; an empty one matches everything, as in Kubernetes.
    pub fn from_label_selector(s: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements: Vec<Requirement> = s
            .match_labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                op: SelectorOperator::In,
                values: vec![v.clone()],
            })
            .collect();
        for e in &s.match_expressions {
            let needs_values = matches!(e.operator, SelectorOperator::In | SelectorOperator::NotIn);
            if needs_values && e.values.is_empty() {
                return Err(SelectorError {
                    input: e.key.clone(),
                    reason: format!("operator {:?} needs values", e.operator),
                });
            }
            if matches!(e.operator, SelectorOperator::Gt | SelectorOperator::Lt) {
                return Err(SelectorError {
                    input: e.key.clone(),
                    reason: "Gt and Lt are only valid in node selectors".into(),
                });
            }
            requirements.push(Requirement {
                key: e.key.clone(),
                op: e.operator,
                values: e.values.clone(),
            });
        }
        Ok(Selector { requirements })
    }

    /// An equality selector from a map (Services' `spec.selector`).
    pub fn from_map(labels: &BTreeMap<String, String>) -> Selector {
        Selector::from_label_selector(&LabelSelector {
            match_labels: labels.clone(),
            match_expressions: vec![],
        })
        .unwrap_or_default()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r.op {
                SelectorOperator::In if r.values.len() == 1 => format!("{}={}", r.key, r.values[0]),
                SelectorOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
                SelectorOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                SelectorOperator::Exists => r.key.clone(),
                SelectorOperator::DoesNotExist => format!("!{}", r.key),
                SelectorOperator::Gt => format!("{}>{}", r.key, r.values.join("")),
                SelectorOperator::Lt => format!("{}<{}", r.key, r.values.join("")),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Splits on commas that are not inside parentheses.
fn split_terms(input: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            ',' if depth == 0 => {
                terms.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    terms.push(&input[start..]);
    Ok(terms)
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let req = |key: &str, op, values: Vec<String>| -> Result<Requirement, String> {
        let key = key.trim();
        check_label_key(key)?;
        for v in &values {
            check_label_value(v)?;
        }
        Ok(Requirement {
            key: key.to_string(),
            op,
            values,
        })
    };
    if let Some(key) = term.strip_prefix('!') {
        return req(key, SelectorOperator::DoesNotExist, vec![]);
    }
    if let Some((key, value)) = term.split_once("!=") {
        return req(key, SelectorOperator::NotIn, vec![value.trim().to_string()]);
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return req(key, SelectorOperator::In, vec![value.trim().to_string()]);
    }
    for (word, op) in [
        (" notin ", SelectorOperator::NotIn),
        (" in ", SelectorOperator::In),
    ] {
        if let Some((key, rest)) = term.split_once(word) {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("{term:?}: expected a parenthesised value list"))?;
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                return Err(format!("{term:?}: empty value list"));
            }
            return req(key, op, values);
        }
    }
    req(term, SelectorOperator::Exists, vec![])
}

/// Checks a label key: optional DNS prefix and `/`, then a name of ≤ 63 characters.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        crate::validation::names::check_dns_subdomain(p)
            .map_err(|e| format!("label key {key:?}: prefix {e}"))?;
    }
    check_label_name(name).map_err(|e| format!("label key {key:?}: {e}"))
}

/// Checks a label value: empty, or ≤ 63 alphanumerics with `-_.` inside.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_name(value).map_err(|e| format!("label value {value:?}: {e}"))
}

fn check_label_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    let ok_inner = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ends_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !(ok_inner && ends_ok) {
        return Err(
            "must be alphanumeric, '-', '_' or '.', starting and ending alphanumeric".into(),
        );
    }
    Ok(())
}

/// A field selector such as `spec.nodeName=node-1,status.phase!=Running`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(input: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for term in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(SelectorError {
                    input: input.to_string(),
                    reason: format!("{term:?} is not of the form field=value or field!=value"),
                });
            };
            terms.push((path.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value required for `path` by an equality term, if any (the store
    /// indexes `spec.nodeName` this way).
    pub fn required_value(&self, path: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|(p, eq, _)| p == path && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    /// Matches against an object's JSON; a missing field reads as "".
    pub fn matches(&self, object: &serde_json::Value) -> bool {
        self.terms.iter().all(|(path, equal, want)| {
            let mut cur = object;
            let mut found = true;
            for part in path.split('.') {
                match cur.get(part) {
                    Some(v) => cur = v,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            let actual = match (found, cur) {
                (false, _) | (true, serde_json::Value::Null) => String::new(),
                (true, serde_json::Value::String(s)) => s.clone(),
                (true, other) => other.to_string(),
            };
            (actual == *want) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn string_selectors() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("env", "prod")]);
        let table: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app,tier", true),
            ("!legacy", true),
            ("!app", false),
            ("env in (prod,staging)", true),
            ("env notin (prod)", false),
            ("missing notin (x)", true),
            ("app=web,env in (dev)", false),
            (" app = web , tier = front ", true),
        ];
        for (sel, want) in table {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), *want, "{sel}");
        }
    }

    #[test]
    fn bad_selectors_are_errors() {
        for bad in [
            "app in (a",
            "app in ()",
            "a b c=d",
            "=x",
            "app=-bad-",
            "env in a,b",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn structured_selectors() {
        let s = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: SelectorOperator::In,
                values: vec!["front".into()],
            }],
        };
        let sel = Selector::from_label_selector(&s).unwrap();
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!sel.matches(&labels(&[("app", "web")])));
        assert_eq!(sel.to_string(), "app=web,tier=front");
        assert!(
            Selector::from_label_selector(&LabelSelector::default())
                .unwrap()
                .matches(&labels(&[]))
        );
    }

    #[test]
    fn field_selectors() {
        let pod = serde_json::json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let f = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
        assert!(f.matches(&pod));
        assert_eq!(f.required_value("spec.nodeName"), Some("n1"));
        assert!(
            FieldSelector::parse("spec.nodeName=")
                .unwrap()
                .matches(&serde_json::json!({"spec": {}}))
        );
        assert!(
            !FieldSelector::parse("spec.nodeName=n2")
                .unwrap()
                .matches(&pod)
        );
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
