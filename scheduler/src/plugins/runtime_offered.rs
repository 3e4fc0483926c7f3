//! Filter: a `runtime: vm` pod needs a node whose `status.runtimes` offers
//! `vm` (KVM works there); container pods need `container`.

use crate::fit_error::Reason;
use crate::framework::{Plugin, PodState};
use crate::snapshot::NodeInfo;

pub struct RuntimeOffered;

impl Plugin for RuntimeOffered {
    fn name(&self) -> &'static str {
        "RuntimeOffered"
    }

    fn filter(&self, state: &PodState<'_>, node: &NodeInfo) -> Result<(), Reason> {
        let runtime = state.pod.spec.runtime;
        if node.facts().is_some_and(|f| f.offers(runtime)) {
            Ok(())
        } else {
            Err(Reason::RuntimeNotOffered(runtime))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, filter_one};
    use drover_proto::types::pod::Runtime;

    #[test]
    fn table() {
        let cases: [(&str, &[&str], Runtime, bool); 5] = [
            ("vm pod, vm node", &["container", "vm"], Runtime::Vm, true),
            ("vm pod, container node", &["container"], Runtime::Vm, false),
            ("vm pod, legacy node", &[], Runtime::Vm, false),
            ("container pod, legacy node", &[], Runtime::Container, true),
            (
                "container pod, vm-only node",
                &["vm"],
                Runtime::Container,
                false,
            ),
        ];
        for (name, runtimes, runtime, fits) in cases {
            let node = NodeBuilder::new("n1").runtimes(runtimes).build();
            let pod = PodBuilder::new("p").runtime(runtime).build();
            let want = if fits {
                Ok(())
            } else {
                Err(Reason::RuntimeNotOffered(runtime))
            };
            assert_eq!(filter_one(&RuntimeOffered, &pod, &node), want, "{name}");
        }
    }
}
