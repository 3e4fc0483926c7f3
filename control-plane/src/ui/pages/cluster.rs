//! Cluster: control-plane members and nodes with their allocation.

use maud::{Markup, html};

use super::{bar, pager};
use crate::replicated::ClusterStatus;
use crate::ui::view::NodeRow;

fn bytes(n: i64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    let mib = n as f64 / MIB;
    if mib < 1024.0 {
        format!("{mib:.0}Mi")
    } else {
        format!("{:.1}Gi", mib / 1024.0)
    }
}

/// One page of the node table, and counts over all nodes.
pub struct NodeListing<'a> {
    pub rows: &'a [NodeRow],
    pub total: usize,
    pub ready: usize,
    pub page: usize,
    pub pages: usize,
}

pub fn render(status: &ClusterStatus, nodes: &NodeListing<'_>) -> Markup {
    let NodeListing {
        rows,
        total,
        ready,
        page,
        pages,
    } = *nodes;
    html! {
        h1 { "Cluster" }
        section.cards {
            div.card { h2 { "Control plane" }
                @if status.role == "Single" {
                    p { "single member" }
                } @else {
                    p { "leader " strong #leader { (status.leader.map_or("none".to_string(), |l| l.to_string())) }
                        " · term " (status.term) " · commit " (status.commit_index) " · applied " (status.applied_index) }
                }
            }
            div.card { h2 { "Nodes" } p { strong #nodes-ready { (ready) } " of " strong #nodes-total { (total) } " ready" } }
        }
        @if status.role != "Single" {
            table #members {
                thead { tr { th { "Member" } th { "Peer address" } th { "Role" } th { "Match" } th { "Lag" } } }
                tbody {
                    @for m in &status.members {
                        tr {
                            td { (m.id) }
                            td { (m.peer_addr) }
                            td { @if Some(m.id) == status.leader { "leader" } @else { "follower" } }
                            td { (m.match_index.map_or("-".to_string(), |v| v.to_string())) }
                            td { (m.lag.map_or("-".to_string(), |v| v.to_string())) }
                        }
                    }
                }
            }
        }
        h2 { "Nodes" }
        table #node-table {
            thead { tr { th { "Name" } th { "Status" } th { "CPU" } th { "Memory" } th { "Pods" } th { "Runtimes" } th { "Address" } th {} } }
            tbody {
                @for n in rows {
                    tr data-node=(n.name) {
                        td { (n.name) }
                        td { (n.ready) @if !n.schedulable { ", SchedulingDisabled" } @for c in &n.conditions { ", " (c) } }
                        td { (bar(n.cpu_millis, &format!("{}m / {}m", n.cpu_millis.used, n.cpu_millis.allocatable))) }
                        td { (bar(n.memory_bytes, &format!("{} / {}", bytes(n.memory_bytes.used), bytes(n.memory_bytes.allocatable)))) }
                        td.pods { (bar(n.pods, &format!("{} / {}", n.pods.used, n.pods.allocatable))) }
                        td { (n.runtimes.join(", ")) @if let Some(e) = &n.vm_engine { " (" (e) ")" } }
                        td { (n.address) }
                        td {
                            @if n.schedulable {
                                (super::action("cordon", &[("node", &n.name)], "Cordon", &format!("Cordon node {}? New pods will not be scheduled on it.", n.name)))
                            } @else {
                                (super::action("uncordon", &[("node", &n.name)], "Uncordon", &format!("Uncordon node {}?", n.name)))
                            }
                        }
                    }
                }
            }
        }
        (pager("/ui/cluster", page, pages, total))
    }
}
