//! Workloads: Deployments with rollout progress and actions, ReplicaSets,
//! and Pods (containers and VMs marked apart), paginated.

use drover_proto::Resource;
use drover_proto::Time;
use drover_proto::types::ReplicaSet;
use maud::{Markup, html};

use super::pager;
use crate::ui::view::{DeploymentRow, PodRow, age};

/// One page of the pod table, and counts over all pods.
pub struct PodListing<'a> {
    pub rows: &'a [PodRow],
    pub total: usize,
    pub vms: usize,
    pub page: usize,
    pub pages: usize,
}

pub fn render(
    deployments: &[DeploymentRow],
    replica_sets: &[ReplicaSet],
    pods: &PodListing<'_>,
    now: Time,
) -> Markup {
    let PodListing {
        rows,
        total,
        vms,
        page,
        pages,
    } = *pods;
    html! {
        h1 { "Workloads" }
        h2 { "Deployments" }
        table #deployments {
            thead { tr { th { "Namespace" } th { "Name" } th { "Ready" } th { "Up to date" } th { "Available" } th { "Rollout" } th { "Scale" } th {} } }
            tbody {
                @for d in deployments {
                    tr data-deployment=(d.name) {
                        td { (d.namespace) }
                        td { (d.name) }
                        td.ready { (d.ready) "/" (d.desired) }
                        td { (d.updated) }
                        td { (d.available) }
                        td {
                            div.bar title={ (d.state) } {
                                div class={ "fill " @if d.state == "Failed" { "full" } @else { "ok" } } style={ "width:" (d.progress) "%" } {}
                                span { (d.state) " " (d.progress) "%" }
                            }
                        }
                        td {
                            form.action.scale method="post" action="/ui/actions/scale"
                                data-confirm={ "Scale deployment " (d.name) "?" } {
                                input type="hidden" name="namespace" value=(d.namespace);
                                input type="hidden" name="name" value=(d.name);
                                input type="number" name="replicas" value=(d.desired) min="0" aria-label="replicas";
                                button type="submit" { "Scale" }
                            }
                        }
                        td {
                            (super::action("restart", &[("namespace", &d.namespace), ("name", &d.name)], "Restart",
                                &format!("Restart the rollout of deployment {}? Every pod is replaced.", d.name)))
                        }
                    }
                }
            }
        }
        h2 { "ReplicaSets" }
        table #replicasets {
            thead { tr { th { "Namespace" } th { "Name" } th { "Desired" } th { "Current" } th { "Ready" } } }
            tbody {
                @for rs in replica_sets {
                    @let st = rs.status.clone().unwrap_or_default();
                    tr {
                        td { (rs.namespace()) }
                        td { (rs.name()) }
                        td { (rs.spec.replicas) }
                        td { (st.replicas) }
                        td { (st.ready_replicas) }
                    }
                }
            }
        }
        h2 { "Pods " small { (total) " (" (vms) " VMs)" } }
        table #pods {
            thead { tr { th { "Namespace" } th { "Name" } th { "Kind" } th { "Ready" } th { "Status" } th { "Restarts" } th { "Node" } th { "IP" } th { "Age" } } }
            tbody {
                @for p in rows {
                    tr data-pod=(p.name) {
                        td { (p.namespace) }
                        td { a href={ "/ui/pods/" (p.namespace) "/" (p.name) } { (p.name) } }
                        td { span class={ "badge " (p.runtime) } { (p.runtime) } }
                        td { (p.ready) }
                        td.status { (p.status) }
                        td { (p.restarts) }
                        td { (p.node) }
                        td { (p.ip) }
                        td { (age(p.created, now)) }
                    }
                }
            }
        }
        (pager("/ui/workloads", page, pages, total))
    }
}
