//! Finds the `drover` binary the workspace built.

use std::path::PathBuf;

/// The `drover` binary under test: `$DROVER_BIN`, or the one Cargo built
/// next to this test executable (`target/<profile>/drover`).
///
/// Panics with the command to run when it is missing, rather than skipping:
/// an end-to-end suite that silently tests nothing is worse than a failure.
pub fn drover_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DROVER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/e2e-<hash> → target/<profile>/drover
    let candidate = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("drover"));
    match candidate {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "the drover binary was not found next to {}: build it first with \
             `cargo build -p drover-cli` (same profile) or set DROVER_BIN",
            exe.display()
        ),
    }
}
