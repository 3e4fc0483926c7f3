//! The lines `drover-init` prints on the console for the host: the host
//! reads the guest's fate from them (the serial console is the one channel
//! both engines have), and writes [`STOP`] to ask for a clean shutdown.

/// Printed once init runs (boot time is measured to it).
pub const STARTED: &str = "drover-init: started";
/// Written by the host to the console: stop the workload (SIGTERM).
pub const STOP: &str = "drover-init: stop";

/// What a console line tells the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// Init began.
    Started,
    /// The workload ended with this code (128 + signal for a signal).
    Exit(i32),
    /// Init could not run the workload; the reason follows.
    Failed(String),
}

/// The exit line for `code`.
pub fn exit_line(code: i32) -> String {
    format!("drover-init: exit {code}")
}

/// The failure line for `reason` (one line).
pub fn failed_line(reason: &str) -> String {
    format!("drover-init: failed: {}", reason.replace(['\n', '\r'], " "))
}

/// Reads a console line (trailing `\r` and spaces ignored).
pub fn parse_line(line: &str) -> Option<ConsoleEvent> {
    let line = line.trim_end();
    if line == STARTED {
        return Some(ConsoleEvent::Started);
    }
    if let Some(code) = line.strip_prefix("drover-init: exit ") {
        return code.parse().ok().map(ConsoleEvent::Exit);
    }
    line.strip_prefix("drover-init: failed: ")
        .map(|r| ConsoleEvent::Failed(r.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        assert_eq!(parse_line(&exit_line(3)), Some(ConsoleEvent::Exit(3)));
        assert_eq!(
            parse_line("drover-init: exit 137\r"),
            Some(ConsoleEvent::Exit(137))
        );
        assert_eq!(parse_line(STARTED), Some(ConsoleEvent::Started));
        assert_eq!(
            parse_line(&failed_line("exec sh: not found\nx")),
            Some(ConsoleEvent::Failed("exec sh: not found x".into()))
        );
        assert_eq!(parse_line("drover-init: exit x"), None);
        assert_eq!(parse_line("hello"), None);
        assert_eq!(parse_line("[    1.0] drover-init: exit 3"), None);
    }
}
