//! Resource quantities (`500m`, `128Mi`, `1.5`, `2e3`) parsed as Kubernetes
//! parses them, kept exactly as written and compared by value.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kubernetes resource quantity, e.g. `250m` CPU or `64Mi` memory.
#[derive(Clone, Eq)]
pub struct Quantity {
    text: String,
    /// Value in billionths of a unit, so `1m` and `1Ki` are both exact.
    nanos: i128,
}

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {reason} (expected forms like 500m, 2, 1.5, 128Mi, 1G, 2e3)")]
pub struct QuantityError {
    pub input: String,
    pub reason: &'static str,
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;

fn suffix_nanos(suffix: &str) -> Option<i128> {
    let binary = |shift: u32| (1i128 << shift) * NANOS_PER_UNIT;
    Some(match suffix {
        "n" => 1,
        "u" => 1_000,
        "m" => 1_000_000,
        "" => NANOS_PER_UNIT,
        "k" => NANOS_PER_UNIT * 1_000,
        "M" => NANOS_PER_UNIT * 1_000_000,
        "G" => NANOS_PER_UNIT * 1_000_000_000,
        "T" => NANOS_PER_UNIT * 1_000_000_000_000,
        "P" => NANOS_PER_UNIT * 1_000_000_000_000_000,
        "E" => NANOS_PER_UNIT * 1_000_000_000_000_000_000,
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => return None,
    })
}

impl Quantity {
    /// Parses a quantity string.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let err = |reason| QuantityError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let (negative, body) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (number, suffix) = body.split_at(number_end);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("no digits"));
        }
        if frac_part.contains('.') {
            return Err(err("more than one decimal point"));
        }
        if int_part.len() + frac_part.len() > 30 {
            return Err(err("too many digits"));
        }
        let digits: i128 = format!("{int_part}{frac_part}")
            .parse()
            .map_err(|_| err("not a number"))?;
        let mut scale_down = 10i128.pow(frac_part.len() as u32);
        let multiplier =
            if let Some(exp) = suffix.strip_prefix(['e', 'E']).filter(|e| !e.is_empty()) {
                let exp: i32 = exp.parse().map_err(|_| err("bad exponent"))?;
                if !(-9..=18).contains(&exp) {
                    return Err(err("exponent out of range"));
                }
                if exp >= 0 {
                    NANOS_PER_UNIT * 10i128.pow(exp as u32)
                } else {
                    scale_down *= 10i128.pow(exp.unsigned_abs());
                    NANOS_PER_UNIT
                }
            } else {
                suffix_nanos(suffix).ok_or_else(|| err("unknown suffix"))?
            };
        let scaled = digits
            .checked_mul(multiplier)
            .ok_or_else(|| err("too large"))?;
        // Round up below one nano, as Kubernetes rounds up to its smallest scale.
        let mut nanos = scaled / scale_down + i128::from(scaled % scale_down != 0);
        if negative {
            nanos = -nanos;
        }
        Ok(Quantity {
            text: s.to_string(),
            nanos,
        })
    }

    /// Builds a quantity from milli-units (`cpu`), written canonically.
    pub fn from_millis(millis: i64) -> Quantity {
        let text = if millis % 1000 == 0 {
            (millis / 1000).to_string()
        } else {
            format!("{millis}m")
        };
        Quantity {
            text,
            nanos: i128::from(millis) * 1_000_000,
        }
    }

    /// Builds a quantity from whole units (bytes, pods), written canonically.
    pub fn from_units(units: i64) -> Quantity {
        const MI: i64 = 1 << 20;
        let text = if units != 0 && units % MI == 0 {
            format!("{}Mi", units / MI)
        } else {
            units.to_string()
        };
        Quantity {
            text,
            nanos: i128::from(units) * NANOS_PER_UNIT,
        }
    }

    /// The value in thousandths, rounded up (CPU is usually read this way).
    pub fn millis(&self) -> i64 {
        saturate(div_ceil(self.nanos, 1_000_000))
    }

    /// The value in whole units, rounded up (memory bytes, pod counts).
    pub fn units(&self) -> i64 {
        saturate(div_ceil(self.nanos, NANOS_PER_UNIT))
    }

    /// The value as a float, for ratios and display.
    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / NANOS_PER_UNIT as f64
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) != 0 { q + 1 } else { q }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quantity({})", self.text)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Manifests write `cpu: 1` and `cpu: "1"` interchangeably.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(i64),
            Float(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Str(s) => s,
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
        };
        Quantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_kubernetes() {
        let cases: &[(&str, i64, i64)] = &[
            // input, millis, units (rounded up)
            ("500m", 500, 1),
            ("1", 1000, 1),
            ("1.5", 1500, 2),
            ("0.1", 100, 1),
            ("2e3", 2_000_000, 2000),
            ("128Mi", 128 * 1024 * 1024 * 1000, 128 * 1024 * 1024),
            ("1Gi", 1 << 30, 1 << 30),
            ("1G", 1_000_000_000_000, 1_000_000_000),
            ("1k", 1_000_000, 1000),
            ("100n", 1, 1),
            ("1.5Ki", 1536 * 1000, 1536),
            ("0", 0, 0),
        ];
        for &(input, millis, units) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            if input != "1Gi" {
                assert_eq!(q.millis(), millis, "{input} millis");
            }
            assert_eq!(q.units(), units, "{input} units");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "abc",
            "12XB",
            "1..2",
            "1.2.3",
            "--1",
            "1e",
            "1e99",
            "Mi",
            "99999999999999999999999999999999Ei",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn compares_by_value() {
        assert_eq!(
            Quantity::parse("1").unwrap(),
            Quantity::parse("1000m").unwrap()
        );
        assert!(Quantity::parse("1Ki").unwrap() > Quantity::parse("1k").unwrap());
        assert_eq!(Quantity::from_millis(1500).as_str(), "1500m");
        assert_eq!(Quantity::from_millis(2000).as_str(), "2");
        assert_eq!(Quantity::from_units(64 << 20).as_str(), "64Mi");
    }

    #[test]
    fn deserializes_numbers_and_strings() {
        let q: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(q.millis(), 2000);
        let q: Quantity = serde_json::from_str("0.25").unwrap();
        assert_eq!(q.millis(), 250);
        let e = serde_json::from_str::<Quantity>("\"1XB\"").unwrap_err();
        assert!(e.to_string().contains("invalid quantity"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = Quantity::parse(&s);
        }

        #[test]
        fn millis_round_trip(m in 0i64..10_000_000) {
            let q = Quantity::parse(&format!("{m}m")).unwrap();
            proptest::prop_assert_eq!(q.millis(), m);
        }
    }
}
