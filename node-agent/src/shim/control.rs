//! The shim's control protocol: one text line per request on a unix
//! socket, one line back.

use std::time::Duration;

/// A request to the shim.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Report the state now.
    State,
    /// Report the state once the container has exited.
    Wait,
    /// SIGTERM, then SIGKILL after the grace period.
    Stop(Duration),
}

/// Parses one request line (pure).
pub fn parse_request(line: &str) -> Option<Request> {
    let mut words = line.split_whitespace();
    let request = match (words.next()?, words.next()) {
        ("state", None) => Request::State,
        ("wait", None) => Request::Wait,
        ("stop", Some(ms)) => Request::Stop(Duration::from_millis(ms.parse().ok()?)),
        _ => return None,
    };
    words.next().is_none().then_some(request)
}

/// Formats a request line.
pub fn format_request(r: &Request) -> String {
    match r {
        Request::State => "state\n".into(),
        Request::Wait => "wait\n".into(),
        Request::Stop(grace) => format!("stop {}\n", grace.as_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_junk() {
        for r in [
            Request::State,
            Request::Wait,
            Request::Stop(Duration::from_millis(1500)),
        ] {
            assert_eq!(parse_request(&format_request(&r)), Some(r));
        }
        for junk in ["", "stop", "stop x", "state now", "reboot", "stop 1 2"] {
            assert_eq!(parse_request(junk), None, "{junk}");
        }
    }
}
