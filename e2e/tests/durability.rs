//! A single member under a steady stream of writes, killed with -9 and
//! restarted: every acknowledged write is still there, nothing invented.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_e2e::member::Member;
use drover_e2e::writer::{Writers, converged_views};
use drover_e2e::{Lab, eventually, skip_unless_supported};

#[test]
fn acknowledged_writes_survive_kill_9_of_a_single_member() {
    if skip_unless_supported("acknowledged_writes_survive_kill_9_of_a_single_member") {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("drover-e2e-dur-{}", std::process::id()));
    let lab = Lab::new();
    let host = lab.add_host("cp1");
    let mut member = Member::new(1, &host, &tmp, vec![]);
    member.start();

    let writers = Writers::start("dur", 8, vec![member.api()]);
    eventually("writes acknowledged", Duration::from_secs(20), || {
        (writers.acked() >= 200).then_some(())
    });
    member.kill9();
    std::thread::sleep(Duration::from_millis(300));
    member.start();
    eventually(
        "writes resume after restart",
        Duration::from_secs(20),
        || (writers.acked() >= 400).then_some(()),
    );
    let history = writers.stop();

    let members = vec![("cp1".to_string(), member.api())];
    let views = converged_views(&members, "dur-", Duration::from_secs(10));
    let violations = history.check(&views);
    assert!(
        violations.is_empty(),
        "{} acked writes, violations: {violations:?}",
        history.acked()
    );
    assert_eq!(views.len(), 1);
    let stored: BTreeMap<_, _> = views.into_iter().collect();
    assert!(stored["cp1"].len() >= history.acked());
    drop(member);
    drop(lab);
    let _ = std::fs::remove_dir_all(&tmp);
}
