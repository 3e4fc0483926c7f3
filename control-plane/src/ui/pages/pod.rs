//! One pod: its details, containers, live log and events.

use drover_proto::Resource;
use drover_proto::Time;
use drover_proto::types::{Event, Pod};
use maud::{Markup, html};

use crate::ui::view::{age, pod_row};

pub fn render(pod: &Pod, events: &[&Event], now: Time) -> Markup {
    let row = pod_row(pod);
    let status = pod.status.clone().unwrap_or_default();
    html! {
        h1 { "Pod " (row.name) " " span class={ "badge " (row.runtime) } { (row.runtime) } }
        dl.details {
            dt { "Namespace" } dd { (row.namespace) }
            dt { "Status" } dd #pod-status { (row.status) }
            dt { "Node" } dd { (row.node) }
            dt { "IP" } dd { (row.ip) }
            dt { "Age" } dd { (age(row.created, now)) }
            dt { "Restarts" } dd { (row.restarts) }
        }
        (super::action("delete-pod", &[("namespace", &row.namespace), ("name", &row.name)], "Delete pod",
            &format!("Delete pod {}? Its controller, if any, replaces it.", row.name)))
        h2 { "Containers" }
        table {
            thead { tr { th { "Name" } th { "Image" } th { "Ready" } th { "Restarts" } } }
            tbody {
                @for c in &pod.spec.containers {
                    @let st = status.container_statuses.iter().find(|s| s.name == c.name);
                    tr {
                        td { (c.name) }
                        td { (c.image) }
                        td { (st.is_some_and(|s| s.ready)) }
                        td { (st.map_or(0, |s| s.restart_count)) }
                    }
                }
            }
        }
        h2 { "Log" }
        @let first = pod.spec.containers.first().map(|c| c.name.clone()).unwrap_or_default();
        pre #log data-src={ "/ui/pods/" (pod.namespace()) "/" (pod.name()) "/logs/" (first) } { }
        h2 { "Events" }
        table #pod-events {
            thead { tr { th { "Last seen" } th { "Type" } th { "Reason" } th { "Message" } th { "Count" } } }
            tbody {
                @for e in events {
                    tr { td { (age(e.last_timestamp, now)) } td { (e.type_) } td { (e.reason) } td { (e.message) } td { (e.count) } }
                }
            }
        }
    }
}
