//! The agent's control loops: registering Nodes and renewing their
//! heartbeats, watching the pods bound to them, and reporting pod status,
//! either for simulated ("hollow") nodes or for this machine's real pods.

pub mod cluster_network;
pub mod container_status;
pub mod events;
pub mod exec;
pub mod heartbeat;
pub mod hollow;
pub mod informer;
pub mod layout;
pub mod lifecycle;
pub mod logs_server;
pub mod machine;
pub mod node;
pub mod pod_status;
pub mod probe;
pub mod queue;
pub mod real;
pub mod runner;
pub mod serving_tls;
pub mod vm_restore;
pub mod vm_runner;
pub mod vm_snapshot;
pub mod worker;

/// The condition types and reasons the agent writes, with Kubernetes' names.
pub mod reasons {
    /// Node and pod readiness.
    pub const READY: &str = "Ready";
    /// Every container of the pod is ready.
    pub const CONTAINERS_READY: &str = "ContainersReady";
    /// The pod is bound to a node.
    pub const POD_SCHEDULED: &str = "PodScheduled";
    /// Init containers (none yet) have completed.
    pub const INITIALIZED: &str = "Initialized";
    /// The Node's Ready reason while the agent heartbeats.
    pub const AGENT_READY: &str = "AgentReady";
}
