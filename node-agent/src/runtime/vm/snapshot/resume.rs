//! Resuming a VM restored from a snapshot: QEMU loads the state given to
//! `-incoming` and then stays paused (the state was saved paused), so
//! once the load completes the agent says `cont` over QMP.

use std::path::Path;
use std::time::{Duration, Instant};

use super::client::{ClientError, QmpClient};

/// Waits for the VM in `run_dir` to finish loading its snapshot, then
/// resumes it. Fails if QEMU ends (a state it cannot load) or takes
/// longer than `timeout`.
pub fn resume_when_loaded(run_dir: &Path, timeout: Duration) -> Result<(), ClientError> {
    let deadline = Instant::now() + timeout;
    let mut qmp = loop {
        match QmpClient::connect(run_dir) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e),
        }
    };
    loop {
        match qmp.run_state()?.as_str() {
            "running" => return Ok(()),
            // `paused` with the load finished; `inmigrate` while loading.
            "paused" | "postmigrate" => {
                qmp.execute("cont", None)?;
                return Ok(());
            }
            _ if Instant::now() > deadline => {
                return Err(ClientError::Timeout("loading the snapshot", timeout));
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
