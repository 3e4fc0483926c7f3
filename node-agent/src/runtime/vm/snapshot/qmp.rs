//! QEMU's machine protocol (QMP), the messages only (pure): one JSON
//! object per line; the server greets, the client negotiates
//! capabilities, then each command gets a `return` or an `error`, with
//! asynchronous `event`s interleaved.

use serde_json::{Value, json};

/// The file name of a VM's QMP socket, in the run directory (QEMU's
/// working directory, so the path stays short for `sun_path`).
pub const SOCKET: &str = "qmp.sock";

/// A command line for QMP.
pub fn command(name: &str, arguments: Option<Value>) -> String {
    let mut c = json!({ "execute": name });
    if let Some(a) = arguments {
        c["arguments"] = a;
    }
    format!("{c}\n")
}

/// `migrate` into the file passed as `fd_name` (QEMU 7.2 has no
/// `file:` URI; `exec:cat > FILE` would leave `cat` still writing when
/// QEMU reports the migration completed).
pub fn migrate_to_fd(fd_name: &str) -> String {
    command("migrate", Some(json!({ "uri": format!("fd:{fd_name}") })))
}

/// The `-incoming` URI that loads a snapshot file.
pub fn incoming_from_file(path: &str) -> Result<String, QmpError> {
    if path.contains('\'') {
        return Err(QmpError::UnsafePath(path.to_string()));
    }
    Ok(format!("exec:cat '{path}'"))
}

/// What QMP said wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QmpError {
    /// A line that is not JSON.
    #[error("QMP sent a line that is not JSON: {0}")]
    NotJson(String),
    /// The command failed; QEMU's class and description.
    #[error("QMP {command}: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    /// A snapshot path the shell would misread.
    #[error("snapshot path {0:?} holds a quote")]
    UnsafePath(String),
}

/// One line from the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Greeting,
    Return(Value),
    Error { class: String, desc: String },
    Event(String),
}

/// Reads a server line.
pub fn parse_reply(line: &str) -> Result<Reply, QmpError> {
    let v: Value =
        serde_json::from_str(line.trim()).map_err(|_| QmpError::NotJson(line.to_string()))?;
    if v.get("QMP").is_some() {
        return Ok(Reply::Greeting);
    }
    if let Some(r) = v.get("return") {
        return Ok(Reply::Return(r.clone()));
    }
    if let Some(e) = v.get("error") {
        let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Ok(Reply::Error {
            class: text("class"),
            desc: text("desc"),
        });
    }
    match v.get("event").and_then(Value::as_str) {
        Some(name) => Ok(Reply::Event(name.to_string())),
        None => Err(QmpError::NotJson(line.to_string())),
    }
}

/// A migration's progress, from `query-migrate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationStatus {
    /// Still going (or not begun).
    Active,
    Completed,
    Failed(String),
}

/// Reads `query-migrate`'s return.
pub fn migration_status(ret: &Value) -> MigrationStatus {
    match ret.get("status").and_then(Value::as_str) {
        Some("completed") => MigrationStatus::Completed,
        Some(s @ ("failed" | "cancelled")) => MigrationStatus::Failed(
            ret.get("error-desc")
                .and_then(Value::as_str)
                .map_or_else(|| s.to_string(), str::to_string),
        ),
        _ => MigrationStatus::Active,
    }
}

/// Reads `query-status`'s run state (`running`, `paused`, `inmigrate`…).
pub fn run_state(ret: &Value) -> Option<&str> {
    ret.get("status").and_then(Value::as_str)
}

/// Reads `query-kvm`: whether the VM runs accelerated.
pub fn kvm_enabled(ret: &Value) -> bool {
    ret.get("enabled").and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_json_lines() {
        assert_eq!(
            command("qmp_capabilities", None),
            "{\"execute\":\"qmp_capabilities\"}\n"
        );
        let m: Value = serde_json::from_str(&migrate_to_fd("snap")).unwrap();
        assert_eq!(m["arguments"]["uri"], "fd:snap");
        assert_eq!(incoming_from_file("/d/x").unwrap(), "exec:cat '/d/x'");
        assert!(matches!(
            incoming_from_file("/d/'; rm -rf /"),
            Err(QmpError::UnsafePath(_))
        ));
    }

    #[test]
    fn replies_are_told_apart() {
        let greeting = r#"{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}"#;
        assert_eq!(parse_reply(greeting), Ok(Reply::Greeting));
        assert_eq!(
            parse_reply(r#"{"return": {}}"#),
            Ok(Reply::Return(json!({})))
        );
        assert_eq!(
            parse_reply(r#"{"error": {"class": "GenericError", "desc": "no"}}"#),
            Ok(Reply::Error {
                class: "GenericError".into(),
                desc: "no".into()
            })
        );
        assert_eq!(
            parse_reply(r#"{"event": "STOP", "timestamp": {}}"#),
            Ok(Reply::Event("STOP".into()))
        );
        assert!(parse_reply("garbage").is_err());
        assert!(parse_reply("{}").is_err());
    }

    #[test]
    fn migration_and_run_state_are_read() {
        assert_eq!(
            migration_status(&json!({"status": "active"})),
            MigrationStatus::Active
        );
        assert_eq!(migration_status(&json!({})), MigrationStatus::Active);
        assert_eq!(
            migration_status(&json!({"status": "completed"})),
            MigrationStatus::Completed
        );
        assert_eq!(
            migration_status(&json!({"status": "failed", "error-desc": "disk full"})),
            MigrationStatus::Failed("disk full".into())
        );
        assert_eq!(run_state(&json!({"status": "paused"})), Some("paused"));
        assert!(kvm_enabled(&json!({"enabled": true, "present": true})));
        assert!(!kvm_enabled(&json!({})));
    }
}
